"""Significance-aware rankings from hand-made runs with known per-reconstruction values."""

import json

import numpy as np
import pandas as pd
import pytest
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
                         "acc1_ci_high": float(np.mean(acc)) + 0.05, "n_recon": len(acc), "acc1_n_eff": len(acc),
                         "metric_columns": json.dumps(["acc1"])})  # fmt: skip
    path = tmp_path / "attacks.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path, files


def outcomes(rate: float, n: int, rng) -> np.ndarray:
    return (rng.random(n) < rate).astype(float)


def rank(tmp_path, runs, **settings):
    path, files = make_runs(tmp_path, runs)
    out = {k: tmp_path / f"r.{k}" for k in ("parquet", "pairs", "md", "tex")}
    ranking.rank_methods(str(path), files, str(out["parquet"]), str(out["pairs"]), str(out["md"]), str(out["tex"]),
                         {"rank_by": ["acc1"], **settings}, seed=0)  # fmt: skip
    return pd.read_parquet(out["parquet"]), pd.read_parquet(out["pairs"]), out["md"].read_text(), out["tex"].read_text()


def test_one_run_per_method_is_not_testable_however_many_reconstructions(tmp_path):
    # 40 reconstructions each, 1.0 against 0.0: one trained run per method says nothing about the methods
    ranked, pairs, md, tex = rank(tmp_path, {("none", "strong"): [np.ones(40)], ("none", "weak"): [np.zeros(40)]})
    assert list(ranked["method"]) == ["strong", "weak"] and set(ranked["group"]) == {""}
    assert pairs["p"].isna().all() and not pairs["significant"].any()
    assert "not testable with 1 seed" in md and "p = 1 at best" in md
    assert "significantly" not in md.split("\n\n", 3)[-1].lower().replace("do not differ significantly", "")
    assert "| 1 | strong | 1 [0.9, 1.05] | 1 | - | 1 | 40 |" in md and r"\begin{tabular}" in tex


def test_replicated_methods_are_ranked_from_per_run_values_with_seeds_as_blocks(tmp_path):
    rng = np.random.default_rng(0)
    twin = [outcomes(0.5, 40, rng) for _ in range(5)]
    ranked, pairs, md, _ = rank(tmp_path, {
        ("none", "strong"): [outcomes(0.95, 40, rng) for _ in range(5)],
        ("none", "twin-a"): twin,
        ("none", "twin-b"): [t.copy() for t in twin],
        ("none", "weak"): [outcomes(0.05, 40, rng) for _ in range(5)],
    })  # fmt: skip
    assert list(ranked["method"]) == ["strong", "twin-a", "twin-b", "weak"]
    groups = dict(zip(ranked["method"], ranked["group"], strict=True))
    assert groups["twin-a"] == groups["twin-b"] and len({groups["strong"], groups["twin-a"], groups["weak"]}) == 3
    pairs = pairs.set_index(["a", "b"])
    assert pairs.loc[("twin-a", "twin-b"), "p"] == pytest.approx(1.0) and pairs.loc[("strong", "weak"), "p_holm"] < 0.01
    assert set(pairs["df"]) == {12} and set(pairs["n_seeds"]) == {5}  # (4 - 1)(5 - 1)
    assert "Rests on 5 seeds (error df 12); an exact seed-level test could reach p = 0.062 at best" in md
    # the value over seeds: the random-effects combination, inside [0, 1], per-seed values beside
    strong = ranked.iloc[0]
    assert 0 <= strong["ci_low"] < strong["value"] < strong["ci_high"] <= 1
    assert len(json.loads(strong["per_seed"])) == 5 and "random-effects" in strong["interval"]


def test_defenses_rank_most_protective_first_and_a_seed_effect_is_not_a_method_effect(tmp_path):
    rng = np.random.default_rng(1)
    # every seed shifts all three defenses alike (one target per seed): blocks absorb it
    seed_rate = [0.3, 0.9, 0.5]
    ranked, pairs, _, _ = rank(tmp_path, {
        ("none", "gmi"): [outcomes(r, 40, rng) for r in seed_rate],
        ("mid", "gmi"): [outcomes(r - 0.02, 40, rng) for r in seed_rate],
        ("bido", "gmi"): [outcomes(r - 0.25, 40, rng) for r in seed_rate],
    })  # fmt: skip
    defenses = ranked[ranked["family"] == "defenses"]
    assert list(defenses["method"]) == ["bido", "mid", "none"]  # lowest attack success first
    assert set(defenses["n_seeds"]) == {3}
