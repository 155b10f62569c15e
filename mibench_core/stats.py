"""Interval estimates and significance tests for the benchmark's numbers (numpy, SciPy, statsmodels).

Within a run (the metric stage), every interval conditional on the run's trained models:

* :func:`proportion_interval`: a proportion of 0/1 values (Acc@1) gets the Wilson interval at n
  deflated by the class design effect (:func:`design_effect`).
* :func:`stratified_resamples`, :func:`resampled_statistic`, :func:`bootstrap_interval`: other
  per-reconstruction statistics get the percentile bootstrap over resamples drawn within each
  class (Efron & Tibshirani 1993, ch. 13); :func:`basic_log_interval`: a Frechet distance the basic
  bootstrap interval on the log scale.
* :func:`too_few_per_class`: with fewer than two reconstructions in a class, no interval.

Across replicates (the report stage): :func:`combine_runs`, a random-effects combination of the
runs' values with their within-run variances (logit scale for proportions, log for distances).

Rankings (the report stage): :func:`seed_block_tests`, the run as the unit: a two-way method x
seed analysis with the interaction as error and Holm-corrected pairwise contrasts (:func:`holm`,
statsmodels ``multipletests``); :func:`exact_seed_floor`, the smallest p an exact seed-level test
reaches; :func:`compact_letters` (the insert-and-absorb algorithm of Piepho 2004, "An algorithm
for a letter-based representation of all-pairwise comparisons").
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


SCALES = ("logit", "log", "identity")


def _to_scale(x: np.ndarray, scale: str) -> np.ndarray:
    if scale == "logit":
        return np.log(x) - np.log1p(-x)
    return np.log(x) if scale == "log" else x


def _from_scale(y: float, scale: str) -> float:
    if scale == "logit":
        return float(1.0 / (1.0 + math.exp(-y))) if y > -700 else 0.0
    return float(math.exp(y)) if scale == "log" else float(y)


def combine_runs(
    estimates: Sequence[float],
    scale: str,
    confidence: float,
    n_eff: Sequence[float | None] | None = None,
    intervals: Sequence[tuple | None] | None = None,
) -> tuple[float, float | None, float | None, str]:
    """(estimate, low, high, method) over seeds: a random-effects combination of per-run estimates.

    Each run's estimate carries its within-run variance, so the interval is never narrower than
    the runs' own sampling noise, and the seeds' spread enters as the between-run variance tau^2
    (Paule-Mandel; statsmodels ``combine_effects``). The pooled estimate's interval uses Student's t
    with k - 1 df (k seeds) on the random-effects standard error, never narrower than the normal one.

    Scales, so that no interval leaves the metric's range: ``logit`` for proportions (a run's
    proportion p of n_eff effective reconstructions becomes logit((p n_eff + 1/2) / (n_eff + 1))
    with variance 1 / (n_eff p~ (1 - p~)), the empirical logit of Cox 1970), ``log`` for distances
    (variance from the run's interval, ((log hi - log lo) / 2z)^2), ``identity`` otherwise (from
    the interval's half-width). A run without a within-run variance makes the combination the t
    interval over seeds on that scale (the method says so). One run: its own interval.
    """
    from scipy import stats as sps

    if scale not in SCALES:
        raise ValueError(f"scale {scale!r}; valid: {', '.join(SCALES)}")
    k = len(estimates)
    est = np.asarray(estimates, dtype=np.float64)
    n_eff = list(n_eff) if n_eff is not None else [None] * k
    intervals = list(intervals) if intervals is not None else [None] * k
    z = sps.norm.ppf((1 + confidence) / 2)
    if scale == "logit":
        ne = np.array([math.nan if v is None else float(v) for v in n_eff])
        p = (est * ne + 0.5) / (ne + 1.0)
        y = _to_scale(np.where(np.isnan(ne), np.clip(est, 1e-6, 1 - 1e-6), p), scale)
        var = 1.0 / (ne * p * (1.0 - p))
    else:
        y = _to_scale(est, scale)
        var = np.full(k, np.nan)
        for i, ci in enumerate(intervals):
            if ci is not None and ci[0] is not None and ci[1] is not None:
                lo_i, hi_i = _to_scale(np.array([ci[0], ci[1]], dtype=np.float64), scale)
                var[i] = ((hi_i - lo_i) / (2 * z)) ** 2
    if k == 1:
        lo1, hi1 = intervals[0] if intervals[0] is not None else (None, None)
        return float(est[0]), lo1, hi1, "the run's interval"
    t = sps.t.ppf((1 + confidence) / 2, k - 1)
    if np.isfinite(var).all() and (var > 0).all():
        import warnings

        from statsmodels.stats.meta_analysis import combine_effects

        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # I^2 of identical runs divides by 0
            res = combine_effects(y, var, method_re="pm")
        centre, se = float(res.mean_effect_re), float(math.sqrt(res.var_eff_w_re))
        method = f"random-effects combination of {k} runs (Paule-Mandel tau^2, t with {k - 1} df, {scale} scale)"
    else:
        centre, se = float(y.mean()), float(y.std(ddof=1) / math.sqrt(k))
        method = f"t interval over {k} seeds on the {scale} scale (a run without within-run variance)"
        if not se > 0:  # equal runs without their own variance: no width to show, so no interval
            return _from_scale(centre, scale), None, None, method
    lo, hi = _from_scale(centre - t * se, scale), _from_scale(centre + t * se, scale)
    value = _from_scale(centre, scale)
    return value, min(lo, value), max(hi, value), method


def exact_seed_floor(n_seeds: int, sided: int = 2) -> float:
    """The smallest p an exact seed-level test can reach with ``n_seeds`` paired seeds (sign flips: 2^-n
    one-sided, 2^(1-n) two-sided): a design with a larger floor than alpha cannot show a difference
    without distributional assumptions."""
    return min(1.0, sided / 2.0**n_seeds) if n_seeds > 0 else 1.0


def seed_block_tests(runs: Sequence[tuple[str, Hashable, float]], alpha: float, min_seeds: int = 3) -> dict:
    """All pairwise comparisons of methods from per-run values, the run as the unit.

    ``runs``: (method, seed, value) of every run, a value per run (class-balanced). The model is the
    two-way analysis of a randomized complete block design: value = method + seed + error, seeds
    as blocks, so the method x seed interaction is the error term (df (methods - 1)(seeds - 1)
    when complete; ordinary least squares with statsmodels, which also takes a missing run). Each
    pair gets the t test of its contrast on that error (two-sided), Holm-corrected over the family
    (statsmodels ``multipletests``). Fewer than ``min_seeds`` seeds, or no error df: no test, and
    the reason "not testable with n seeds".

    Returns ``{"pairs": [{a, b, difference, p, p_holm, significant}], "n_seeds", "df",
    "testable", "reason", "exact_floor"}`` (``exact_floor``: :func:`exact_seed_floor`). A method whose
    runs share no seed with another method's (one run shared by every replicate) is in no test.
    """
    import pandas as pd

    df = pd.DataFrame([(str(m), str(s), float(v)) for m, s, v in runs], columns=["method", "seed", "value"])
    df = df[np.isfinite(df["value"])]
    methods = list(dict.fromkeys(str(m) for m, _, _ in runs))
    # a seed with one method's run (a run shared by every replicate, seed None) compares nothing
    per_seed = df.groupby("seed")["method"].transform("nunique")
    alone = sorted(set(df.loc[per_seed < 2, "method"]) - set(df.loc[per_seed >= 2, "method"]))
    df = df[per_seed >= 2]
    n_seeds = int(df["seed"].nunique())
    out = {"pairs": [], "n_seeds": n_seeds, "df": 0, "testable": False, "reason": None,
           "exact_floor": exact_seed_floor(n_seeds)}  # fmt: skip
    present = [m for m in methods if (df["method"] == m).any()]
    design = None
    if n_seeds >= min_seeds and len(present) >= 2:
        from statsmodels.regression.linear_model import OLS

        mx = pd.get_dummies(pd.Categorical(df["method"], categories=present), drop_first=True, dtype=float)
        sx = pd.get_dummies(pd.Categorical(df["seed"]), drop_first=True, dtype=float, prefix="seed")
        design = pd.concat([pd.Series(1.0, index=mx.index, name="const"), mx, sx], axis=1)
        fit = OLS(df["value"].to_numpy(), design.to_numpy()).fit()
        out["df"] = int(round(fit.df_resid))
        if out["df"] < 1 or not fit.mse_resid > 0:
            design = None
    if design is None:
        out["reason"] = f"not testable with {n_seeds} seed{'s' if n_seeds != 1 else ''}"
    means = df.groupby("method")["value"].mean()
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            pair = {"a": a, "b": b, "difference": float(means[a] - means[b]), "p": math.nan}
            out["pairs"].append(pair)
            if design is not None:
                contrast = np.zeros(design.shape[1])
                for m, sign in ((a, 1.0), (b, -1.0)):
                    if m != present[0]:
                        contrast[present.index(m)] = sign
                test = fit.t_test(contrast)
                pair["difference"], pair["p"] = float(np.squeeze(test.effect)), float(np.squeeze(test.pvalue))
    for i, a in enumerate(alone):  # in no seed with another method: never tested
        for b in [*present, *alone[i + 1 :]]:
            out["pairs"].append({"a": a, "b": b, "difference": math.nan, "p": math.nan})
    ps = [p["p"] for p in out["pairs"]]
    adjusted = holm(ps) if design is not None and ps else [math.nan] * len(ps)
    for pair, adj in zip(out["pairs"], adjusted, strict=True):
        pair["p_holm"] = adj
        pair["significant"] = bool(adj == adj and adj < alpha)
    out["testable"] = design is not None
    return out


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count as tests).

    Sorted ascending, the i-th smallest of m gets max_{j<=i} min(1, (m - j + 1) p_(j)).
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if len(ok):
        out[ok] = multipletests(p[ok], method="holm")[1]
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
