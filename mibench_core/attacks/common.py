"""The attack stage: builds what an attack may see, runs it, saves reconstructions.

What an attack receives depends on its registry entry's ``access``: a
white-box attack gets the target model itself (``ctx.target``); any other
access level (``probabilities``, ``top-k``, ``label``) gets only a
query-counting :class:`~mibench_core.attacks.oracle.Oracle` (``ctx.oracle``;
``ctx.target`` stays None), built here from the target artifact. For
``top-k`` access, k is the attack's ``top_k`` parameter (None: every class).
An attack parameter ``query_budget`` (when the attack has one) becomes the
oracle's budget.

Queries are recorded per run (``info["queries"]``: the oracle's count plus
``info["queries_prior"]``, queries a prior spent through its own oracle) and
per reconstruction (extras ``queries``; when an attack does not set it, each
reconstruction gets its slot's queries plus an equal share of the shared ones).
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
    params = job["spec"]["params"]
    if entry.access == "white-box":
        ctx.target = load_classifier(target_dir, device)
    else:
        from mibench_core.attacks.oracle import build_oracle
        from mibench_core.defenses.output import make_postprocess

        top_k = (params.get("top_k") or ctx.num_classes) if entry.access == "top-k" else None
        # output processing (issue 6): the plan puts it in the spec of black-box runs only;
        # its noise has its own stream so it does not shift the attack's random numbers
        postprocess = make_postprocess(job["spec"].get("output"), gen=torch.Generator().manual_seed(job["seed"] + 1))
        ctx.oracle = build_oracle(
            target_dir, entry.access, device, top_k=top_k, budget=params.get("query_budget"), postprocess=postprocess
        )
    if "prior" in job["inputs"]:
        ctx.prior = load_prior(job["inputs"]["prior"]["dir"], device)
    n_aux = sum(1 for role in job["inputs"] if role.startswith("aux"))
    ctx.aux = [load_prior(job["inputs"][f"aux{j}"]["dir"], device) for j in range(n_aux)]
    result: AttackResult = registry.load(entry)(ctx, **params)
    if ctx.oracle is not None:
        record_queries(result, ctx.oracle)
    if result.images.shape[1:] != (ctx.channels, ctx.resolution, ctx.resolution):
        raise RuntimeError(f"attack {entry.name!r} returned images of shape {tuple(result.images.shape)}")
    bad = (~torch.isfinite(result.images.reshape(len(result.images), -1))).any(1).sum().item()
    if bad:  # an optimisation that diverged: fail the job rather than let metrics score NaNs
        raise RuntimeError(f"attack {entry.name!r}: {bad} of {len(result.images)} reconstructions are not finite")
    tensors = {"images": result.images.float().cpu(), "labels": result.labels.long().cpu(), **result.extras}
    store.save_tensors(Path(job["outdir"]) / "recon.safetensors", tensors)
    info = {"num_reconstructions": len(result.images), **result.info}
    return ["recon.safetensors"], info, str(device)


def record_queries(result: AttackResult, oracle) -> None:
    """Per-run and per-reconstruction query counts of a black-box attack."""
    prior_queries = int(result.info.get("queries_prior") or 0)
    result.info["queries_oracle"] = oracle.queries
    result.info["queries"] = oracle.queries + prior_queries
    if "queries" not in result.extras:
        result.extras["queries"] = oracle.per_reconstruction(len(result.images), extra_shared=prior_queries)


def load_reconstructions(attack_dir: str | Path) -> dict[str, torch.Tensor]:
    return store.load_tensors(Path(attack_dir) / "recon.safetensors")
