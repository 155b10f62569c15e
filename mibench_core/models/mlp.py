"""A multilayer perceptron for tabular data (and flattened images).

The Purchase-100 / Texas-100 classifier of Nasr, Shokri and Houmansadr
(2018, "Machine learning with membership privacy using adversarial
regularization") and of the membership-inference benchmarks that followed:
fully connected layers 1024-512-256-128 with tanh, then a linear head. The
input is the flattened ``[C, R, R]`` tensor (a tabular record is stored as a
zero-padded one-channel square, :func:`mibench_core.data.common.tabular_to_images`).
"""

from __future__ import annotations

import torch
from torch import nn

from mibench_core.models.classifiers import Classifier

METHODS = [
    {
        "name": "mlp",
        "kind": "arch",
        "call": "MLP",
        "description": "MLP for tabular data (Nasr et al. 2018 Purchase/Texas model): 1024-512-256-128, tanh",
        "defaults": {"hidden": [1024, 512, 256, 128], "activation": "tanh"},
    }
]

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class MLP(Classifier):
    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        resolution: int = 32,
        hidden: list[int] | None = None,
        activation: str = "tanh",
    ):
        super().__init__()
        hidden = list(hidden or [1024, 512, 256, 128])
        if not hidden:
            raise ValueError("arch 'mlp': 'hidden' must list at least one layer width")
        if activation not in ACTIVATIONS:
            raise ValueError(f"arch 'mlp': activation {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * resolution * resolution
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        self.body = nn.Sequential(*layers)
        self.feat_dim = width
        self.fc = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
