"""Face-recognition backbones of the MI literature's CelebA / FFHQ / FaceScrub settings.

The targets and evaluation models of GMI (Zhang et al., CVPR 2020), KEDMI
(Chen et al., ICCV 2021), PLG-MI (Yuan et al., AAAI 2023) and MIBench use the
IR ("improved residual") networks of face.evoLVe (Zhao et al.; the ArcFace
backbones of Deng et al., CVPR 2019):

- ``ir152``: IR-152 at 64x64 (target).
- ``facenet64``: IR-50 at 64x64 (target; the papers' "FaceNet64").
- ``facenet112``: IR-50 at 112x112 (evaluation model; "FaceNet" / "FaceNet112"),
  64x64 reconstructions are resized to 112x112 first, as those papers do.

Structure (our own code, following the published architecture): a 3x3/64
stem (conv, BN, PReLU), four stages of bottleneck-IR units (BN, 3x3 conv,
PReLU, 3x3 conv with the stage's stride, BN; shortcut a 1x1 conv + BN when the
width changes, else identity/subsampling), stage widths 64/128/256/512 and
depths 3-4-14-3 (IR-50), 3-13-30-3 (IR-100), 3-8-36-3 (IR-152); every stage
halves the resolution, so 64 px ends at 4x4 and 112 px at 7x7. The output
layer (BN2d, dropout, flatten, linear to 512, BN1d) gives the 512-d feature
the metrics use; a linear head maps it to the classes. ``mode="ir_se"`` adds
squeeze-excitation (reduction 16) to each unit (the IR-SE variants).

Pretrained weights (the papers' released checkpoints) load by path and
sha256 through :func:`mibench_core.weights.load_state_dict`; their key names
(``module.`` prefix, ``feature.`` backbone, ``fc_layer`` head) are mapped to
ours. Deviation: grayscale inputs get a 1-channel stem (the papers use RGB).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core.models.classifiers import Classifier

METHODS = [
    {
        "name": "ir152",
        "kind": "arch",
        "call": "ir152",
        "description": "IR-152 face backbone at 64x64 (face.evoLVe), the KEDMI / PLG-MI 'IR152' target",
        "defaults": {
            "mode": "ir",
            "pretrained_weights": None,
            "pretrained_sha256": None,
            "pretrained_unverified": False,
        },
    },
    {
        "name": "facenet64",
        "kind": "arch",
        "call": "facenet64",
        "description": "IR-50 face backbone at 64x64, the KEDMI / PLG-MI 'FaceNet64' target",
        "defaults": {
            "mode": "ir",
            "pretrained_weights": None,
            "pretrained_sha256": None,
            "pretrained_unverified": False,
        },
    },
    {
        "name": "facenet112",
        "kind": "arch",
        "call": "facenet112",
        "description": "IR-50 face backbone at 112x112 (inputs resized), the GMI / KEDMI / PLG-MI evaluation model",
        "defaults": {
            "mode": "ir",
            "pretrained_weights": None,
            "pretrained_sha256": None,
            "pretrained_unverified": False,
        },
    },
]

DEPTHS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
WIDTHS = (64, 128, 256, 512)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(self.pool(x)))))
        return x * w


class BottleneckIR(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, se: bool = False):
        super().__init__()
        if c_in == c_out:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)  # identity or subsampling
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        layers: list[nn.Module] = [
            nn.BatchNorm2d(c_in),
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
            nn.PReLU(c_out),
            nn.Conv2d(c_out, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if se:
            layers.append(SqueezeExcite(c_out))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """Stem + four IR stages + output layer -> 512-d feature."""

    def __init__(self, depth: int, input_size: int, in_channels: int = 3, mode: str = "ir"):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"IR depth must be one of {sorted(DEPTHS)}, got {depth}")
        if mode not in ("ir", "ir_se"):
            raise ValueError(f"mode must be 'ir' or 'ir_se', got {mode!r}")
        if input_size % 16:
            raise ValueError(f"input size must be a multiple of 16, got {input_size}")
        self.input_layer = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        units: list[nn.Module] = []
        c_in = 64
        for c_out, n in zip(WIDTHS, DEPTHS[depth]):
            for i in range(n):
                units.append(BottleneckIR(c_in, c_out, 2 if i == 0 else 1, se=mode == "ir_se"))
                c_in = c_out
        self.body = nn.Sequential(*units)
        side = input_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512), nn.Dropout(), nn.Flatten(), nn.Linear(512 * side * side, 512), nn.BatchNorm1d(512)
        )
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.body(self.input_layer(x)))


class IRClassifier(Classifier):
    """An IR backbone at a fixed input size with a linear head; other input sizes are resized."""

    def __init__(self, depth: int, input_size: int, num_classes: int, in_channels: int, mode: str = "ir"):
        super().__init__()
        self.input_size = input_size
        self.feature = IRBackbone(depth, input_size, in_channels, mode)
        self.feat_dim = 512
        self.fc = nn.Linear(512, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.feature(x)


def _published_keys(state: dict) -> dict:
    """Published checkpoints -> our names: KEDMI / PLG-MI classifiers (DataParallel ``module.``,
    ``feature.``, ``output_layer.`` beside the 64 px backbone, ``fc_layer.`` head) and face.evoLVe
    backbones (``input_layer.``, ``body.``, ``output_layer.``)."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith(("input_layer.", "body.", "output_layer.")):  # face.evoLVe backbones; 64 px heads
            key = "feature." + key
        key = key.replace("fc_layer.", "fc.", 1) if key.startswith("fc_layer.") else key
        out[key] = value
    return out


