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
"""

from __future__ import annotations

import torch

from mibench_core.metrics.common import MetricContext, MetricResult, mean_over_classes
from mibench_core.metrics.functional import centroid_dist, frechet_distance_features, knn_min_sq_dist
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


def knn_distance(ctx: MetricContext) -> MetricResult:
    res = MetricResult()
    total, count = 0.0, 0
    for c, f, r in _per_class(ctx):
        d = knn_min_sq_dist(f, r)
        res.per_class[c] = {"knn_dist": d.mean().item()}
        total, count = total + d.sum().item(), count + len(d)
    res.overall["knn_dist"] = total / count
    return res


def feature_distance(ctx: MetricContext) -> MetricResult:
    res = MetricResult()
    total, count = 0.0, 0
    for c, f, r in _per_class(ctx):
        d = centroid_dist(f, r)
        res.per_class[c] = {"feat_dist": d.mean().item()}
        total, count = total + d.sum().item(), count + len(d)
    res.overall["feat_dist"] = total / count
    return res


def prdc(ctx: MetricContext, k: int) -> MetricResult:
    res = MetricResult()
    names = ("precision", "recall", "density", "coverage")
    short = []
    for c, f, r in _per_class(ctx):
        if len(f) <= k or len(r) <= k:
            res.per_class[c] = {n: None for n in names}
            short.append(c)
            continue
        res.per_class[c] = prdc_fn(r, f, k)
    for n in names:
        res.overall[n] = mean_over_classes(res.per_class, n)
        if res.overall[n] is None:
            res.set_missing(n, f"every class has <= k={k} reconstructions or private images")
    return res


def _frechet_or_reason(f, r) -> tuple[float | None, str | None]:
    if len(f) < 2 or len(r) < 2:
        return None, "fewer than 2 samples"
    if not (torch.isfinite(f).all() and torch.isfinite(r).all()):
        return None, "Frechet distance not computable: non-finite features"
    return frechet_distance_features(f, r), None


def eval_frechet(ctx: MetricContext) -> MetricResult:
    res = MetricResult()
    fake, _ = ctx.recon_eval()
    real, _ = ctx.private_eval()
    for c, f, r in _per_class(ctx):
        res.per_class[c] = {"eval_fd": _frechet_or_reason(f, r)[0]}
    value, reason = _frechet_or_reason(fake, real)
    if value is None:
        res.set_missing("eval_fd", reason)
    else:
        res.overall["eval_fd"] = value
    return res
