"""FaceNet feature distance: for each reconstruction, the smallest squared L2
distance between its FaceNet embedding and the embeddings of the private
images of its class; averaged (lower is closer). Feature distances of this
kind in a face-recognition space are the usual identity measure of face MI
attacks (e.g. Struppek et al., Plug & Play Attacks, ICML 2022).

The network is InceptionResnetV1 (Szegedy et al. 2017, as trained by
D. Sandberg's facenet and ported by facenet-pytorch). facenet-pytorch pins
torch < 2.3 and cannot be installed beside our torch, so the architecture is
defined here with the same module and parameter names, so that its published
state dicts (``20180402-114759-vggface2.pt``, ``20180408-102900-casia-webface.pt``)
load by path; their classification layer ``logits.*`` is not used. Weights:
weight file ``facenet-<pretrained>`` (``mibench weights list``), verified by
sha256 before ``torch.load(weights_only=True)``; without it the value is
missing with the reason, never 0.

Inputs as facenet-pytorch's pipeline expects after its MTCNN crop: 3
channels (grayscale repeated), resized bilinearly to ``image_size`` (160),
``fixed_image_standardization`` ((pixel - 127.5) / 128); embeddings are the
L2-normalised 512-d outputs (``classify=False``). We do no face detection or
alignment: the images are assumed to be face crops already.

Only meaningful on face datasets: ``face_dataset`` null decides from the
dataset's name and label (celeba, facescrub, ffhq, lfw, pubfig, vggface,
casia, or containing "face"); elsewhere the value is missing with that
reason. ``face_dataset: true`` forces it. ``max_reference_per_class`` caps
the private images per class with a seeded random subset (null: all).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core import weights
from mibench_core.metrics.common import MetricContext, MetricResult, pretrained_or_missing
from mibench_core.metrics.functional import pairwise_sq_dists
from mibench_core.metrics.pixel import class_references
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "facenet_distance",
        "kind": "metric",
        "call": "facenet_distance",
        "description": "min squared L2 in FaceNet (InceptionResnetV1) embeddings to private faces of the class",
        "columns": {
            "facenet_dist": {"label": "FaceNet distance", "better": "lower", "meaning": "same identity"},
        },
        "defaults": {
            "pretrained": "vggface2",
            "face_dataset": None,
            "image_size": 160,
            "max_reference_per_class": None,
        },
        "bounds": {"image_size": "[75, inf)", "max_reference_per_class": "[1, inf)"},
        "needs_weights": True,
    }
]

FACE_WORDS = ("celeba", "facescrub", "ffhq", "lfw", "pubfig", "vggface", "casia", "face")


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size, stride: int, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001, momentum=0.1, affine=True)  # TF's epsilon
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class _Residual(nn.Module):
    """Inception-ResNet block: branches concatenated, 1x1 conv up, scaled residual, ReLU."""

    relu_out = True

    def forward(self, x):
        branches = [self.branch0(x), *(getattr(self, f"branch{i}")(x) for i in range(1, self.n_branches))]
        out = self.conv2d(torch.cat(branches, 1)) * self.scale + x
        return self.relu(out) if self.relu_out else out


class Block35(_Residual):
    n_branches = 3

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(256, 32, 1, 1)
        self.branch1 = nn.Sequential(BasicConv2d(256, 32, 1, 1), BasicConv2d(32, 32, 3, 1, 1))
        self.branch2 = nn.Sequential(
            BasicConv2d(256, 32, 1, 1), BasicConv2d(32, 32, 3, 1, 1), BasicConv2d(32, 32, 3, 1, 1)
        )
        self.conv2d = nn.Conv2d(96, 256, 1, 1)
        self.relu = nn.ReLU(inplace=False)


class Block17(_Residual):
    n_branches = 2

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.branch0 = BasicConv2d(896, 128, 1, 1)
        self.branch1 = nn.Sequential(
            BasicConv2d(896, 128, 1, 1),
            BasicConv2d(128, 128, (1, 7), 1, (0, 3)),
            BasicConv2d(128, 128, (7, 1), 1, (3, 0)),
        )
        self.conv2d = nn.Conv2d(256, 896, 1, 1)
        self.relu = nn.ReLU(inplace=False)


class Block8(_Residual):
    n_branches = 2

    def __init__(self, scale: float = 1.0, noReLU: bool = False):  # noqa: N803 - facenet-pytorch's name
        super().__init__()
        self.scale = scale
        self.relu_out = not noReLU
        self.branch0 = BasicConv2d(1792, 192, 1, 1)
        self.branch1 = nn.Sequential(
            BasicConv2d(1792, 192, 1, 1),
            BasicConv2d(192, 192, (1, 3), 1, (0, 1)),
            BasicConv2d(192, 192, (3, 1), 1, (1, 0)),
        )
        self.conv2d = nn.Conv2d(384, 1792, 1, 1)
        if self.relu_out:
            self.relu = nn.ReLU(inplace=False)


class Mixed_6a(nn.Module):  # noqa: N801 - facenet-pytorch's name
    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(256, 384, 3, 2)
        self.branch1 = nn.Sequential(
            BasicConv2d(256, 192, 1, 1), BasicConv2d(192, 192, 3, 1, 1), BasicConv2d(192, 256, 3, 2)
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x)), 1)


class Mixed_7a(nn.Module):  # noqa: N801 - facenet-pytorch's name
    def __init__(self):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 384, 3, 2))
        self.branch1 = nn.Sequential(BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 256, 3, 2))
        self.branch2 = nn.Sequential(
            BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 256, 3, 1, 1), BasicConv2d(256, 256, 3, 2)
        )
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class InceptionResnetV1(nn.Module):
    """The embedding network (``classify=False``): 512-d, L2-normalised."""

    def __init__(self, dropout_prob: float = 0.6):
        super().__init__()
        self.conv2d_1a = BasicConv2d(3, 32, 3, 2)
        self.conv2d_2a = BasicConv2d(32, 32, 3, 1)
        self.conv2d_2b = BasicConv2d(32, 64, 3, 1, 1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3, 1)
        self.conv2d_4b = BasicConv2d(192, 256, 3, 2)
        self.repeat_1 = nn.Sequential(*(Block35(scale=0.17) for _ in range(5)))
        self.mixed_6a = Mixed_6a()
        self.repeat_2 = nn.Sequential(*(Block17(scale=0.10) for _ in range(10)))
        self.mixed_7a = Mixed_7a()
        self.repeat_3 = nn.Sequential(*(Block8(scale=0.20) for _ in range(5)))
        self.block8 = Block8(noReLU=True)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout_prob)
        self.last_linear = nn.Linear(1792, 512, bias=False)
        self.last_bn = nn.BatchNorm1d(512, eps=0.001, momentum=0.1, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b"):
            x = getattr(self, name)(x)
        x = self.block8(self.repeat_3(self.mixed_7a(self.repeat_2(self.mixed_6a(self.repeat_1(x))))))
        x = self.dropout(self.avgpool_1a(x))
        x = self.last_bn(self.last_linear(x.view(x.shape[0], -1)))
        return F.normalize(x, p=2, dim=1)


def load_facenet(pretrained: str = "vggface2", user_weights: dict | None = None):
    """InceptionResnetV1 with a verified facenet-pytorch state dict (its ``logits.*`` dropped)."""
    state, res = weights.load_known(f"facenet-{pretrained}", user_weights)
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    model = InceptionResnetV1()
    model.load_state_dict(state, strict=True)
    return model.eval(), res


def is_face_dataset(name: str, label: str) -> bool:
    text = f"{name} {label}".lower()
    return any(w in text for w in FACE_WORDS)


@torch.no_grad()
def embed(model: nn.Module, x_model_range: torch.Tensor, image_size: int = 160, batch: int = 64) -> torch.Tensor:
    """Embeddings of images in [-1, 1]: 3 channels, resized, fixed_image_standardization."""
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(x_model_range), batch):
        xb = x_model_range[s : s + batch].float().clamp(-1, 1)
        if xb.shape[1] == 1:
            xb = xb.expand(-1, 3, -1, -1)
        if tuple(xb.shape[-2:]) != (image_size, image_size):
            shrink = image_size < max(xb.shape[-2:])
            xb = F.interpolate(
                xb, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=shrink
            )
        # pixel = (x + 1) * 127.5, then (pixel - 127.5) / 128
        out.append(model((xb * (127.5 / 128.0)).to(device)).cpu())
    return torch.cat(out)


def facenet_distance(
    ctx: MetricContext,
    pretrained: str = "vggface2",
    face_dataset: bool | None = None,
    image_size: int = 160,
    max_reference_per_class: int | None = None,
) -> MetricResult:
    from mibench_core.data.common import to_model_range

    res = MetricResult()
    is_face = is_face_dataset(ctx.dataset, ctx.dataset_label) if face_dataset is None else face_dataset
    if not is_face:
        why = "set face_dataset: false" if face_dataset is False else "not a face dataset"
        res.set_missing(
            "facenet_dist",
            f"FaceNet distance is only meaningful on face images; dataset {ctx.dataset!r} "
            f"(label {ctx.dataset_label!r}): {why} (face_dataset: true forces it)",
        )
        return res
    model = pretrained_or_missing(
        res, "facenet_dist", lambda: load_facenet(pretrained, ctx.weights), ctx.device, note="facenet_weights"
    )
    if model is None:
        return res
    values = torch.empty(len(ctx.recon), dtype=torch.float64)
    for c in progress(ctx.classes, desc="facenet", unit="class"):
        m = ctx.recon_labels == c
        ref = class_references(ctx, c, max_reference_per_class)
        if len(ref) == 0:
            values[m] = float("nan")
            continue
        e_rec = embed(model, ctx.recon[m], image_size)
        e_ref = embed(model, to_model_range(ref), image_size)
        values[m] = pairwise_sq_dists(e_rec, e_ref).min(1).values
        res.per_class[c] = {"facenet_dist": values[m].mean().item()}
    res.overall["facenet_dist"] = values.mean().item()
    res.per_sample["facenet_dist"] = values
    return res
