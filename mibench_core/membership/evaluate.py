"""The membership evaluation stage: every attack run of one target under every scenario.

For each scenario (:mod:`mibench_core.membership.scenarios`) and each attack
run: the run's scores and decisions on the scenario's target set (a subset
of the per-candidate ones, or the run's own per-scenario arrays for
set-dependent attacks), the true membership from the scenario, and every
metric of :mod:`mibench_core.membership.metrics` (a missing one is null, its
reason under ``missing``). ``metrics.json`` holds one
row per (run, scenario) and the ROC curve of each run on the natural scenario
(``ES00``; else the first), downsampled for log-log plots, keyed by the run's id (the
report names runs by the labels of the config, not of the manifests).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mibench_core import store
from mibench_core.membership import metrics as M
from mibench_core.membership.common import load_scores
from mibench_core.membership.scenarios import load as load_scenarios

SCENARIO_FIELDS = (
    "distribution", "level", "differential", "ratio", "level_value", "spread_value", "distance_mean",
    "distance_sd", "ks_pvalue", "differential_value", "differential_achieved", "differential_min",
    "differential_max", "ratio_value", "n_members", "n_nonmembers", "n_reference", "pairs_available",
    "pairs_selected", "pool_distance_mean", "pool_distance_sd", "selection",
)  # fmt: skip


def evaluate_run(scores: dict[str, np.ndarray], sets: dict[str, np.ndarray], sid: str):
    """(scores, decisions, labels) of one run on one scenario's target set."""
    members, nonmembers = sets["members"], sets["nonmembers"]
    targets = np.sort(np.r_[members, nonmembers])
    labels = np.isin(targets, members)
    if f"{sid}.scores" in scores:
        return scores[f"{sid}.scores"], scores[f"{sid}.decisions"].astype(bool), labels
    if "scores" not in scores:
        raise KeyError(f"no scores for scenario {sid}")
    return scores["scores"][targets], scores["decisions"][targets].astype(bool), labels


def run(job: dict) -> tuple[list[str], dict, str]:
    sets, records = load_scenarios(job["inputs"]["scenarios"]["dir"])
    roc_sid = "ES00" if "ES00" in sets else records[0]["id"]
    rows, roc = [], {}
    mia_roles = sorted((r for r in job["inputs"] if r.startswith("mia")), key=lambda r: int(r[3:]))
    for role in mia_roles:
        mia_dir = job["inputs"][role]["dir"]
        manifest = store.read_manifest(mia_dir)
        scores = load_scores(mia_dir)
        for rec in records:
            s, d, y = evaluate_run(scores, sets[rec["id"]], rec["id"])
            values, missing = M.evaluate(s, d, y)
            values = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}
            rows.append({
                "mia_id": manifest["id"], "scenario": rec["id"],
                **{f"scenario.{k}": rec.get(k) for k in SCENARIO_FIELDS},
                **values, "missing": missing,
            })  # fmt: skip
            if rec["id"] == roc_sid and y.any() and (~y).any():
                fpr, tpr, _ = M.roc_curve(s, y)
                fx, ty = M.downsample_roc(fpr, tpr)
                roc[manifest["id"]] = {"fpr": fx, "tpr": ty, "auc": values["auc"], "scenario": roc_sid}
    store.write_json(Path(job["outdir"]) / "metrics.json", {"rows": rows, "roc": roc})
    return ["metrics.json"], {"rows": len(rows), "scenarios": len(records), "runs": len(mia_roles)}, "cpu"
