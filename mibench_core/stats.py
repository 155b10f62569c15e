"""Interval estimates and significance tests for the benchmark's numbers (numpy; SciPy for t quantiles).

Within a run (the metric stage):

* :func:`stratified_resamples`: bootstrap resamples of a run's reconstructions,
  drawn with replacement *within each class* (an attack makes a fixed number of
  reconstructions per class, so every resample keeps those counts).
* :func:`resampled_statistic` / :func:`bootstrap_interval`: the statistic a
  metric reports (the mean over reconstructions, or the mean over classes of
  the class means) on each resample, and its percentile interval
  (Efron & Tibshirani 1993, ch. 13).

Across replicates (the report stage): :func:`t_interval`, Student's t interval
of the mean over seeds.

Rankings (the report stage): :func:`stratified_permutation_test`, a two-sample
permutation test of the difference of class-balanced means that permutes
method labels only within strata (the class a reconstruction was made for,
and its replicate seed), :func:`holm` (Holm 1979, step-down Bonferroni) and
:func:`compact_letters` (the insert-and-absorb algorithm of Piepho 2004, "An
algorithm for a letter-based representation of all-pairwise comparisons").
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

STATS = ("mean", "class_mean")
PER_SAMPLE = "per_sample.safetensors"  # a metric artifact's per-reconstruction values
PER_SAMPLE_LABELS = "_labels"  # the reconstructions' classes, beside the values


def load_per_sample(metric_dir) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, str]]:
    """(class labels, per-reconstruction values by name, their statistics) of a metric artifact."""
    from safetensors import safe_open

    with safe_open(str(Path(metric_dir) / PER_SAMPLE), framework="np") as fh:
        meta = fh.metadata() or {}
        arrays = {k: fh.get_tensor(k) for k in fh.keys()}
    labels = arrays.pop(PER_SAMPLE_LABELS)
    return labels, {k: v.astype(np.float64) for k, v in arrays.items()}, json.loads(meta.get("stat", "{}"))


def stratified_resamples(labels: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_resamples, N]`` row indices: each row a resample with replacement within each class.

    Column ``j`` of every row holds a reconstruction of the class of reconstruction ``j``.
    """
    labels = np.asarray(labels)
    out = np.empty((n_resamples, len(labels)), dtype=np.int64)
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        out[:, pos] = pos[rng.integers(0, len(pos), size=(n_resamples, len(pos)))]
    return out


