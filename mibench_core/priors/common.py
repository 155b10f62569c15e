"""Helpers shared by the prior modules: resolution checks, public subsets, pseudo-labels, sample grids."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from mibench_core import store
from mibench_core.data.common import to_model_range


def n_blocks(resolution: int) -> int:
    n = math.log2(resolution / 4)
    if n < 1 or not n.is_integer():
        raise ValueError(f"the DCGAN-style priors need a power-of-two resolution >= 8, got {resolution}")
    return int(n)


def public_subset(public: torch.Tensor, max_public: int | None, gen: torch.Generator) -> torch.Tensor:
    """The public images an attacker-side artifact uses: all (the papers), or a random ``max_public``
    (a CPU budget: every public image costs a forward pass of the target)."""
    if max_public is None or max_public >= len(public):
        return public
    return public[torch.randperm(len(public), generator=gen)[:max_public]]


@torch.no_grad()
def target_probs(target: nn.Module, x_uint8: torch.Tensor, device: torch.device, batch: int = 512) -> torch.Tensor:
    """Softmax of the target on uint8 images (CPU tensor)."""
    out = []
    for i in range(0, len(x_uint8), batch):
        out.append(target(to_model_range(x_uint8[i : i + batch].to(device))).softmax(1).cpu())
    return torch.cat(out)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    from torchvision.utils import save_image

    with store.atomic_path(path) as tmp:
        save_image(images.add(1).div(2).clamp(0, 1), str(tmp), nrow=nrow, format="png")
