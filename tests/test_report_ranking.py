"""Significance-aware rankings from hand-made runs with known per-reconstruction values."""

import json

import numpy as np
import pandas as pd
import torch

from mibench_core import store
from mibench_core.report import ranking
from mibench_core.stats import PER_SAMPLE, PER_SAMPLE_LABELS


def make_runs(tmp_path, runs: dict[tuple[str, str], list[np.ndarray]]):
    """runs: (defense, attack) -> per-seed Acc@1 outcomes (5 classes, equal numbers per class)."""
    rows, files = [], []
    for (defense, attack), per_seed in runs.items():
        for seed, acc in enumerate(per_seed):
            mid = f"metrics-{defense}-{attack}-{seed}"
            d = tmp_path / mid
            d.mkdir()
            labels = torch.arange(len(acc)) % 5
            store.save_tensors(d / PER_SAMPLE, {PER_SAMPLE_LABELS: labels, "acc1": torch.tensor(acc)},
                               metadata={"stat": json.dumps({"acc1": "mean"})})  # fmt: skip
            files.append(str(d / PER_SAMPLE))
            rows.append({"run": f"d.t.{defense}.{attack}" + (f".seed{seed}" if len(per_seed) > 1 else ""),
                         "dataset": "d", "target": "t", "defense": defense, "attack": attack,
                         "replicate_seed": seed if len(per_seed) > 1 else None, "metrics_id": mid,
                         "acc1": float(np.mean(acc)), "acc1_ci_low": float(np.mean(acc)) - 0.1,
                         "acc1_ci_high": float(np.mean(acc)) + 0.05, "n_recon": len(acc),
                         "metric_columns": json.dumps(["acc1"])})  # fmt: skip
    path = tmp_path / "attacks.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path, files


def outcomes(rate: float, n: int, rng) -> np.ndarray:
    return (rng.random(n) < rate).astype(float)


def test_ranking_groups_identical_methods_and_separates_clearly_different_ones(tmp_path):
    rng = np.random.default_rng(0)
    same = outcomes(0.5, 40, rng)
    path, files = make_runs(tmp_path, {
        ("none", "strong"): [np.ones(40)],
        ("none", "twin-a"): [same],
        ("none", "twin-b"): [same.copy()],
        ("none", "weak"): [np.zeros(40)],
    })  # fmt: skip
    out = {k: tmp_path / f"r.{k}" for k in ("parquet", "pairs", "md", "tex")}
    ranking.rank_methods(str(path), files, str(out["parquet"]), str(out["pairs"]), str(out["md"]), str(out["tex"]),
                         {"rank_by": ["acc1"], "permutations": 2000}, seed=0)  # fmt: skip
    ranked = pd.read_parquet(out["parquet"])
    assert list(ranked["method"]) == ["strong", "twin-a", "twin-b", "weak"]
    groups = dict(zip(ranked["method"], ranked["group"], strict=True))
    assert groups["twin-a"] == groups["twin-b"]  # identical outcomes: one group
    assert len({groups["strong"], groups["twin-a"], groups["weak"]}) == 3  # 1.0 vs 0.5 vs 0.0 with 40 each
    pairs = pd.read_parquet(out["pairs"]).set_index(["a", "b"])
    assert pairs.loc[("twin-a", "twin-b"), "p"] == 1.0 and not pairs.loc[("twin-a", "twin-b"), "significant"]
    assert pairs.loc[("strong", "weak"), "p_holm"] < 0.01
    md = out["md"].read_text()
    assert "## d / t / defense none: attacks by Acc@1 (eval model)" in md and "Holm" in md
    assert "| 1 | strong | 1 [0.9, 1.05] | a | 1 | 40 |" in md
    assert r"\begin{tabular}" in out["tex"].read_text()


def test_small_differences_stay_in_one_group_and_defenses_rank_most_protective_first(tmp_path):
    rng = np.random.default_rng(1)
    path, files = make_runs(tmp_path, {
        ("none", "gmi"): [outcomes(0.75, 40, rng)],
        ("mid", "gmi"): [outcomes(0.70, 40, rng)],
        ("bido", "gmi"): [np.r_[np.zeros(35), np.ones(5)]],
    })  # fmt: skip
    rows, pairs, _ = ranking.rankings(pd.read_parquet(path), {p.split("/")[-2]: p for p in files},
                                      {"rank_by": ["acc1"], "permutations": 2000})  # fmt: skip
    defenses = [r for r in rows if r["family"] == "defenses"]
    assert [r["method"] for r in defenses] == ["bido", "mid", "none"]  # lowest attack success first
    g = {r["method"]: r["group"] for r in defenses}
    assert g["mid"] == g["none"] != g["bido"]


def test_replicates_are_pooled_within_seed_and_class(tmp_path):
    rng = np.random.default_rng(2)
    path, files = make_runs(tmp_path, {
        ("none", "a"): [outcomes(0.9, 20, rng) for _ in range(3)],
        ("none", "b"): [outcomes(0.2, 20, rng) for _ in range(3)],
    })  # fmt: skip
    rows, pairs, _ = ranking.rankings(pd.read_parquet(path), {p.split("/")[-2]: p for p in files},
                                      {"rank_by": ["acc1"], "permutations": 1000})  # fmt: skip
    assert [r["n_seeds"] for r in rows] == [3, 3] and rows[0]["n_recon"] == 60
    assert pairs[0]["strata"] == 15 and pairs[0]["pairing"] == "within (seed, class)" and pairs[0]["significant"]
    # the value is the mean over seeds, with the t interval over seeds
    assert rows[0]["ci_low"] < rows[0]["value"] < rows[0]["ci_high"]
