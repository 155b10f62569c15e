"""The split models of He, Zhang, Lee 2019 and the alternative structures of their shadow models.

Both nets are the authors' (their ``net.py``), with every layer a named child
of one ``nn.Sequential`` (``layers``) so that "f1 = the layers up to the split
point" is well defined; the last linear layer is the classification head
``fc`` (the house's :class:`~mibench_core.models.classifiers.Classifier`
contract: ``features`` = ``layers``, the penultimate representation). They
train in the model stage like any target, so training-time defenses apply.

* ``lenet-split`` (the paper's LeNet for MNIST): conv1 (8 filters 5x5, no
  padding), ReLU1, pool1 (2x2 max), conv2 (16 filters 5x5), ReLU2, pool2,
  fc1 (120), fc1act (ReLU), fc2 (84), fc2act (ReLU), head fc3. On 28 px
  inputs pool2 is 16x4x4 as in the paper; on 32 px 16x5x5 (fc1 grows).
* ``cifar-cnn-split`` (the paper's CIFAR-10 CNN): conv11, ReLU11, conv12,
  ReLU12, pool1 (64 filters 3x3, padding 1), conv21 ... pool2 (128),
  conv31 ... pool3 (128), fc1 (512), fc1act (sigmoid), head fc2. The
  authors' code names the fully-connected part fc1, fc1act, fc2 (the
  logits); we follow the code.

Split points are the names of ``layers`` (``flatten`` excluded: splitting
after it equals splitting after the last pooling layer); the head is never a
split point (its output is the prediction itself). :meth:`SplitNet.split`
returns ``(f1, f2)`` as modules sharing the model's parameters; ``f2``
ends with the head.

Alternative structures (query-free attack, "different network structure",
the paper's table of shadow models and the authors' ``*Archi2`` classes):

* LeNet: every 5x5 convolution becomes two 3x3 convolutions with no
  activation between them (same receptive field and output size; the
  paper's "two 3x3 conv layers" for conv1 and "four 3x3 conv layers" for
  ReLU2). The first has the 5x5 layer's output channels (the authors' conv1
  alternative: 8 and 8). Deviation: the authors' ReLU2 alternative also drops
  ReLU1 and widens the first pair to 16 channels; we keep every other layer
  as in the target, so one rule covers all ten split points.
* CIFAR CNN: each block's pair of 3x3 convolutions (conv-ReLU-conv) becomes
  one 5x5 convolution with the pair's output channels (the paper's ReLU22 and
  ReLU32 alternatives: 5x5 64 + 5x5 128 (+ 5x5 128)); a block cut after its
  first convolution (split at conv11, ReLU11, conv21, ...) gets 3x3 with a
  quarter of the channels followed by 3x3 with all of them, no activation
  between (the paper's conv11 alternative: 16 + 64 filters).
* Fully-connected layers keep their sizes (the paper defines no alternative
  for them); pooling, activations and flatten are as in the target.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from mibench_core.models.classifiers import Classifier

METHODS = [
    {
        "name": "lenet-split",
        "kind": "arch",
        "call": "LeNetSplit",
        "description": "He et al. 2019 LeNet (conv 8@5x5, conv 16@5x5, fc 120, fc 84) with named split points",
        "split_points": [
            "conv1",
            "ReLU1",
            "pool1",
            "conv2",
            "ReLU2",
            "pool2",
            "fc1",
            "fc1act",
            "fc2",
            "fc2act",
        ],
    },
    {
        "name": "cifar-cnn-split",
        "kind": "arch",
        "call": "CifarCNNSplit",
        "description": "He et al. 2019 CIFAR-10 CNN (3 blocks of two 3x3 convs: 64, 128, 128; fc 512) with named "
        "split points",
        "split_points": [
            "conv11",
            "ReLU11",
            "conv12",
            "ReLU12",
            "pool1",
            "conv21",
            "ReLU21",
            "conv22",
            "ReLU22",
            "pool2",
            "conv31",
            "ReLU31",
            "conv32",
            "ReLU32",
            "pool3",
            "fc1",
            "fc1act",
        ],
    },
]

NOT_SPLIT_POINTS = ("flatten",)


class SplitNet(Classifier):
    """A classifier whose body is one ``nn.Sequential`` of named layers, splittable after any of them."""

    def __init__(self, layers: list[tuple[str, nn.Module]], head: nn.Linear):
        super().__init__()
        self.layers = nn.Sequential(OrderedDict(layers))
        self.fc = head
        self.feat_dim = head.in_features

    @property
    def split_points(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.layers.named_children() if n not in NOT_SPLIT_POINTS)

    def _index(self, point: str) -> int:
        names = [n for n, _ in self.layers.named_children()]
        if point not in self.split_points:
            raise ValueError(f"unknown split point {point!r}; valid: {', '.join(self.split_points)}")
        return names.index(point)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def split(self, point: str) -> tuple[nn.Sequential, nn.Sequential]:
        """``(f1, f2)``: the layers up to and including ``point``, and the rest with the head."""
        items = list(self.layers.named_children())
        idx = self._index(point)
        f1 = nn.Sequential(OrderedDict(items[: idx + 1]))
        f2 = nn.Sequential(OrderedDict(items[idx + 1 :] + [("head", self.fc)]))
        return f1, f2

    def alternative_f1(self, point: str) -> nn.Sequential:  # pragma: no cover - abstract
        raise NotImplementedError


def _fresh(module: nn.Module) -> nn.Module:
    """A new module with the configuration of ``module`` and freshly initialised parameters."""
    import copy

    new = copy.deepcopy(module)
    for m in new.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for p in new.parameters():
        p.requires_grad_(True)
    return new


class LeNetSplit(SplitNet):
    def __init__(self, num_classes: int, in_channels: int = 1, resolution: int = 32):
        side = ((resolution - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"lenet-split needs images of at least 16x16, got {resolution}")
        layers = [
            ("conv1", nn.Conv2d(in_channels, 8, 5)), ("ReLU1", nn.ReLU()), ("pool1", nn.MaxPool2d(2, 2)),
            ("conv2", nn.Conv2d(8, 16, 5)), ("ReLU2", nn.ReLU()), ("pool2", nn.MaxPool2d(2, 2)),
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(16 * side * side, 120)), ("fc1act", nn.ReLU()),
            ("fc2", nn.Linear(120, 84)), ("fc2act", nn.ReLU()),
        ]  # fmt: skip
        super().__init__(layers, nn.Linear(84, num_classes))

    def alternative_f1(self, point: str) -> nn.Sequential:
        """f1's alternative structure: each 5x5 convolution as two 3x3 ones (module docstring)."""
        out: list[tuple[str, nn.Module]] = []
        for name, mod in list(self.layers.named_children())[: self._index(point) + 1]:
            if isinstance(mod, nn.Conv2d) and mod.kernel_size == (5, 5):
                c_in, c_out = mod.in_channels, mod.out_channels
                out += [(f"{name}a", nn.Conv2d(c_in, c_out, 3)), (f"{name}b", nn.Conv2d(c_out, c_out, 3))]
            else:
                out.append((name, _fresh(mod)))
        return nn.Sequential(OrderedDict(out))


