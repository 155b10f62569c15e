"""What a membership attack job receives, built by a trusted job: candidates, population and scenario sets,
never membership.

The candidate pool and the attacker's population are drawn from the data
artifact (:func:`mibench_core.membership.population.build_pool`), which also
knows which candidates are members; the scenario artifact holds each
scenario's members and non-members. Attack jobs (kind ``mia``) read neither:
this stage writes ``inputs.safetensors`` with

* ``cand_x`` / ``cand_y``: the candidates' images and labels (in pool order),
* ``pop_x`` / ``pop_y``: the attacker's population, and ``public_x`` the
  public split (what a reference model's training-time defense may use),
* with scenario sets (set-dependent attacks only): per scenario
  ``<id>.targets`` (its target set, members and non-members merged in
  candidate order), ``<id>.reference`` (its non-member set) and
  ``<id>.n_members`` (how many members the target set holds: the scenario's
  design, e.g. its ratio, never which candidates they are),

and records the dataset's ``num_classes`` / ``channels`` / ``resolution``.
The plan refuses to give a ``mia`` job the data or the scenario artifact
(:data:`mibench_core.plan.PRIVATE_KINDS`); reference-model jobs (kind
``shadow``) read the same artifact without scenario sets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mibench_core import store
from mibench_core.membership.population import build_pool


def run(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.membership.scenarios import load
    from mibench_core.models.train import load_data

    tensors, info = load_data(job["inputs"]["data"]["dir"])
    pool = build_pool(tensors, job["spec"]["pool"])
    out = {"cand_x": pool.cand_x, "cand_y": pool.cand_y, "pop_x": pool.pop_x, "pop_y": pool.pop_y}
    if "public_x" in tensors:  # the public split (a training-time defense of a reference model may use it)
        out["public_x"] = tensors["public_x"]
    n_sets = 0
    if "scenarios" in job["inputs"]:
        sets, _ = load(job["inputs"]["scenarios"]["dir"])
        for sid, s in sets.items():
            out[f"{sid}.targets"] = torch.from_numpy(np.sort(np.r_[s["members"], s["nonmembers"]]).astype(np.int64))
            out[f"{sid}.reference"] = torch.from_numpy(s["reference"].astype(np.int64))
            out[f"{sid}.n_members"] = torch.tensor([len(s["members"])], dtype=torch.int64)
            n_sets += 1
    store.save_tensors(Path(job["outdir"]) / "inputs.safetensors", {k: v.contiguous() for k, v in out.items()})
    results = {k: info[k] for k in ("num_classes", "channels", "resolution")}
    results.update(n_candidates=pool.n_candidates, n_population=len(pool.pop_y), scenarios=n_sets)
    return ["inputs.safetensors"], results, "cpu"


def load(input_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, np.ndarray]], dict]:
    """(pool tensors, scenario sets ``sid -> {"targets", "reference", "n_members"}``, dataset info)."""
    flat = store.load_tensors(Path(input_dir) / "inputs.safetensors")
    pool = {k: flat[k] for k in ("cand_x", "cand_y", "pop_x", "pop_y", "public_x") if k in flat}
    sets: dict[str, dict] = {}
    for key, val in flat.items():
        if "." in key:
            sid, part = key.split(".", 1)
            sets.setdefault(sid, {})[part] = int(val[0]) if part == "n_members" else val.numpy()
    return pool, sets, store.read_manifest(input_dir)["results"]
