"""What a split-inference technique receives (:class:`SplitContext`) and returns (:class:`SplitResult`).

A technique is ``run_attack(ctx, **params) -> SplitResult``. Every technique
gets the features the untrusted party observes, ``ctx.features = f1(x0)`` for
the victims' inputs ``x0`` (never the inputs themselves), the input format and
the attacker's own data (:meth:`SplitContext.attacker_images`). What else it
gets is its registry ``access`` (the stage fills only that):

* ``white-box``: ``ctx.f1``, the edge part with the target's weights (frozen);
* ``feature-queries``: ``ctx.oracle``, a query-counting
  :class:`~mibench_core.split.oracle.FeatureOracle` of ``f1`` (black box),
  and ``ctx.arch``, the architecture's name (the authors' decoders mirror
  its structure, not its weights);
* ``query-free``: ``ctx.f2``, the cloud part with the target's weights
  (frozen: the untrusted party runs it), and ``ctx.shadow_f1(structure)``,
  a freshly initialised edge network of the target's structure (``same``)
  or of the alternative one (``alternative``) -- knowledge of the
  architecture, not of its weights.

The attacker's own data comes through :class:`AttackerData`, which reads
only the splits an attacker may hold (the target's training split, the
private validation split, the public split) from the data artifact, one
tensor at a time, and keeps nothing: the victims (the private test split)
are never loaded into anything a technique receives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mibench_core.split.settings import DATA_SOURCES, LABELLED_SOURCES

_SPLIT_OF = {"train": "private_train", "heldout": "private_val", "public": "public"}


class AttackerData:
    """Read access to the attacker's splits of a data artifact, and to nothing else.

    Each call opens the file and reads the named tensors of one allowed split (no cache); the victims'
    split cannot be named."""

    __slots__ = ("_path",)

    def __init__(self, data_dir: str | Path):
        self._path = str(Path(data_dir) / "data.safetensors")

    def __repr__(self) -> str:
        return "AttackerData(train, heldout, public)"

    def read(self, source: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(images, labels)`` (uint8 images; labels None where the split has none) of ``source``."""
        from safetensors import safe_open

        if source not in _SPLIT_OF:
            raise ValueError(f"no attacker split {source!r}; valid: {', '.join(_SPLIT_OF)}")
        split = _SPLIT_OF[source]
        with safe_open(self._path, framework="pt") as f:
            keys = set(f.keys())
            x = f.get_tensor(f"{split}_x")
            y = f.get_tensor(f"{split}_y") if f"{split}_y" in keys else None
        return x, y


@dataclass
class SplitContext:
    features: torch.Tensor  # f1(x0) of the victims, what the untrusted party observes
    image_shape: tuple[int, int, int]  # (C, H, W) of the inputs
    num_classes: int
    split_point: str
    device: torch.device
    gen: torch.Generator
    data: AttackerData | None = None  # the attacker's own splits (never the victims')
    f1: nn.Module | None = None  # white-box only
    oracle: Any = None  # feature-queries only: FeatureOracle
    f2: nn.Module | None = None  # query-free only
    shadow_f1: Callable[[str], nn.Module] | None = None  # query-free only: "same" | "alternative"
    arch: str = ""  # the target's architecture name (its structure is public; its weights are not)

    def attacker_images(
        self, source: str, samples: int | None, labelled: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The attacker's images in [-1, 1] (float, CPU) and their labels (None for unlabelled sources).

        ``samples`` caps a data split with a seeded random subset (None: all of it) and is the number of
        noise images (required for ``noise``). Noise images are standard Gaussian per pixel, N(0, 1) in
        the model's input range (the paper's Section 5.1: "pure noise sampled from the standard Gaussian
        distribution (zero mean, unit variance)"), so they reach beyond the images' [-1, 1]."""
        from mibench_core.data.common import to_model_range

        if source not in DATA_SOURCES:
            raise ValueError(f"unknown attacker data {source!r}; valid: {', '.join(DATA_SOURCES)}")
        if labelled and source not in LABELLED_SOURCES:
            raise ValueError(f"attacker data {source!r} has no labels; labelled: {', '.join(LABELLED_SOURCES)}")
        if source == "noise":
            if not samples:
                raise ValueError("noise queries need a number of samples")
            return torch.randn((samples, *self.image_shape), generator=self.gen), None
        if self.data is None:
            raise ValueError(f"this technique was given no attacker data (asked for {source!r})")
        x, y = self.data.read(source)
        if samples is not None and samples < len(x):
            pick = torch.randperm(len(x), generator=self.gen)[:samples]
            x, y = x[pick], (y[pick] if y is not None else None)
        return to_model_range(x), (y if labelled else None)


@dataclass
class SplitResult:
    images: torch.Tensor  # [N, C, H, W] reconstructions in [-1, 1], one per victim, in ctx.features' order
    info: dict[str, Any] = field(default_factory=dict)  # JSON-able summary (losses, queries, shadow accuracy)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # per-victim tensors (final feature loss)
