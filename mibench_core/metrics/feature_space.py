"""Metrics in the evaluation model's penultimate feature space.

* ``knn_distance`` (Zhang et al. 2020): for each reconstruction, the minimum
  squared L2 distance to a private training image of its class; averaged.
* ``feature_distance``: L2 distance to the private class centroid; averaged.
* ``prdc``: precision / recall / density / coverage (Naeem et al. 2020) per
  class (reconstructions of y against private images of y), averaged.
* ``eval_frechet``: Frechet distance between reconstructions and private
  images of the attacked classes in this feature space. It is *not* FID
  (InceptionV3 pool features); the name says so.

Per-class Frechet distances need at least two samples per class and are
missing otherwise; the overall value pools all attacked classes. They are
computed exactly from the features (``functional.frechet_distance_features``,
an SVD of the small cross-product matrix), as FID is: ``scipy.linalg.sqrtm``
of the rank-deficient d x d product of a few reconstructions per class takes
tens of seconds for the 512-d features of the face models, per class.

Intervals: KNN and feature distances, precision and density are means of
per-reconstruction values and get the stage's bootstrap interval; the
Frechet distance is recomputed on each resample of the reconstructions
(:func:`~mibench_core.metrics.functional.frechet_distance_resampled`, exact;
skipped, saying so, when n^3 per resample would be too costly); recall and
coverage get none (see ``PRDC_NO_INTERVAL``). A Frechet distance of few
samples is biased upwards; its interval describes the resampling spread, not
that bias.
"""

from __future__ import annotations

import time

import torch

from mibench_core import stats
from mibench_core.metrics.common import MetricContext, MetricResult, mean_over_classes
from mibench_core.metrics.functional import (
    centroid_dist,
    frechet_distance_features,
    frechet_distance_resampled,
    knn_min_sq_dist,
)
from mibench_core.metrics.functional import prdc as prdc_fn

METHODS = [
    {
        "name": "knn_distance",
        "kind": "metric",
        "call": "knn_distance",
        "description": "min squared L2 in the evaluation model's penultimate space to private images of the class",
        "columns": {
            "knn_dist": {"label": "KNN distance", "better": "lower", "meaning": "closer to private data"},
        },
    },
    {
        "name": "feature_distance",
        "kind": "metric",
        "call": "feature_distance",
        "description": "L2 distance to the private class centroid in the evaluation model's penultimate space",
        "columns": {
            "feat_dist": {"label": "feature distance", "better": "lower", "meaning": "closer to class centroid"},
        },
    },
    {
        "name": "prdc",
        "kind": "metric",
        "call": "prdc",
        "description": "precision / recall / density / coverage (Naeem et al. 2020) in evaluation feature space",
        "columns": {
            "precision": {"label": "precision", "better": "higher", "meaning": "more realistic"},
            "recall": {"label": "recall", "better": "higher", "meaning": "more diverse"},
            "density": {"label": "density"},
            "coverage": {"label": "coverage", "better": "higher", "meaning": "covers more private data"},
        },
        "defaults": {"k": 3},
        "bounds": {"k": "[1, inf)"},
    },
    {
        "name": "eval_frechet",
        "kind": "metric",
        "call": "eval_frechet",
        "description": "Frechet distance in the evaluation model's feature space (not InceptionV3 FID)",
        "columns": {
            "eval_fd": {
                "label": "Frechet distance (eval features)",
                "better": "lower",
                "meaning": "closer distribution",
            },
        },
    },
]


def _per_class(ctx: MetricContext):
    fake, _ = ctx.recon_eval()
    real, _ = ctx.private_eval()
    for c in ctx.classes:
        yield c, fake[ctx.recon_labels == c], real[ctx.private_y == c]


def _per_reconstruction(ctx: MetricContext, name: str, fn) -> MetricResult:
    """The mean over reconstructions of ``fn(features of a class's reconstructions, its private features)``."""
    res = MetricResult()
    values = torch.empty(len(ctx.recon), dtype=torch.float64)
    total, count = 0.0, 0
    for c, f, r in _per_class(ctx):
        d = fn(f, r)
        values[ctx.recon_labels == c] = d.double()
        res.per_class[c] = {name: d.mean().item()}
        total, count = total + d.sum().item(), count + len(d)
    res.overall[name] = total / count
    res.per_sample[name] = values
    return res


