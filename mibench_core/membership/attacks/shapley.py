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
attacker's data). Values are multiplied by the set size ``N``. Shapley values
depend on the set's size and composition (they sum to the k-NN utility), so
the threshold is fitted per scenario composition, without the target: on an
offline shadow model's answers, a set of as many of its members and
non-members as the scenario's target set holds (the scenario's public design:
its size and member count, never which candidates are members), valued
against as many other population points it did not train on as the
scenario's non-member set holds; the value best separating its members from
its non-members (balanced accuracy, :func:`fit_threshold`). Set-dependent: it
runs once per scenario. ``samples`` caps the shadow's members and
non-members per composition. Deviation from SHAPr: SHAPr reports the values as
a risk metric and fixes no decision threshold.
"""

from __future__ import annotations

import numpy as np

from mibench_core.membership.attacks.common import require
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


def shadow_threshold(
    answers: np.ndarray, labels: np.ndarray, pop_in: np.ndarray, n_in: int, n_out: int, n_test: int, k: int,
    rng: np.random.Generator,
) -> float:  # fmt: skip
    """The balanced-accuracy threshold on one shadow model's scaled values for a set of ``n_in`` of its members
    and ``n_out`` non-members valued against ``n_test`` other non-members (``answers``: its population answers)."""
    ins_all, outs_all = np.flatnonzero(pop_in), np.flatnonzero(~pop_in)
    n_in, n_out = min(n_in, len(ins_all)), min(n_out, len(outs_all) - 1)
    ins = rng.choice(ins_all, n_in, replace=False)
    outs = rng.choice(outs_all, n_out, replace=False)
    rest = np.setdiff1d(outs_all, outs)
    test = rng.choice(rest, min(len(rest), max(n_test, 1)), replace=False)
    valued = np.r_[ins, outs]
    v = knn_shapley(answers[valued], labels[valued], answers[test], labels[test], k) * len(valued)
    return fit_threshold(v[:n_in], v[n_in:])


def run(ctx: MIAContext, k: int, samples: int | None) -> MIAResult:
    if not ctx.scenarios:
        raise ValueError("shapley runs on scenario sets; none were given")
    require(ctx.offline, 1, "shapley")
    answers, y = ctx.target_answers(0), ctx.candidates_y.numpy()
    py = ctx.population_y.numpy()
    ref = ctx.offline[0]
    sh = ctx.shadow_answers(ref, "pop")
    taus: dict[tuple[int, int, int], float] = {}
    per = {}
    for sid, sets in sorted(ctx.scenarios.items()):
        t, r = sets["targets"], sets["reference"]
        n_in = int(sets["n_members"])
        n_out = len(t) - n_in
        if samples is not None:  # keep the proportions, cap the size
            scale = min(1.0, samples / max(n_in, n_out, 1))
            n_in, n_out = max(1, round(n_in * scale)), max(1, round(n_out * scale))
        comp = (n_in, n_out, len(r))
        if comp not in taus:
            taus[comp] = shadow_threshold(sh, py, ref.pop_in, *comp, k, ctx.rng(15 + len(taus)))
        score = knn_shapley(answers[t], y[t], answers[r], y[r], k) * len(t)
        per[sid] = {"scores": score, "decisions": score >= taus[comp]}
    info = {"k": k, "thresholds": {f"{a}/{b}/{c}": v for (a, b, c), v in taus.items()}}
    return MIAResult(None, None, per_scenario=per, info=info)
