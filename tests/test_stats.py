"""Intervals and tests of mibench_core.stats against known rates, hand-computed cases and SciPy."""

import math

import numpy as np
import pytest
import torch

from mibench_core import stats
from mibench_core.metrics import functional


def test_bootstrap_interval_of_a_bernoulli_mean_covers_it_at_the_nominal_rate():
    p, n, draws = 0.3, 100, 400
    rng = np.random.default_rng(0)
    labels = np.zeros(n, dtype=int)
    covered = 0
    for _ in range(draws):
        x = (rng.random(n) < p).astype(float)
        lo, hi = stats.bootstrap_interval(x, labels, stats.stratified_resamples(labels, 1000, rng), 0.95)
        covered += lo <= p <= hi
    # 400 draws: the coverage estimate has a standard error of about 0.011; the percentile
    # interval of a mean of 100 is slightly liberal (about 0.94)
    assert 0.91 <= covered / draws <= 0.985, covered / draws


def test_bootstrap_interval_narrows_as_the_sample_grows():
    rng = np.random.default_rng(1)
    widths = []
    for n in (50, 200, 800):
        x = (rng.random(n) < 0.5).astype(float)
        labels = np.arange(n) % 5
        lo, hi = stats.bootstrap_interval(x, labels, stats.stratified_resamples(labels, 2000, rng), 0.95)
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    # the width of a mean's interval scales as 1 / sqrt(n): x4 the sample, about half the width
    for a, b in zip(widths, widths[1:]):
        assert 1.6 < a / b < 2.5, widths


def test_resamples_stay_within_each_class():
    labels = np.array([0, 0, 0, 1, 1, 2])
    idx = stats.stratified_resamples(labels, 50, np.random.default_rng(0))
    assert idx.shape == (50, 6)
    assert (labels[idx] == labels[None, :]).all()


def test_class_mean_statistic_averages_class_means_and_skips_nan_classes():
    values = np.array([1.0, 0.0, 1.0, 1.0, np.nan, np.nan])
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert stats.resampled_statistic(values, labels, stat="class_mean")[0] == pytest.approx((0.5 + 1.0) / 2)
    assert math.isnan(stats.resampled_statistic(values, labels, stat="mean")[0])
    with pytest.raises(ValueError, match="statistic"):
        stats.resampled_statistic(values, labels, stat="median")


def test_t_interval_matches_scipy():
    from scipy import stats as sps

    values = [0.775, 0.8, 0.65]
    mean, lo, hi = stats.t_interval(values, 0.95)
    ref = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert mean == pytest.approx(np.mean(values)) and (lo, hi) == pytest.approx(ref)
    assert stats.t_interval([0.5], 0.95) == (0.5, None, None)
    assert stats.t_interval([0.5, float("nan"), 0.7], 0.9)[1] == pytest.approx(
        sps.t.interval(0.9, 1, loc=0.6, scale=sps.sem([0.5, 0.7]))[0]
    )


def test_holm_against_a_hand_computed_case():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06, monotone)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = stats.holm([0.2, float("nan"), 0.6])  # NaN is no test: m = 2
    assert adjusted[0] == pytest.approx(0.4) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.6)
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_compact_letters_group_methods_that_do_not_differ():
    order = ["plgmi", "gmi", "kedmi", "vmi"]
    assert stats.compact_letters(order, set()) == dict.fromkeys(order, "a")
    letters = stats.compact_letters(order, {frozenset(("plgmi", "vmi"))})
    assert letters == {"plgmi": "a", "gmi": "ab", "kedmi": "ab", "vmi": "b"}
    different = {frozenset(p) for p in (("plgmi", "gmi"), ("plgmi", "kedmi"), ("plgmi", "vmi"), ("gmi", "vmi"))}
    letters = stats.compact_letters(order, different)
    assert letters == {"plgmi": "a", "gmi": "b", "kedmi": "bc", "vmi": "c"}
    for x in order:
        for y in order:
            if x != y:
                assert (frozenset((x, y)) in different) == (not set(letters[x]) & set(letters[y])), (x, y)