class CifarCNNSplit(SplitNet):
    def __init__(self, num_classes: int, in_channels: int = 3, resolution: int = 32):
        if resolution % 8 or resolution < 8:
            raise ValueError(f"cifar-cnn-split needs a resolution divisible by 8, got {resolution}")
        layers: list[tuple[str, nn.Module]] = []
        c_in = in_channels
        for block, c in ((1, 64), (2, 128), (3, 128)):
            layers += [
                (f"conv{block}1", nn.Conv2d(c_in, c, 3, padding=1)), (f"ReLU{block}1", nn.ReLU()),
                (f"conv{block}2", nn.Conv2d(c, c, 3, padding=1)), (f"ReLU{block}2", nn.ReLU()),
                (f"pool{block}", nn.MaxPool2d(2, 2)),
            ]  # fmt: skip
            c_in = c
        side = resolution // 8
        layers += [("flatten", nn.Flatten()), ("fc1", nn.Linear(128 * side * side, 512)), ("fc1act", nn.Sigmoid())]
        super().__init__(layers, nn.Linear(512, num_classes))

    def alternative_f1(self, point: str) -> nn.Sequential:
        """f1's alternative structure: conv pairs as one 5x5, lone convs as 3x3 (c/4) + 3x3 (module docstring)."""
        items = list(self.layers.named_children())[: self._index(point) + 1]
        out: list[tuple[str, nn.Module]] = []
        i = 0
        while i < len(items):
            name, mod = items[i]
            if isinstance(mod, nn.Conv2d):
                pair = i + 2 < len(items) and isinstance(items[i + 2][1], nn.Conv2d)
                if pair:  # conv - ReLU - conv of one block
                    second = items[i + 2][1]
                    out.append((f"{name}x5", nn.Conv2d(mod.in_channels, second.out_channels, 5, padding=2)))
                    i += 3
                    continue
                mid = max(1, mod.out_channels // 4)
                out += [
                    (f"{name}a", nn.Conv2d(mod.in_channels, mid, 3, padding=1)),
                    (f"{name}b", nn.Conv2d(mid, mod.out_channels, 3, padding=1)),
                ]
            else:
                out.append((name, _fresh(mod)))
            i += 1
        return nn.Sequential(OrderedDict(out))