def knn_distance(ctx: MetricContext) -> MetricResult:
    return _per_reconstruction(ctx, "knn_dist", knn_min_sq_dist)


def feature_distance(ctx: MetricContext) -> MetricResult:
    return _per_reconstruction(ctx, "feat_dist", centroid_dist)


# Precision and density are means over a class's reconstructions (is it in a private image's k-NN
# ball; in how many), so they resample; recall and coverage count private images reached by the set.
PRDC_NO_INTERVAL = (
    "counts private images reached by the set of reconstructions: a resample repeats reconstructions, "
    "which reach no new images, so its bootstrap distribution is biased low; no interval"
)


def prdc(ctx: MetricContext, k: int) -> MetricResult:
    res = MetricResult()
    names = ("precision", "recall", "density", "coverage")
    per_fake = {n: torch.full((len(ctx.recon),), float("nan"), dtype=torch.float64) for n in ("precision", "density")}
    short = []
    for c, f, r in _per_class(ctx):
        if len(f) <= k or len(r) <= k:
            res.per_class[c] = {n: None for n in names}
            short.append(c)
            continue
        values, fake_values = prdc_fn(r, f, k, per_fake=True)
        res.per_class[c] = values
        for n, v in fake_values.items():
            per_fake[n][ctx.recon_labels == c] = v
    for n in names:
        res.overall[n] = mean_over_classes(res.per_class, n)
        if res.overall[n] is None:
            res.set_missing(n, f"every class has <= k={k} reconstructions or private images")
    for n, v in per_fake.items():
        res.per_sample[n] = v
        res.per_sample_stat[n] = "class_mean"  # the overall values average the classes
    for n in ("recall", "coverage"):
        res.ci_notes[n] = PRDC_NO_INTERVAL
    return res


def _frechet_or_reason(f, r) -> tuple[float | None, str | None]:
    if len(f) < 2 or len(r) < 2:
        return None, "fewer than 2 samples"
    if not (torch.isfinite(f).all() and torch.isfinite(r).all()):
        return None, "Frechet distance not computable: non-finite features"
    return frechet_distance_features(f, r), None


# n x n eigendecompositions per resample (n reconstructions): B n^3 multiply-adds at most, a few seconds
FRECHET_BOOTSTRAP_BUDGET = 2e10


def frechet_interval(ctx: MetricContext, fake: torch.Tensor, real: torch.Tensor,
                     estimate: float) -> tuple[tuple | None, str | None]:  # fmt: skip
    """Interval of a Frechet distance over the job's resamples of the reconstructions (or why not).

    A resample repeats reconstructions, and the Frechet distance's small-sample bias grows as
    distinct samples shrink, so the bootstrap distribution sits above the estimate: the interval is
    the basic bootstrap interval on the log scale (:func:`mibench_core.stats.basic_log_interval`),
    which reflects that shift instead of inheriting it, stays above 0 and holds the estimate.
    Compare Frechet distances only at equal numbers of reconstructions (the bias depends on n)."""
    if ctx.resamples is None:
        return None, "statistics.bootstrap is 0: no intervals"
    b, n = ctx.resamples.shape
    if b * float(n) ** 3 > FRECHET_BOOTSTRAP_BUDGET:
        return None, (
            f"no interval: a resample of {n} reconstructions costs an {n} x {n} eigendecomposition, "
            f"{b} of them exceed the budget ({FRECHET_BOOTSTRAP_BUDGET:.0e} multiply-adds)"
        )
    t0 = time.time()
    ci = stats.basic_log_interval(estimate, frechet_distance_resampled(fake, real, ctx.resamples), ctx.confidence)
    ctx.interval_seconds += time.time() - t0
    return ci, None if ci is not None else "bootstrap replicates not finite and positive"


def eval_frechet(ctx: MetricContext) -> MetricResult:
    res = MetricResult()
    fake, _ = ctx.recon_eval()
    real, _ = ctx.private_eval()
    for c, f, r in _per_class(ctx):
        res.per_class[c] = {"eval_fd": _frechet_or_reason(f, r)[0]}
    value, reason = _frechet_or_reason(fake, real)
    if value is None:
        res.set_missing("eval_fd", reason)
        return res
    res.overall["eval_fd"] = value
    ci, note = frechet_interval(ctx, fake, real, value)
    if ci is not None:
        res.ci["eval_fd"] = ci
    else:
        res.ci_notes["eval_fd"] = note
    return res