def test_resampled_frechet_distance_equals_the_direct_formula_on_every_resample():
    g = torch.Generator().manual_seed(0)
    fake, real = torch.randn(12, 6, generator=g) + 0.5, torch.randn(300, 6, generator=g)
    idx = np.vstack([np.arange(12), stats.stratified_resamples(np.arange(12) % 3, 5, np.random.default_rng(0))])
    got = functional.frechet_distance_resampled(fake, real, idx)
    for row, value in zip(idx, got):
        want = functional.frechet_distance(*functional.feature_stats(fake[row]), *functional.feature_stats(real))
        assert value == pytest.approx(want, rel=1e-6)


def test_prdc_per_fake_values_average_to_precision_and_density():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(40, 3, generator=g), torch.randn(15, 3, generator=g) * 1.5
    values, per_fake = functional.prdc(real, fake, 3, per_fake=True)
    assert values == functional.prdc(real, fake, 3)
    assert per_fake["precision"].mean().item() == pytest.approx(values["precision"])
    assert per_fake["density"].mean().item() == pytest.approx(values["density"])


def test_proportion_interval_is_never_zero_width_and_stays_in_zero_one():
    for n_per, k in ((2, 5), (8, 5), (1, 2), (4, 3)):
        labels = np.repeat(np.arange(k), n_per)
        n = len(labels)
        if n < 2:
            continue
        for successes in range(n + 1):
            x = np.zeros(n)
            x[:successes] = 1.0  # classes all-right first: the most clustered arrangement
            p = successes / n
            lo, hi, n_eff = stats.proportion_interval(x, labels, 0.95)
            assert 0.0 <= lo <= p <= hi <= 1.0, (n_per, k, successes)
            if p > 0:
                assert hi - lo > 0.01, (n_per, k, successes, lo, hi)
            assert 1 <= n_eff <= n + 1e-9


def test_proportion_interval_matches_wilson_when_classes_do_not_cluster():
    # 40/40 has no variation to cluster: n stays 40, Wilson's lower end is 40 / (40 + z^2)
    labels = np.repeat(np.arange(5), 8)
    lo, hi, n_eff = stats.proportion_interval(np.ones(40), labels, 0.95)
    z = 1.959963984540054
    assert n_eff == 40 and hi == 1.0 and lo == pytest.approx(40 / (40 + z * z), abs=1e-12)
    # 32/40 with four classes all right and one all wrong: ICC 1, the classes are the units (n_eff 5)
    x = (labels < 4).astype(float)
    deff, icc = stats.design_effect(x, labels)
    assert icc == 1.0 and deff == 8.0
    lo, hi, n_eff = stats.proportion_interval(x, labels, 0.95)
    assert n_eff == 5.0
    centre = (0.8 + z * z / 10) / (1 + z * z / 5)
    half = z / (1 + z * z / 5) * math.sqrt(0.8 * 0.2 / 5 + z * z / 100)
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-12)


def test_design_effect_is_one_for_values_independent_of_class():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(10), 50)
    deffs = [stats.design_effect((rng.random(500) < 0.4).astype(float), labels)[0] for _ in range(50)]
    assert 1.0 <= np.mean(deffs) < 1.5


def test_too_few_reconstructions_per_class_is_a_reason():
    assert stats.too_few_per_class(np.array([0, 0, 1, 1])) is None
    assert "class 2" in stats.too_few_per_class(np.array([0, 0, 1, 1, 2]))


def test_basic_log_interval_of_the_frechet_distance_is_not_shifted_up():
    # with-replacement resamples repeat reconstructions and inflate the Frechet distance, so the
    # percentile interval sits above the estimate; the basic interval holds it and stays above 0
    rng = np.random.default_rng(4)
    real = torch.tensor(rng.normal(size=(500, 16)))
    fake = torch.tensor(rng.normal(size=(40, 16)))
    labels = np.repeat(np.arange(5), 8)
    estimate = functional.frechet_distance_features(fake, real)
    samples = functional.frechet_distance_resampled(fake, real, stats.stratified_resamples(labels, 300, rng))
    pct = stats.percentile_interval(samples, 0.95)
    assert pct[0] > estimate  # the defect the basic interval corrects
    lo, hi = stats.basic_log_interval(estimate, samples, 0.95)
    assert 0 < lo < hi and lo <= estimate <= hi and hi < pct[1]


