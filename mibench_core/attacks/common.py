"""The attack stage: builds what an attack may see, runs it, saves reconstructions.

What an attack receives depends on its registry entry's ``access``. The
stage calls that access level's builder, named (by module and function) in
:data:`mibench_core.stages.ACCESS_BUILDERS` and imported by name: a
white-box attack gets the target model itself
(:mod:`mibench_core.attacks.whitebox`), any other access level only a
query-counting oracle (:mod:`mibench_core.attacks.blackbox`, which also
records the queries afterwards). The plan adds the builder's import closure
to the attack's code fingerprint from the same mapping, so the oracle and
output processing are part of black-box attacks' ids only.

No attack job reads private data. Its ``data`` input is the dataset's
public view (``ctx.public_images()``, :mod:`mibench_core.data.views`); a
per-sample attack (registry ``"victims": true``) also gets the ``answers``
input, the target's answers on the private samples it inverts, computed by a
trusted job (:mod:`mibench_core.attacks.victims`) and loaded here as
``ctx.victims``. Its reconstructions must name their victim (extras
``victim``, rows of ``ctx.victims``); the victims' queries are added to the
run's count, and ``info["victims_id"]`` records which victims artifact the
answers are of, for the metric stage to check.

Reconstructions are stored as float32 images in [-1, 1] with their target
labels, ``[N, C, H, W]`` and ``[N]``.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import torch

from mibench_core import registry, store
from mibench_core.attacks.contract import AttackContext, AttackResult, VictimAnswers
from mibench_core.runtime import pick_device, seed_everything
from mibench_core.stages import ACCESS_BUILDERS

log = logging.getLogger("mibench.attack")


def access_builder(access: str):
    """The function that prepares the context for an access level (imported by name)."""
    module, _, attr = ACCESS_BUILDERS[access].partition(":")
    return getattr(importlib.import_module(module), attr)


def run(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.priors import load_prior

    device = pick_device(job["device"])
    gen = seed_everything(job["seed"])
    entry = registry.get("attack", job["name"])
    target_info = store.read_manifest(job["inputs"]["target"]["dir"])["results"]
    ctx = AttackContext(
        num_classes=target_info["num_classes"],
        channels=target_info["channels"],
        resolution=target_info["resolution"],
        classes=list(range(target_info["num_classes"])),
        device=device,
        gen=gen,
        public_dir=job["inputs"]["data"]["dir"],
    )
    if entry.victims:
        ctx.victims = VictimAnswers.load(job["inputs"]["answers"]["dir"], device)
    params = job["spec"]["params"]
    finish = access_builder(entry.access)(ctx, job, entry.access, params)
    if "prior" in job["inputs"]:
        ctx.prior = load_prior(job["inputs"]["prior"]["dir"], device)
    n_aux = sum(1 for role in job["inputs"] if role.startswith("aux"))
    ctx.aux = [load_prior(job["inputs"][f"aux{j}"]["dir"], device) for j in range(n_aux)]
    result: AttackResult = registry.load(entry)(ctx, **params)
    if ctx.victims is not None:
        check_victims(entry.name, result, ctx.victims)
    if finish is not None:
        finish(result)
    if result.images.shape[1:] != (ctx.channels, ctx.resolution, ctx.resolution):
        raise RuntimeError(f"attack {entry.name!r} returned images of shape {tuple(result.images.shape)}")
    bad = (~torch.isfinite(result.images.reshape(len(result.images), -1))).any(1).sum().item()
    if bad:  # an optimisation that diverged: fail the job rather than let metrics score NaNs
        raise RuntimeError(f"attack {entry.name!r}: {bad} of {len(result.images)} reconstructions are not finite")
    tensors = {"images": result.images.float().cpu(), "labels": result.labels.long().cpu(), **result.extras}
    store.save_tensors(Path(job["outdir"]) / "recon.safetensors", tensors)
    info = {"num_reconstructions": len(result.images), **result.info}
    return ["recon.safetensors"], info, str(device)


def check_victims(name: str, result: AttackResult, victims: VictimAnswers) -> None:
    """A per-sample attack's reconstructions name their victims (extras ``victim``, int64 rows of ``victims``)."""
    victim = result.extras.get("victim")
    ok = victim is not None and victim.shape == (len(result.images),) and not victim.is_floating_point()
    if ok and len(victim):
        ok = int(victim.min()) >= 0 and int(victim.max()) < len(victims)
    if not ok:
        raise RuntimeError(
            f"attack {name!r} must name each reconstruction's victim: extras 'victim', int64 [N], rows of ctx.victims"
        )
    result.info["victims_id"] = victims.victims_id


def load_reconstructions(attack_dir: str | Path) -> dict[str, torch.Tensor]:
    return store.load_tensors(Path(attack_dir) / "recon.safetensors")
