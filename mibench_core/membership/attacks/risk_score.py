"""Privacy risk score (Song & Mittal 2021, "Systematic evaluation of privacy risks of machine learning models",
USENIX Security).

The risk score of a candidate ``(x, y)`` is the posterior probability that it
is a member given the modified entropy ``Mentr(p, y) = -(1 - p_y) log p_y -
sum_{j != y} p_j log(1 - p_j)`` of the target's answer:
``r = P_in(Mentr | y) / (P_in(Mentr | y) + P_out(Mentr | y))`` (equal
priors), with the class-conditional distributions estimated by histograms
of the offline shadow models' members (in) and non-members (out) on the
population: ``bins`` (5) bins per class on a log scale (``log_bins``), a
value outside the bins in the first / last one, an empty bin replaced by the
nearest non-empty one (the authors' code, which the benchmark uses). A
candidate is predicted a member when ``r >= 0.5``.

The scenario generator uses :func:`risk_scores` (the evaluator's shadows) to
decide which members are left without inference.
"""

from __future__ import annotations

import numpy as np

from mibench_core.membership.attacks.common import require, shadow_features
from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import m_entropy

METHODS = [
    {
        "name": "privacy-risk-score",
        "kind": "mia",
        "call": "run",
        "description": "Privacy risk score (Song & Mittal 2021): P(member | modified entropy, class) from shadows",
        "defaults": {"bins": 5, "log_bins": True, "samples": None},
        "bounds": {"bins": "[1, inf)"},
        "access": "probabilities",
        "aux": ["offline"],
    }
]


def _histograms(tr: np.ndarray, te: np.ndarray, num_bins: int, log_bins: bool):
    tr, te = tr.copy(), te.copy()
    if log_bins:
        tr[tr <= 1e-10], te[te <= 1e-10] = 1e-10, 1e-10
    both = np.concatenate([tr, te])
    lo, hi = both.min(), both.max()
    bins = np.logspace(np.log10(lo), np.log10(hi), num_bins + 1) if log_bins else np.linspace(lo, hi, num_bins + 1)
    h_tr = np.histogram(tr, bins)[0] / max(len(tr), 1)
    h_te = np.histogram(te, bins)[0] / max(len(te), 1)
    return h_tr, h_te, bins


def _bin_score(h_tr: np.ndarray, h_te: np.ndarray, ind: int) -> float:
    if h_tr[ind] + h_te[ind] > 0:
        return float(h_tr[ind] / (h_tr[ind] + h_te[ind]))
    for step in range(1, len(h_tr)):
        for j in (ind - step, ind + step):
            if 0 <= j < len(h_tr) and h_tr[j] + h_te[j] > 0:
                return float(h_tr[j] / (h_tr[j] + h_te[j]))
    return 0.5


def risk_scores(
    tr_values: np.ndarray,
    tr_labels: np.ndarray,
    te_values: np.ndarray,
    te_labels: np.ndarray,
    values: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    num_bins: int = 5,
    log_bins: bool = True,
) -> np.ndarray:
    """Song & Mittal's risk score of each ``(value, label)`` from shadow members' (tr) and non-members' (te) values;
    0.5 for a class without shadow values."""
    out = np.full(len(values), 0.5)
    for c in range(num_classes):
        tr, te = tr_values[tr_labels == c], te_values[te_labels == c]
        sel = np.flatnonzero(labels == c)
        if len(tr) == 0 or len(te) == 0 or len(sel) == 0:
            continue
        h_tr, h_te, bins = _histograms(tr, te, num_bins, log_bins)
        for i in sel:
            v = max(values[i], 1e-10) if log_bins else values[i]
            if v >= bins[-1]:
                ind = len(bins) - 2
            elif v <= bins[0]:
                ind = 0
            else:
                ind = int(np.flatnonzero(bins <= v)[-1])
            out[i] = _bin_score(h_tr, h_te, ind)
    return out


def run(ctx: MIAContext, bins: int, log_bins: bool, samples: int | None) -> MIAResult:
    require(ctx.offline, 1, "privacy-risk-score")
    y = ctx.candidates_y.numpy()
    e_in, e_out, y_in, y_out = shadow_features(ctx, ctx.offline, m_entropy, samples, salt=3)
    risk = risk_scores(e_in, y_in, e_out, y_out, m_entropy(ctx.target_answers(0), y), y, ctx.num_classes, bins,
                       log_bins)  # fmt: skip
    return MIAResult(risk, risk >= 0.5, info={"bins": bins})
