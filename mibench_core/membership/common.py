"""The membership-inference attack stage: builds what an attack may see, runs it, saves its scores.

The target is reached only through a query-counting
:class:`~mibench_core.attacks.oracle.Oracle` at the attack's registry
``access`` level (for ``top-k``, k is the attack's ``top_k`` parameter); the
config's output processing (``spec.output``) is applied by the oracle, and the
attacker applies the same processing to its own reference models' outputs
(an adversary who knows the API). Reference models come from the shadow
stage (inputs ``offline<i>`` / ``online<i>``); candidates, population and
(set-dependent attacks) scenario sets from a ``mia_input`` artifact (input
``candidates``, :mod:`mibench_core.membership.inputs`), which holds no
membership: the job never receives the data artifact or the scenario
artifact.

Output ``scores.safetensors``: ``scores`` (float64 ``[N]``) and ``decisions``
(uint8) per candidate, or ``<scenario>.scores`` / ``<scenario>.decisions``
aligned with each scenario's target set; the manifest records the queries.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch

from mibench_core import registry, store
from mibench_core.membership.context import MIAContext, MIAResult, Reference
from mibench_core.runtime import pick_device, seed_everything

log = logging.getLogger("mibench.membership")
ROLE = re.compile(r"^(offline|online)(\d+)$")


def load_reference(ref_dir: str, mode: str) -> Reference:
    out = store.load_tensors(Path(ref_dir) / "outputs.safetensors")
    return Reference(
        str(ref_dir), mode, out["pop_logits"], out["cand_logits"],
        out["pop_in"].numpy().astype(bool), out["cand_in"].numpy().astype(bool),
    )  # fmt: skip


def reference_roles(inputs: dict) -> list[tuple[str, int, str]]:
    """(mode, index, role) of every reference-model input (roles ``offline<i>`` / ``online<i>``)."""
    out = []
    for role in inputs:
        m = ROLE.match(role)
        if m:
            out.append((m.group(1), int(m.group(2)), role))
    return out


def run(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.attacks.blackbox import make_postprocess
    from mibench_core.attacks.oracle import build_oracle
    from mibench_core.membership.inputs import load as load_inputs

    device = pick_device(job["device"])
    seed_everything(job["seed"])
    entry = registry.get("mia", job["name"])
    spec, params = job["spec"], job["spec"]["params"]
    pool, sets, info = load_inputs(job["inputs"]["candidates"]["dir"])
    n_candidates = len(pool["cand_y"])
    target_dir = job["inputs"]["target"]["dir"]
    target_manifest = store.read_manifest(target_dir)
    top_k = (params.get("top_k") or info["num_classes"]) if entry.access == "top-k" else None
    output = spec.get("output")
    oracle = build_oracle(
        target_dir, entry.access, device, top_k=top_k,
        postprocess=make_postprocess(output, gen=torch.Generator().manual_seed(job["seed"] + 1)),
    )  # fmt: skip
    refs: dict[str, list[Reference]] = {"offline": [], "online": []}
    for mode, _, role in sorted(reference_roles(job["inputs"])):
        refs[mode].append(load_reference(job["inputs"][role]["dir"], mode))
    ctx = MIAContext(
        num_classes=info["num_classes"], channels=info["channels"], resolution=info["resolution"],
        device=device, seed=job["seed"], access=entry.access, top_k=top_k, oracle=oracle,
        candidates_x=pool["cand_x"], candidates_y=pool["cand_y"], population_x=pool["pop_x"],
        population_y=pool["pop_y"],
        offline=refs["offline"], online=refs["online"], n_augmentations=int(spec.get("augmentations", 1)),
        shadow_postprocess=make_postprocess(output, gen=torch.Generator().manual_seed(job["seed"] + 2)),
        scenarios=sets or None,
        target_arch={k: target_manifest["spec"][k] for k in ("arch", "arch_params")},
    )  # fmt: skip
    result: MIAResult = registry.load(entry)(ctx, **params)
    tensors_out: dict[str, torch.Tensor] = {}
    if result.scores is not None:
        _check(result.scores, result.decisions, n_candidates, entry.name)
        tensors_out["scores"] = torch.from_numpy(np.asarray(result.scores, np.float64))
        tensors_out["decisions"] = torch.from_numpy(np.asarray(result.decisions, bool).astype(np.uint8))
    for sid, arrays in result.per_scenario.items():
        _check(arrays["scores"], arrays["decisions"], len(ctx.scenarios[sid]["targets"]), f"{entry.name} {sid}")
        tensors_out[f"{sid}.scores"] = torch.from_numpy(np.asarray(arrays["scores"], np.float64))
        tensors_out[f"{sid}.decisions"] = torch.from_numpy(np.asarray(arrays["decisions"], bool).astype(np.uint8))
    if not tensors_out:
        raise RuntimeError(f"membership attack {entry.name!r} returned no scores")
    store.save_tensors(Path(job["outdir"]) / "scores.safetensors", tensors_out)
    out_info = {
        "queries": oracle.queries,
        "access": entry.access,
        "top_k": top_k,
        "n_candidates": n_candidates,
        "n_offline": len(ctx.offline),
        "n_online": len(ctx.online),
        **result.info,
    }
    log.info("%s: %d queries", entry.name, oracle.queries)
    return ["scores.safetensors"], out_info, str(device)


def _check(scores, decisions, n: int, what: str) -> None:
    scores = np.asarray(scores)
    if scores.shape != (n,) or np.asarray(decisions).shape != (n,):
        raise RuntimeError(f"membership attack {what}: expected {n} scores and decisions, got {scores.shape}")
    if not np.isfinite(scores).all():
        raise RuntimeError(f"membership attack {what}: {int((~np.isfinite(scores)).sum())} scores are not finite")


def load_scores(mia_dir: str | Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in store.load_tensors(Path(mia_dir) / "scores.safetensors").items()}
