"""The attack stage: builds what an attack may see, runs it, saves reconstructions.

What an attack receives depends on its registry entry's ``access``: a
white-box attack gets the target model itself; any other access level gets
only an oracle (added with the black-box attacks), never the model.
Reconstructions are stored as float32 images in [-1, 1] with their target
labels, ``[N, C, H, W]`` and ``[N]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mibench_core import registry, store
from mibench_core.runtime import pick_device, seed_everything

log = logging.getLogger("mibench.attack")


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

    def public_images(self) -> torch.Tensor:
        """The public split (uint8), the auxiliary data an attacker may hold."""
        return store.load_tensors(Path(self.data_dir) / "data.safetensors")["public_x"]


@dataclass
class AttackResult:
    images: torch.Tensor  # [N, C, H, W] in [-1, 1]
    labels: torch.Tensor  # [N] target classes
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # per-reconstruction tensors
    info: dict[str, Any] = field(default_factory=dict)  # JSON-able summary (losses, queries)


def run(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.models.train import load_classifier
    from mibench_core.priors import load_prior

    device = pick_device(job["device"])
    gen = seed_everything(job["seed"])
    entry = registry.get("attack", job["name"])
    target_dir = job["inputs"]["target"]["dir"]
    target_info = store.read_manifest(target_dir)["results"]
    ctx = AttackContext(
        num_classes=target_info["num_classes"],
        channels=target_info["channels"],
        resolution=target_info["resolution"],
        classes=list(range(target_info["num_classes"])),
        device=device,
        gen=gen,
        data_dir=job["inputs"]["data"]["dir"],
    )
    if entry.access != "white-box":
        raise NotImplementedError(f"attack {entry.name!r}: access {entry.access!r} needs the oracle")
    ctx.target = load_classifier(target_dir, device)
    if "prior" in job["inputs"]:
        ctx.prior = load_prior(job["inputs"]["prior"]["dir"], device)
    n_aux = sum(1 for role in job["inputs"] if role.startswith("aux"))
    ctx.aux = [load_prior(job["inputs"][f"aux{j}"]["dir"], device) for j in range(n_aux)]
    result: AttackResult = registry.load(entry)(ctx, **job["spec"]["params"])
    if result.images.shape[1:] != (ctx.channels, ctx.resolution, ctx.resolution):
        raise RuntimeError(f"attack {entry.name!r} returned images of shape {tuple(result.images.shape)}")
    tensors = {"images": result.images.float().cpu(), "labels": result.labels.long().cpu(), **result.extras}
    store.save_tensors(Path(job["outdir"]) / "recon.safetensors", tensors)
    info = {"num_reconstructions": len(result.images), **result.info}
    return ["recon.safetensors"], info, str(device)


def load_reconstructions(attack_dir: str | Path) -> dict[str, torch.Tensor]:
    return store.load_tensors(Path(attack_dir) / "recon.safetensors")