def _build(depth, input_size, num_classes, in_channels, mode, pretrained_weights, pretrained_sha256, unverified):
    model = IRClassifier(depth, input_size, num_classes, in_channels, mode)
    if pretrained_weights:
        from mibench_core.weights import load_state_dict, verify_external

        digest, how = verify_external(pretrained_weights, pretrained_sha256, unverified)
        model.pretrained = {"path": str(pretrained_weights), "sha256": digest, "check": how}  # for the manifest
        state = _published_keys(load_state_dict(pretrained_weights, digest))
        own = model.state_dict()
        # A new class count gets a fresh head; a backbone trained at another resolution (the
        # 112 px MS-Celeb-1M ones under a 64 px model) keeps its convolutions and gets a fresh
        # output layer, as KEDMI / PLG-MI build their 64 px targets.
        mismatched = {k for k, v in state.items() if k in own and own[k].shape != v.shape}
        fresh = {k for k in state if k.startswith("fc.")} if any(k.startswith("fc.") for k in mismatched) else set()
        if any(k.startswith("feature.output_layer.") for k in mismatched):
            fresh |= {k for k in state if k.startswith("feature.output_layer.")}
        state = {k: v for k, v in state.items() if k not in fresh}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.") and k not in fresh]
        if missing or unexpected:
            raise ValueError(
                f"{pretrained_weights}: state dict does not match IR-{depth}@{input_size} "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
    return model


def ir152(
    num_classes: int,
    in_channels: int = 3,
    resolution: int = 64,
    mode: str = "ir",
    pretrained_weights: str | None = None,
    pretrained_sha256: str | None = None,
    pretrained_unverified: bool = False,
) -> Classifier:
    """IR-152 at 64x64 (face.evoLVe), the KEDMI / PLG-MI 'IR152' target."""
    return _build(152, 64, num_classes, in_channels, mode, pretrained_weights, pretrained_sha256, pretrained_unverified)


def facenet64(
    num_classes: int,
    in_channels: int = 3,
    resolution: int = 64,
    mode: str = "ir",
    pretrained_weights: str | None = None,
    pretrained_sha256: str | None = None,
    pretrained_unverified: bool = False,
) -> Classifier:
    """IR-50 at 64x64, the KEDMI / PLG-MI 'FaceNet64' target."""
    return _build(50, 64, num_classes, in_channels, mode, pretrained_weights, pretrained_sha256, pretrained_unverified)


def facenet112(
    num_classes: int,
    in_channels: int = 3,
    resolution: int = 64,
    mode: str = "ir",
    pretrained_weights: str | None = None,
    pretrained_sha256: str | None = None,
    pretrained_unverified: bool = False,
) -> Classifier:
    """IR-50 at 112x112, the GMI / KEDMI / PLG-MI evaluation model ('FaceNet'); inputs resized to 112."""
    return _build(50, 112, num_classes, in_channels, mode, pretrained_weights, pretrained_sha256, pretrained_unverified)