def resampled_statistic(values: np.ndarray, labels: np.ndarray, idx: np.ndarray | None = None,
                        stat: str = "mean") -> np.ndarray:  # fmt: skip
    """The statistic of ``values`` on each resample ``idx`` ``[B, N]`` (``None``: on the sample itself, ``[1]``).

    ``mean``: the mean over reconstructions (a NaN value makes it NaN). ``class_mean``: the mean
    over classes of the class means, leaving out classes whose values are NaN (PRDC's overall values).
    """
    if stat not in STATS:
        raise ValueError(f"statistic {stat!r}; valid: {', '.join(STATS)}")
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    idx = np.arange(len(values))[None, :] if idx is None else idx
    taken = values[idx]
    if stat == "mean":
        return taken.mean(axis=1)
    means = []
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        means.append(taken[:, pos].mean(axis=1))
    stacked = np.stack(means, axis=1)
    ok = ~np.isnan(stacked)
    count = ok.sum(axis=1)
    total = np.where(ok, stacked, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """The percentile interval of bootstrap replicates (None when any replicate is not finite)."""
    samples = np.asarray(samples, dtype=np.float64)
    if len(samples) == 0 or not np.isfinite(samples).all():
        return None
    lo, hi = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def bootstrap_interval(values: np.ndarray, labels: np.ndarray, resamples: np.ndarray, confidence: float,
                       stat: str = "mean") -> tuple[float, float] | None:  # fmt: skip
    """Percentile bootstrap interval of a per-reconstruction statistic over class-stratified resamples."""
    return percentile_interval(resampled_statistic(values, labels, resamples, stat), confidence)


def class_sizes(labels: np.ndarray) -> dict[int, int]:
    """Reconstructions per class."""
    classes, counts = np.unique(np.asarray(labels), return_counts=True)
    return {int(c): int(n) for c, n in zip(classes, counts, strict=True)}


def too_few_per_class(labels: np.ndarray) -> str | None:
    """Why a run's values get no within-run interval (fewer than two reconstructions in a class), or None."""
    sizes = class_sizes(labels)
    small = sorted(c for c, n in sizes.items() if n < 2)
    if not small:
        return None
    return (
        f"fewer than two reconstructions in class {small[0]}"
        + (f" (and {len(small) - 1} more classes)" if len(small) > 1 else "")
        + ": a class with one reconstruction shows no within-class variation, so no within-run interval"
    )


def is_binary(values: np.ndarray) -> bool:
    """Whether per-reconstruction values are successes and failures (1/0; NaN-free): a proportion."""
    v = np.asarray(values, dtype=np.float64)
    return len(v) > 0 and bool(np.isin(v, (0.0, 1.0)).all())


def design_effect(values: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(design effect, intraclass correlation) of values clustered by class (Kish 1965).

    The ICC is the one-way ANOVA estimator (MSB - MSW) / (MSB + (m0 - 1) MSW) with m0 the
    adjusted mean class size (Donner 1986), clipped to [0, 1]; the design effect is
    1 + (mean class size - 1) ICC. Without between- and within-class variation (every value
    equal) or with one class the ICC cannot be estimated and counts as 0.
    """
    v = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    k, n = len(classes), len(v)
    if k < 2 or n <= k:
        return 1.0, 0.0
    sizes = np.array([(labels == c).sum() for c in classes], dtype=np.float64)
    means = np.array([v[labels == c].mean() for c in classes])
    grand = v.mean()
    msb = float((sizes * (means - grand) ** 2).sum() / (k - 1))
    msw = float(sum(((v[labels == c] - m) ** 2).sum() for c, m in zip(classes, means, strict=True)) / (n - k))
    m0 = (n - (sizes**2).sum() / n) / (k - 1)
    denom = msb + (m0 - 1) * msw
    icc = 0.0 if denom <= 0 else min(1.0, max(0.0, (msb - msw) / denom))
    return 1.0 + (n / k - 1.0) * icc, icc


def proportion_interval(values: np.ndarray, labels: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """(low, high, effective n): Wilson score interval of a proportion of clustered 0/1 values.

    The reconstructions of one class share the class (and, for many attacks, one learned
    distribution or one top-k selection), so they are not independent: n is deflated by the
    design effect (:func:`design_effect`) and the Wilson interval (Wilson 1927; statsmodels'
    ``proportion_confint``) computed at the effective n. The interval is conditional on the run's
    trained models: it says nothing of another seed's run. It lies in [0, 1], holds the
    estimate, and has positive width for every n >= 2.
    """
    from statsmodels.stats.proportion import proportion_confint

    v = np.asarray(values, dtype=np.float64)
    p = float(v.mean())
    deff, _ = design_effect(v, labels)
    n_eff = len(v) / deff
    lo, hi = proportion_confint(p * n_eff, n_eff, alpha=1 - confidence, method="wilson")
    lo, hi = min(max(float(lo), 0.0), p), max(min(float(hi), 1.0), p)  # rounding only
    return lo, hi, n_eff


def basic_log_interval(estimate: float, samples: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """Basic (reverse-percentile) bootstrap interval on the log scale of a positive statistic.

    A set-level distance (the Frechet distance) is biased upward on a resample, which repeats
    reconstructions: its bootstrap distribution sits above the estimate and a percentile interval
    is shifted up. The basic interval 2 log t - q_hi, 2 log t - q_lo (Davison & Hinkley 1997,
    eq. 5.6) reflects that shift back; on the log scale it stays above 0. None when a replicate
    or the estimate is not finite and positive.
    """
    s = np.asarray(samples, dtype=np.float64)
    if len(s) == 0 or not np.isfinite(s).all() or (s <= 0).any() or not (estimate > 0 and math.isfinite(estimate)):
        return None
    q_lo, q_hi = np.quantile(np.log(s), [(1 - confidence) / 2, (1 + confidence) / 2])
    t = math.log(estimate)
    return float(min(math.exp(2 * t - q_hi), estimate)), float(max(math.exp(2 * t - q_lo), estimate))


def t_interval(values: Sequence[float], confidence: float) -> tuple[float, float | None, float | None]:
    """(mean, low, high): Student's t interval of the mean; no interval from fewer than 2 values."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(x) == 0:
        return math.nan, None, None
    mean = float(x.mean())
    if len(x) < 2:
        return mean, None, None
    from scipy import stats

    half = float(stats.t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def stratified_permutation_test(
    a_values: np.ndarray,
    a_strata: Sequence[Hashable],
    b_values: np.ndarray,
    b_strata: Sequence[Hashable],
    n_permutations: int,
    rng: np.random.Generator,
) -> tuple[float, float, int]:
    """(difference, two-sided p-value, number of strata) for "A and B have the same outcomes".

    The statistic is the mean over the strata both samples have of (mean of A - mean of B) in
    the stratum: a class-balanced difference. Under the null the method labels are exchangeable
    within a stratum, so each permutation shuffles them there; p = (1 + #{|T*| >= |T|}) / (1 + P).
    NaN values are left out; without a common stratum the difference and p are NaN.
    """
    a_values, b_values = np.asarray(a_values, dtype=np.float64), np.asarray(b_values, dtype=np.float64)
    codes: dict = {}  # strata may be tuples: code them as integers
    a_strata = np.asarray([codes.setdefault(s, len(codes)) for s in a_strata], dtype=np.int64)
    b_strata = np.asarray([codes.setdefault(s, len(codes)) for s in b_strata], dtype=np.int64)
    a_ok, b_ok = ~np.isnan(a_values), ~np.isnan(b_values)
    a_values, a_strata, b_values, b_strata = a_values[a_ok], a_strata[a_ok], b_values[b_ok], b_strata[b_ok]
    common = sorted(set(a_strata.tolist()) & set(b_strata.tolist()))
    if not common:
        return math.nan, math.nan, 0
    observed = 0.0
    permuted = np.zeros(n_permutations)
    for s in common:
        a_s, b_s = a_values[a_strata == s], b_values[b_strata == s]
        observed += a_s.mean() - b_s.mean()
        pooled = np.concatenate([a_s, b_s])
        order = np.argsort(rng.random((n_permutations, len(pooled))), axis=1)
        shuffled = pooled[order]
        permuted += shuffled[:, : len(a_s)].mean(axis=1) - shuffled[:, len(a_s) :].mean(axis=1)
    observed /= len(common)
    permuted /= len(common)
    tol = 1e-12 * max(1.0, abs(observed))
    extreme = int((np.abs(permuted) >= abs(observed) - tol).sum())
    return float(observed), (1 + extreme) / (1 + n_permutations), len(common)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count as tests).

    Sorted ascending, the i-th smallest of m gets max_{j<=i} min(1, (m - j + 1) p_(j)).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def _letter(i: int) -> str:
    letters = string.ascii_lowercase
    return letters[i] if i < len(letters) else letters[i // len(letters) - 1] + letters[i % len(letters)]


def compact_letters(order: Sequence[str], different: set[frozenset]) -> dict[str, str]:
    """Letters per method such that two methods share a letter iff they are not significantly different.

    ``order``: the methods, best first; ``different``: the pairs (frozensets) that differ
    significantly. Insert and absorb (Piepho 2004): start with one group of every method; a
    significant pair splits each group holding both into one without either of them; groups
    inside others are absorbed. Letters go to groups in order of their best member.
    """
    groups: list[set[str]] = [set(order)]
    for pair in sorted(different, key=lambda p: sorted(p)):
        i, j = sorted(pair)
        split: list[set[str]] = []
        for g in groups:
            split += [g - {j}, g - {i}] if i in g and j in g else [g]
        kept: list[set[str]] = []
        for k, g in enumerate(split):
            if any(g < h or (g == h and k2 < k) for k2, h in enumerate(split) if k2 != k):
                continue
            kept.append(g)
        groups = kept
    rank = {m: r for r, m in enumerate(order)}
    groups.sort(key=lambda g: sorted(rank[m] for m in g))
    out = {m: "" for m in order}
    for n, g in enumerate(groups):
        for m in g:
            out[m] += _letter(n)
    return out
