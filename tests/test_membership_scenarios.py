"""The scenario generator: sets with the requested distance distribution, level, differential distance and ratio."""

import math

import numpy as np
import pytest

from mibench_core.membership import scenarios as S


def brute_mmd2(x, y):
    z = np.r_[x, y]
    n = len(z)
    d2 = np.array([[((a - b) ** 2).sum() for b in z] for a in z])
    base = d2.sum() / (n * n - n) / 4
    k = sum(np.exp(-d2 / (base * 2**i)) for i in range(5))
    m = len(x)
    return k[:m, :m].mean() + k[m:, m:].mean() - 2 * k[:m, m:].mean()


def test_mmd_is_the_benchmarks_multi_kernel_estimate():
    rng = np.random.default_rng(0)
    x, y = rng.random((7, 4)), rng.random((5, 4)) + 0.3
    assert S.mmd2(x, y) == pytest.approx(brute_mmd2(x, y))
    assert S.mmd2(x, x) == pytest.approx(0.0, abs=1e-12)
    xb, yb = rng.random((3, 10, 4)), rng.random((3, 10, 4))
    assert S.batch_mmd2(xb, yb) == pytest.approx([brute_mmd2(a, b) for a, b in zip(xb, yb)])


def pool(n=1500, k=5, seed=0):
    """Synthetic target outputs: members confident, non-members less so, with per-example spread."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, 2 * n)
    logits = rng.normal(0, 1, (2 * n, k))
    logits[np.arange(2 * n), y] += np.r_[rng.uniform(1, 7, n), rng.uniform(0, 5, n)]
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), np.r_[np.ones(n, bool), np.zeros(n, bool)], rng.uniform(size=2 * n)


CFG = {"batch_size": 10, "select_fraction": 0.25, "spread": 0.3, "mode": "quantile", "reference_size": 100,
       "natural": True, "list": []}  # fmt: skip


def one(distribution, level=0.5, differential=0.5, ratio=0.0, mode="quantile", n=1500, **kw):
    probs, member, risk = pool(n)
    cfg = {**CFG, **kw, "mode": mode, "natural": False,
           "list": [{"id": "X", "distribution": distribution, "level": level, "differential": differential,
                     "ratio": ratio}]}  # fmt: skip
    sets, recs = S.generate(probs, member, risk, cfg, seed=1)
    return probs, member, risk, {k.split(".", 1)[1]: v for k, v in sets.items()}, recs[0]


def close_to_level(rec, slack=0.1):
    """The mean of the chosen distances is the level, up to the sampling noise of the drawn targets."""
    sd, n = rec["spread_value"], rec["pairs_selected"]
    return abs(rec["distance_mean"] - rec["level_value"]) < 3 * sd / math.sqrt(n) + slack * sd


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_continuous_distance_distributions_have_the_requested_law_and_level(distribution):
    probs, member, _, sets, rec = one(distribution, level=0.5, n=2000, select_fraction=0.15)
    assert rec["ks_pvalue"] > 0.01, rec
    assert close_to_level(rec), rec
    assert rec["distance_sd"] == pytest.approx(rec["spread_value"], rel=0.3)
    assert rec["n_members"] == rec["n_nonmembers"] == rec["pairs_selected"] * 10


def test_bernoulli_distances_take_two_values_half_each():
    probs, member, _, sets, rec = one("bernoulli", level=0.5, n=2000, select_fraction=0.15)
    assert close_to_level(rec, slack=0.05), rec
    assert rec["distance_sd"] == pytest.approx(rec["spread_value"], rel=0.15)  # the mass sits at level +- sd


def test_distance_level_follows_the_quantile_and_absolute_modes():
    probs, member, _, _, low = one("normal", level=0.25)
    _, _, _, _, high = one("normal", level=0.75)
    assert low["level_value"] < high["level_value"] and low["distance_mean"] < high["distance_mean"]
    _, _, _, _, absolute = one("normal", level=0.55, mode="absolute", n=2000, select_fraction=0.15)
    assert absolute["level_value"] == 0.55 and close_to_level(absolute), absolute


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_differential_distance_is_reached(q):
    probs, member, _, sets, rec = one("uniform", differential=q)
    lo, hi = rec["differential_min"], rec["differential_max"]
    assert hi > lo
    assert rec["differential_value"] == pytest.approx(lo + q * (hi - lo))
    assert abs(rec["differential_achieved"] - rec["differential_value"]) < 0.05 * (hi - lo)
    targets = np.r_[sets["members"], sets["nonmembers"]]
    assert rec["differential_achieved"] == pytest.approx(S.mmd2(probs[targets], probs[sets["reference"]]))
    assert len(sets["reference"]) == 100 and not member[sets["reference"]].any()  # non-members only


@pytest.mark.parametrize("ratio", [0.2, 0.4, 0.45, 0.49])
def test_ratio_left_without_inference_removes_the_lowest_risk_members(ratio):
    # scenarios that differ only in their ratio share the target set before filtering
    probs, member, risk, sets, rec = one("normal", ratio=ratio)
    _, _, _, full, rec0 = one("normal", ratio=0.0)
    n_target = rec0["n_members"] + rec0["n_nonmembers"]
    removed = np.setdiff1d(full["members"], sets["members"])
    assert len(removed) == math.ceil(ratio * n_target)
    assert rec["ratio_value"] == pytest.approx(len(removed) / n_target) and rec["ratio_value"] >= ratio
    assert np.array_equal(sets["nonmembers"], full["nonmembers"])  # only members are removed
    assert risk[removed].max() <= risk[sets["members"]].min()


def test_sets_are_disjoint_and_the_grid_is_numbered():
    probs, member, risk = pool(n=600)
    cfg = {**CFG, "select_fraction": 0.3, "reference_size": 100,
           "grid": {"distributions": ["normal", "uniform", "bernoulli"], "levels": [0.25, 0.75],
                    "differentials": [0.5], "ratios": [0.0, 0.4]}}  # fmt: skip
    sets, recs = S.generate(probs, member, risk, cfg, seed=0)
    assert [r["id"] for r in recs] == ["ES00", *[f"ES{i:02d}" for i in range(1, 13)]]
    assert recs[1]["distribution"] == "normal" and recs[12]["distribution"] == "bernoulli"
    for r in recs:
        m, n, ref = (sets[f"{r['id']}.{k}"] for k in ("members", "nonmembers", "reference"))
        assert member[m].all() and not member[n].any() and not member[ref].any()
        assert not (set(m) | set(n)) & set(ref)
    # the same scenario gives the same sets whatever the rest of the grid
    again, recs2 = S.generate(probs, member, risk, {**cfg, "grid": {**cfg["grid"], "ratios": [0.4]}}, seed=0)
    assert np.array_equal(again["ES01.members"], sets["ES02.members"])


def test_the_full_seed_factor_grid_has_108_scenarios_numbered_in_order():
    grid = {"distributions": ["normal", "uniform", "bernoulli"], "levels": [2.893, 3.813, 4.325],
            "differentials": [0.085, 0.119, 0.157], "ratios": [0.2, 0.4, 0.45, 0.49]}  # fmt: skip
    listed = S.scenario_list({"natural": False, "grid": grid})
    assert len(listed) == 108 and listed[0]["id"] == "ES01" and listed[-1]["id"] == "ES108"


def test_too_small_a_pool_is_an_error_naming_the_key():
    probs, member, risk = pool(n=20)
    with pytest.raises(ValueError, match="membership.pool"):
        S.generate(probs, member, risk, {**CFG, "reference_size": 15}, seed=0)


def test_the_membership_config_keeps_108_grid_scenarios_with_unfiltered_ones():
    import yaml

    from tests.test_membership_plan import REPO

    sc = yaml.safe_load((REPO / "config" / "membership.yaml").read_text())["membership"]["scenarios"]
    listed = S.scenario_list({"natural": True, **sc})
    grid = [r for r in listed if r["distribution"] != "natural"]
    assert len(grid) == 108 and any(r["ratio"] == 0 for r in grid)
    assert {r["distribution"] for r in grid if r["ratio"] == 0} == {"normal", "uniform", "bernoulli"}
