"""What a split-inference technique receives (:class:`SplitContext`) and returns (:class:`SplitResult`).

A technique is ``run_attack(ctx, **params) -> SplitResult``. Every technique
gets the features the untrusted party observes, ``ctx.features = f1(x0)`` for
the victims' inputs ``x0`` (never the inputs themselves), the input format and
the attacker's own data (:meth:`SplitContext.attacker_images`). What else it
gets is its registry ``access`` (the stage fills only that):

* ``white-box``: ``ctx.f1``, the edge part with the target's weights (frozen);
* ``feature-queries``: ``ctx.oracle``, a query-counting
  :class:`~mibench_core.split.oracle.FeatureOracle` of ``f1`` (black box);
* ``query-free``: ``ctx.f2``, the cloud part with the target's weights
  (frozen: the untrusted party runs it), and ``ctx.shadow_f1(structure)``,
  a freshly initialised edge network of the target's structure (``same``)
  or of the alternative one (``alternative``) -- knowledge of the
  architecture, not of its weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mibench_core import store
from mibench_core.split.settings import DATA_SOURCES, LABELLED_SOURCES

_SPLIT_OF = {"train": "private_train", "heldout": "private_val", "public": "public"}


@dataclass
class SplitContext:
    features: torch.Tensor  # f1(x0) of the victims, what the untrusted party observes
    image_shape: tuple[int, int, int]  # (C, H, W) of the inputs
    num_classes: int
    split_point: str
    device: torch.device
    gen: torch.Generator
    data_dir: str
    f1: nn.Module | None = None  # white-box only
    oracle: Any = None  # feature-queries only: FeatureOracle
    f2: nn.Module | None = None  # query-free only
    shadow_f1: Callable[[str], nn.Module] | None = None  # query-free only: "same" | "alternative"
    _data: dict | None = field(default=None, repr=False)

    def _tensors(self) -> dict:
        if self._data is None:
            self._data = store.load_tensors(Path(self.data_dir) / "data.safetensors")
        return self._data

    def attacker_images(
        self, source: str, samples: int | None, labelled: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The attacker's images in [-1, 1] (float, CPU) and their labels (None for unlabelled sources).

        ``samples`` caps a data split with a seeded random subset (None: all of it) and is the number of
        noise images (required for ``noise``). Noise images are uniform in [0, 1] per pixel."""
        from mibench_core.data.common import to_model_range

        if source not in DATA_SOURCES:
            raise ValueError(f"unknown attacker data {source!r}; valid: {', '.join(DATA_SOURCES)}")
        if labelled and source not in LABELLED_SOURCES:
            raise ValueError(f"attacker data {source!r} has no labels; labelled: {', '.join(LABELLED_SOURCES)}")
        if source == "noise":
            if not samples:
                raise ValueError("noise queries need a number of samples")
            x = torch.rand((samples, *self.image_shape), generator=self.gen) * 2 - 1
            return x, None
        data = self._tensors()
        x = data[f"{_SPLIT_OF[source]}_x"]
        y = data.get(f"{_SPLIT_OF[source]}_y")
        if samples is not None and samples < len(x):
            pick = torch.randperm(len(x), generator=self.gen)[:samples]
            x, y = x[pick], (y[pick] if y is not None else None)
        return to_model_range(x), (y if labelled else None)


@dataclass
class SplitResult:
    images: torch.Tensor  # [N, C, H, W] reconstructions in [-1, 1], one per victim, in ctx.features' order
    info: dict[str, Any] = field(default_factory=dict)  # JSON-able summary (losses, queries, shadow accuracy)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # per-victim tensors (final feature loss)
