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
from pathlib import Path

import torch

from mibench_core import registry, store
from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.runtime import pick_device, seed_everything

log = logging.getLogger("mibench.attack")


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
