"""Shapley values: SHAPr (Duddu, Szyller, Asokan 2022, "SHAPr: an efficient and versatile membership privacy
risk metric for machine learning"), the Shapley-value membership score.

SHAPr values each record of a set by its data Shapley value (its average
marginal contribution to a model's utility over every subset of the others)
and reads a high value as memorisation, hence membership risk. As in SHAPr,
the Shapley values are those of a ``k``-nearest-neighbour classifier in the
target model's output space, computed exactly with the recursion of Jia et
al. (2019, "Efficient task-specific data valuation for nearest neighbor
algorithms"): for a test point, sort the set by distance ``a_1 .. a_N`` and
``s(a_N) = 1[y_{a_N} = y_t] / N``,
``s(a_i) = s(a_{i+1}) + (1[y_{a_i} = y_t] - 1[y_{a_{i+1}} = y_t]) / k * min(k, i) / i``;
the value is the mean over test points.

Here the set being valued is a scenario's target set (the target's released
probability vectors, the candidates' labels; members and non-members mixed,
unlabelled), the test points its generated non-member set (with labels, the
attacker's data). Values are multiplied by the set size ``N`` (they sum to
the k-NN accuracy, so scaled values are comparable across set sizes). The
threshold is fitted without the target: the same values computed on an
offline shadow model's answers, for ``samples`` of its members and as many
non-members valued against other population points it did not train on; the
value best separating them. Set-dependent: it runs once per scenario.
"""

from __future__ import annotations

import numpy as np

from mibench_core.membership.attacks.common import require, shadow_sets
from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import fit_threshold

METHODS = [
    {
        "name": "shapley",
        "kind": "mia",
        "call": "run",
        "description": "Shapley values, SHAPr (Duddu et al. 2022): exact k-NN Shapley values in the output space",
        "defaults": {"k": 5, "samples": 500},
        "bounds": {"k": "[1, inf)"},
        "access": "probabilities",
        "aux": ["scenarios", "offline"],
    }
]


def knn_shapley(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int):
    """Exact k-NN Shapley values of every training point (Jia et al. 2019), averaged over the test points."""
    n = len(train_x)
    values = np.zeros(n)
    ranks = np.arange(1, n)  # i = 1 .. N-1 (1-indexed)
    weight = np.minimum(k, ranks) / ranks / k
    for x, y in zip(test_x, test_y):
        order = np.argsort(((train_x - x) ** 2).sum(1), kind="mergesort")
        match = (train_y[order] == y).astype(np.float64)
        s = np.empty(n)
        s[-1] = match[-1] / n
        steps = (match[:-1] - match[1:]) * weight
        s[:-1] = s[-1] + np.cumsum(steps[::-1])[::-1]
        values[order] += s
    return values / max(len(test_x), 1)


def run(ctx: MIAContext, k: int, samples: int | None) -> MIAResult:
    if not ctx.scenarios:
        raise ValueError("shapley runs on scenario sets; none were given")
    require(ctx.offline, 1, "shapley")
    answers, y = ctx.target_answers(0), ctx.candidates_y.numpy()
    py = ctx.population_y.numpy()
    ref, ins, outs = shadow_sets(ctx, ctx.offline[:1], samples, salt=15)[0]
    rest = np.setdiff1d(np.flatnonzero(~ref.pop_in), outs)
    test = ctx.rng(16).choice(rest, min(len(rest), max(len(ins), 1)), replace=False)
    sh = ctx.shadow_answers(ref, "pop")
    valued = np.r_[ins, outs]
    v = knn_shapley(sh[valued], py[valued], sh[test], py[test], k) * len(valued)
    tau = fit_threshold(v[: len(ins)], v[len(ins) :])
    per = {}
    for sid, sets in sorted(ctx.scenarios.items()):
        t, r = sets["targets"], sets["reference"]
        score = knn_shapley(answers[t], y[t], answers[r], y[r], k) * len(t)
        per[sid] = {"scores": score, "decisions": score >= tau}
    return MIAResult(None, None, per_scenario=per, info={"threshold": tau, "k": k})