def simulate_family(rng, n_attacks=4, n_seeds=3, n_classes=5, per_class=8, sd_seed=0.6, sd_run=0.5, base=0.6):
    """(method, seed, class-balanced Acc@1) of equally strong attacks: on the logit scale a seed effect
    (one target per seed) and an attack x seed effect (each run's own prior and attack state)."""
    runs = []
    for s in range(n_seeds):
        seed_effect = rng.normal(0, sd_seed)
        for a in range(n_attacks):
            eta = math.log(base / (1 - base)) + seed_effect + rng.normal(0, sd_run)
            class_p = 1 / (1 + np.exp(-(eta + rng.normal(0, 0.3, n_classes))))
            runs.append((f"a{a}", s, float(rng.binomial(per_class, class_p).mean() / per_class)))
    return runs


def test_seed_block_tests_keep_the_family_wise_error_rate_for_equal_attacks():
    # equal attacks whose runs differ by training randomness: the reconstruction-level permutation
    # test rejects such nulls far more often than 5%; the run-level two-way analysis does not
    rng = np.random.default_rng(11)
    sims = 300
    rejected = sum(any(p["significant"] for p in stats.seed_block_tests(simulate_family(rng), 0.05)["pairs"])
                   for _ in range(sims))  # fmt: skip
    # binomial standard error at 5% over 300: 0.0126
    assert rejected / sims <= 0.075, rejected / sims


def test_seed_block_tests_find_a_real_difference_and_refuse_too_few_seeds():
    rng = np.random.default_rng(12)
    runs = simulate_family(rng, n_seeds=5, sd_seed=0.3, sd_run=0.1)
    runs += [("strong", s, 0.97 - 0.01 * s) for s in range(5)]
    out = stats.seed_block_tests(runs, 0.05)
    assert out["testable"] and out["df"] == 16 and out["exact_floor"] == 2 / 32
    assert all(p["significant"] for p in out["pairs"] if "strong" in (p["a"], p["b"]))
    few = stats.seed_block_tests([r for r in runs if r[1] < 2], 0.05)
    assert not few["testable"] and few["reason"] == "not testable with 2 seeds"
    assert all(math.isnan(p["p"]) and not p["significant"] for p in few["pairs"])


def test_combine_runs_stays_in_range_and_is_never_narrower_than_a_run():
    # three equal proportions (BREP-MI's 0.5 of 10 each): the interval keeps each run's sampling noise
    est, lo, hi, method = stats.combine_runs([0.5, 0.5, 0.5], "logit", 0.95, n_eff=[10, 10, 10])
    assert est == pytest.approx(0.5) and lo < 0.3 and hi > 0.7 and "random-effects" in method
    # proportions at 1 and distances near 0 stay inside their ranges
    est, lo, hi, _ = stats.combine_runs([1.0, 0.775, 1.0], "logit", 0.95, n_eff=[40, 40, 40])
    assert 0 < lo < est < hi < 1
    est, lo, hi, _ = stats.combine_runs([4.9, 0.5, 9.4], "log", 0.95, intervals=[(4, 6), (0.3, 0.7), (8, 11)])
    assert 0 < lo < est < hi
    # one run keeps its own interval
    assert stats.combine_runs([0.4], "logit", 0.95, [10], [(0.2, 0.6)])[1:3] == (0.2, 0.6)


def test_a_run_shared_by_every_seed_is_in_no_test():
    rng = np.random.default_rng(13)
    runs = simulate_family(rng, n_seeds=4) + [("shared", None, 0.5)]
    out = stats.seed_block_tests(runs, 0.05)
    assert out["testable"] and out["n_seeds"] == 4 and out["df"] == 9
    shared = [p for p in out["pairs"] if "shared" in (p["a"], p["b"])]
    assert len(shared) == 4 and all(math.isnan(p["p"]) and not p["significant"] for p in shared)
