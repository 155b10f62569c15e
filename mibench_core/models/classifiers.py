"""Classifier architectures. Every model maps images in [-1, 1] to logits and
exposes ``features(x)``, its penultimate representation (used by the
evaluation metrics, by feature regularisers and by defenses on hidden layers).
"""

from __future__ import annotations

import torch
from torch import nn

from mibench_core import registry

METHODS = [
    {
        "name": "mcnn",
        "kind": "arch",
        "call": "MCNN",
        "description": "MCNN-like CNN of the GMI/KEDMI MNIST experiments: 3 conv-BN-LeakyReLU blocks",
        "defaults": {"width": 64},
        "bounds": {"width": "[1, inf)"},
    },
    {
        "name": "evalcnn",
        "kind": "arch",
        "call": "EvalCNN",
        "description": "evaluation CNN: 4 conv blocks with double convs and dropout, a different family from MCNN",
        "defaults": {"width": 32, "dropout": 0.3},
        "bounds": {"width": "[1, inf)", "dropout": "[0, 1)"},
    },
    {
        "name": "resnet18",
        "kind": "arch",
        "call": "resnet18",
        "description": "torchvision ResNet-18 with a small-input stem (3x3 conv, stride 1 or 2, no max-pool)",
        "defaults": {"stem_stride": 2},
        "bounds": {"stem_stride": "[1, 2]"},
    },
    {
        "name": "vgg16_bn",
        "kind": "arch",
        "call": "vgg16_bn",
        "description": "torchvision VGG16-BN features with an adaptive pool and a 512-d head",
    },
    {
        "name": "torchvision",
        "kind": "arch",
        "call": "torchvision_classifier",
        "description": "any torchvision classification model by name (param 'model'), head resized",
        "defaults": {
            "model": "resnet18",
            "pretrained_weights": None,
            "pretrained_sha256": None,
            "pretrained_unverified": False,
        },
    },
]


class Classifier(nn.Module):
    feat_dim: int

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MCNN(Classifier):
    """MCNN-like target of the GMI/KEDMI MNIST experiments: three conv-BN-LeakyReLU
    blocks (7x7/64, 5x5/128, 5x5/256 in the originals, here 5-5-3 kernels and a
    width parameter), two max-pools, then a linear head on the flattened
    features. BatchNorm layers make it usable by DeepInversion."""

    def __init__(self, num_classes: int, in_channels: int = 1, resolution: int = 32, width: int = 64):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 5, padding=2), nn.BatchNorm2d(w), nn.LeakyReLU(0.2), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 5, padding=2), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )  # fmt: skip
        self.feat_dim = 4 * w * 4
        self.fc = nn.Linear(self.feat_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class EvalCNN(Classifier):
    """Evaluation model: VGG-style double-conv blocks, global pooling and a
    two-layer head with dropout; a different family from MCNN so that attacks
    overfitting the target's quirks do not transfer for free."""

    def __init__(
        self, num_classes: int, in_channels: int = 1, resolution: int = 32, width: int = 32, dropout: float = 0.3
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for c in (width, 2 * width, 4 * width):
            layers += [
                nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]  # fmt: skip
            c_in = c
        layers += [
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c_in, 256),
            nn.ReLU(inplace=True),
        ]
        self.body = nn.Sequential(*layers)
        self.feat_dim = 256
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(256, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(feats))


class TorchvisionClassifier(Classifier):
    """Wraps a torchvision model: its final linear layer becomes ``fc``, the rest ``features``."""

    def __init__(self, net: nn.Module, num_classes: int, in_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.net = net
        for attr in ("fc", "classifier", "heads", "head"):
            if hasattr(net, attr):
                last = getattr(net, attr)
                if isinstance(last, nn.Sequential):
                    idx = max(i for i, m in enumerate(last) if isinstance(m, nn.Linear))
                    linear = last[idx]
                    last[idx] = nn.Identity()
                elif isinstance(last, nn.Linear):
                    linear = last
                    setattr(net, attr, nn.Identity())
                else:
                    continue
                self.feat_dim = linear.in_features
                self.fc = nn.Linear(self.feat_dim, num_classes)
                break
        else:
            raise ValueError(f"cannot find the classification head of {type(net).__name__}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and self.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x)


def resnet18(num_classes: int, in_channels: int = 1, resolution: int = 32, stem_stride: int = 2) -> Classifier:
    """ResNet-18 with a small-input stem: 3x3 conv (stride ``stem_stride``), no max-pool."""
    import torchvision

    net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=stem_stride, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return TorchvisionClassifier(net, num_classes, in_channels)


def vgg16_bn(num_classes: int, in_channels: int = 1, resolution: int = 32) -> Classifier:
    """VGG16-BN convolutional features, adaptive average pool to 1x1, 512-d features, linear head."""
    import torchvision

    net = torchvision.models.vgg16_bn(weights=None)
    net.features[0] = nn.Conv2d(in_channels, 64, 3, padding=1)
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Sequential(nn.Flatten(), nn.Linear(512, num_classes))
    return TorchvisionClassifier(net, num_classes, in_channels)


def torchvision_classifier(
    num_classes: int,
    in_channels: int = 3,
    resolution: int = 224,
    model: str = "resnet18",
    pretrained_weights: str | None = None,
    pretrained_sha256: str | None = None,
    pretrained_unverified: bool = False,
) -> Classifier:
    """Any ``torchvision.models`` classifier by name. ``pretrained_weights`` is a
    local state dict (safetensors, or a torch file of plain tensors) checked
    against ``pretrained_sha256``, or the torch hub prefix of its file name, or
    loaded unchecked only with ``pretrained_unverified: true``
    (mibench_core.weights.verify_external); its head is replaced."""
    import torchvision

    net = torchvision.models.get_model(model, weights=None)
    if pretrained_weights:
        from mibench_core.weights import load_state_dict, verify_external

        digest, how = verify_external(pretrained_weights, pretrained_sha256, pretrained_unverified)
        state = load_state_dict(pretrained_weights, digest)
        net.load_state_dict(state)
    clf = TorchvisionClassifier(net, num_classes, 3)
    if pretrained_weights:
        clf.pretrained = {"path": str(pretrained_weights), "sha256": digest, "check": how}  # for the manifest
    return clf


def build(arch: str, arch_params: dict, num_classes: int, in_channels: int, resolution: int) -> Classifier:
    factory = registry.load(registry.get("arch", arch))
    return factory(num_classes=num_classes, in_channels=in_channels, resolution=resolution, **arch_params)
