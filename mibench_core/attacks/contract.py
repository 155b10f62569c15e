"""The attack contract: what an attack receives (:class:`AttackContext`) and returns (:class:`AttackResult`).

An attack is a function ``run_attack(ctx, **params) -> AttackResult``. What the
context holds depends on the attack's threat model (its registry ``access``):
a white-box attack gets the target model (``ctx.target``); any other access
level gets only a query-counting oracle (``ctx.oracle``) and ``ctx.target``
stays None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mibench_core import store


@dataclass
class AttackContext:
    num_classes: int
    channels: int
    resolution: int
    classes: list[int]  # target classes to invert
    device: torch.device
    gen: torch.Generator
    target: torch.nn.Module | None = None  # white-box only
    prior: Any = None
    data_dir: str | None = None  # for attacks that use public (auxiliary) data
    aux: list[Any] = field(default_factory=list)  # extra attacker-side priors (config key ``aux``), in order
    oracle: Any = None  # black-box / label-only only: mibench_core.attacks.oracle.Oracle

    def public_images(self) -> torch.Tensor:
        """The public split (uint8), the auxiliary data an attacker may hold."""
        return store.load_tensors(Path(self.data_dir) / "data.safetensors")["public_x"]

    def private_sample_indices(self, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``per_class`` random private training samples of every attacked class:
        (index into the data artifact's ``private_train_x`` [N] int64, class [N]).
        For per-sample attacks that invert the prediction of a given private input."""
        y = store.load_tensors(Path(self.data_dir) / "data.safetensors")["private_train_y"]
        idx = []
        for c in self.classes:
            pool = torch.nonzero(y == c).flatten()
            idx.append(pool[torch.randperm(len(pool), generator=self.gen)[:per_class]])
        index = torch.cat(idx).to(torch.int64)
        return index, y[index]

    def victim_outputs(self, index: torch.Tensor) -> torch.Tensor:
        """The oracle's answers on private training samples ``index`` (counted queries).

        What the adversary observes of a victim's input; the images themselves
        never leave this method."""
        from mibench_core.data.common import to_model_range

        if self.oracle is None:
            raise RuntimeError("victim_outputs needs an oracle (a black-box attack)")
        x = store.load_tensors(Path(self.data_dir) / "data.safetensors")["private_train_x"][index]
        return self.oracle(to_model_range(x).to(self.device), slots=torch.arange(len(index)))


@dataclass
class AttackResult:
    images: torch.Tensor  # [N, C, H, W] in [-1, 1]
    labels: torch.Tensor  # [N] target classes
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # per-reconstruction tensors
    info: dict[str, Any] = field(default_factory=dict)  # JSON-able summary (losses, queries)
