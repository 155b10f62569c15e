"""Membership-inference metrics on one evaluation set (NumPy only).

Given per-sample attack ``scores`` (higher = more likely a member), the
attack's own ``decisions`` (its threshold / classifier, fitted without the
evaluation members) and the true membership ``labels``:

* from the decisions (the benchmark's six plus two): ``precision`` =
  TP / (TP + FP), ``recall`` (= TPR) = TP / (TP + FN), ``f1`` =
  2 TP / (2 TP + FP + FN), ``fpr`` = FP / (FP + TN), ``fnr`` = FN / (TP + FN)
  = 1 - recall, ``advantage`` (membership advantage, Yeom et al. 2018) =
  TPR - FPR, ``balanced_accuracy`` = (TPR + TNR) / 2, ``accuracy``;
* from the scores (threshold-free): ``auc``, the area under the ROC curve
  (the Mann-Whitney probability that a random member scores above a random
  non-member, ties counting one half), and ``tpr_at_<a>fpr``, the largest
  TPR over the ROC points whose FPR is strictly below ``a`` (Carlini et al.
  2022's low-FPR metric, as their ``plot.py``: ``tpr[np.where(fpr < a)[0][-1]]``;
  no interpolation). Beside it: ``..._tp`` the number of members found there,
  ``..._max_fp`` the false positives the level allows (``ceil(a * n_nonmembers) - 1``;
  0 where the level is unreachable, with at most ``1 / a`` non-members: the
  value is then the **TPR at 0 FP**) and ``..._ci_low`` / ``..._ci_high``
  the 95 % Clopper-Pearson interval of the TPR (over members only: the
  threshold, set by the top non-members, adds variance it does not cover).

A metric whose denominator is zero (no predicted members for precision, no
members for recall ...) is missing (NaN) with its reason, never 0.
"""

from __future__ import annotations

import math

import numpy as np

FPR_LEVELS = (0.01, 0.001)


def fpr_key(level: float) -> str:
    """Column name of TPR at a FPR level: 0.01 -> ``tpr_at_1pct_fpr``, 0.001 -> ``tpr_at_0.1pct_fpr``."""
    pct = f"{level * 100:g}"
    return f"tpr_at_{pct}pct_fpr"


def _ratio(num: float, den: float, name: str, why: str, missing: dict) -> float:
    if den == 0:
        missing[name] = why
        return math.nan
    return num / den


def decision_metrics(decisions: np.ndarray, labels: np.ndarray) -> tuple[dict, dict]:
    d, y = np.asarray(decisions, bool), np.asarray(labels, bool)
    tp, fp = int(np.sum(d & y)), int(np.sum(d & ~y))
    fn, tn = int(np.sum(~d & y)), int(np.sum(~d & ~y))
    missing: dict[str, str] = {}
    out: dict[str, float] = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    out["precision"] = _ratio(tp, tp + fp, "precision", "the attack predicted no member", missing)
    out["recall"] = _ratio(tp, tp + fn, "recall", "the evaluation set has no member", missing)
    out["f1"] = _ratio(2 * tp, 2 * tp + fp + fn, "f1", "no member and no predicted member", missing)
    out["fpr"] = _ratio(fp, fp + tn, "fpr", "the evaluation set has no non-member", missing)
    out["fnr"] = _ratio(fn, tp + fn, "fnr", "the evaluation set has no member", missing)
    tnr = _ratio(tn, fp + tn, "tnr", "no non-member", {})
    if math.isnan(out["recall"]) or math.isnan(out["fpr"]):
        out["advantage"] = out["balanced_accuracy"] = math.nan
        why = "needs members and non-members"
        missing["advantage"] = missing["balanced_accuracy"] = why
    else:
        out["advantage"] = out["recall"] - out["fpr"]
        out["balanced_accuracy"] = 0.5 * (out["recall"] + tnr)
    out["accuracy"] = _ratio(tp + tn, len(y), "accuracy", "the evaluation set is empty", missing)
    return out, missing


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) over every distinct score, from (0, 0) to (1, 1); predict member when score >= t."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    if not np.isfinite(s).all():
        raise ValueError("membership scores must be finite")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each run of equal scores
    tps = np.cumsum(y)[distinct]
    fps = np.cumsum(~y)[distinct]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thr = np.r_[np.inf, s[distinct]]
    return fpr, tpr, thr


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted one half (equals the trapezoidal area under :func:`roc_curve`)."""
    from scipy.stats import rankdata

    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, level: float) -> float:
    """The largest ROC-vertex TPR with FPR strictly below ``level``."""
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(tpr[fpr < level].max())


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) ``1 - alpha`` interval of a binomial proportion ``k / n``."""
    from scipy.stats import beta

    if n <= 0:
        return math.nan, math.nan
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def low_fpr(scores: np.ndarray, labels: np.ndarray, level: float) -> dict:
    """TPR at FPR strictly below ``level`` with its member count, allowed false positives and interval."""
    y = np.asarray(labels, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    tpr = tpr_at_fpr(scores, y, level)
    tp = int(round(tpr * n_pos))
    lo, hi = clopper_pearson(tp, n_pos)
    key = fpr_key(level)
    return {key: tpr, f"{key}_tp": tp, f"{key}_max_fp": max(int(math.ceil(level * n_neg)) - 1, 0),
            f"{key}_ci_low": lo, f"{key}_ci_high": hi}  # fmt: skip


def low_fpr_keys(level: float) -> list[str]:
    key = fpr_key(level)
    return [key, f"{key}_tp", f"{key}_max_fp", f"{key}_ci_low", f"{key}_ci_high"]


def evaluate(scores: np.ndarray, decisions: np.ndarray, labels: np.ndarray) -> tuple[dict, dict]:
    """Every metric of the module docstring and the reasons of those missing."""
    out, missing = decision_metrics(decisions, labels)
    y = np.asarray(labels, bool)
    names = ["auc", *(k for a in FPR_LEVELS for k in low_fpr_keys(a))]
    if y.all() or (~y).all():
        for name in names:
            out[name] = math.nan
            missing[name] = "threshold-free metrics need members and non-members"
        return out, missing
    out["auc"] = auc(scores, y)
    for a in FPR_LEVELS:
        out.update(low_fpr(scores, y, a))
    return out, missing


def downsample_roc(fpr: np.ndarray, tpr: np.ndarray, points: int = 300) -> tuple[list, list]:
    """ROC points for a log-log plot: every point at low FPR, then a log-spaced subset (keeps the hull's shape)."""
    if len(fpr) <= points:
        return fpr.tolist(), tpr.tolist()
    grid = np.unique(np.r_[0.0, np.logspace(-5, 0, points)])
    idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1))
    return fpr[idx].tolist(), tpr[idx].tolist()
