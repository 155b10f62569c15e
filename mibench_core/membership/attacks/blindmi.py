"""BlindMI-Diff (Hui, Yang, Yuan, Mittal, Cao, Jia 2021, "Practical blind membership inference attack via
differential comparisons", NDSS), with a generated non-member set (BlindMI-Diff-w).

Each sample of the target set is represented by the target's answer as
``(p_y, p_(1), p_(2))`` (the true label's probability and the two largest).
The target set is shuffled and cut into batches of ``batch_size`` (20, the
authors' code); within a batch every sample starts as a member. Differential
comparison: a sample is moved, tentatively, from the batch's member set to
the non-member set; if the MMD between the two sets *grows*, the sample made
the member set less member-like, so it is a non-member and leaves the member
set. This is repeated until a pass moves nothing. MMD: the authors' kernel
(a sum of Gaussian kernels ``exp(-||a - b||^2 / (2 s))`` over 19 scales ``s``
from 1e-6 to 1e6), floored at 1e-4.

The non-member set is the scenario's generated non-member set (the
benchmark replaces BlindMI's own generator, Sobel-filtered images, with the
scenario's, whose differential distance it controls). Decisions are the
algorithm's (hyhmia/BlindMI ``BlindMI_Diff_W.py``, ``diff_Mem_attack``).

The authors' code outputs decisions only. The continuous score for the
threshold-free metrics is the quantity their loop compares for each sample:
``dis_ori - dis_new``, the floored MMD between the non-member set and the
batch's member set minus the floored MMD after moving the sample to the
non-member side, taken at the last pass in which the sample was tested
(the pass that removed a non-member; the final pass for a member). It is
``>= 0`` exactly for the samples the algorithm keeps as members and ``< 0``
for those it removes, so ranking by it agrees with the decisions, and every
sample gets a finite, defined value (a lone final member too: moving it
leaves an empty member set, whose MMD the loop floors). Set-dependent: it
runs once per scenario.
"""

from __future__ import annotations

import numpy as np

from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import sorted_desc, true_prob

METHODS = [
    {
        "name": "blindmi-diff",
        "kind": "mia",
        "call": "run",
        "description": "BlindMI-Diff (Hui et al. 2021): differential comparison against a non-member set, per batch",
        "defaults": {"batch_size": 20, "max_passes": 100},
        "bounds": {"batch_size": "[2, inf)", "max_passes": "[1, inf)"},
        "access": "probabilities",
        "aux": ["scenarios"],
    }
]

SCALES = np.array([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 5, 10, 15, 20, 25, 30, 35, 100, 1e3, 1e4, 1e5, 1e6])
FLOOR = 1e-4


def features(answers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    top = sorted_desc(answers)
    second = top[:, 1] if top.shape[1] > 1 else np.zeros(len(top))
    return np.c_[true_prob(answers, labels), top[:, 0], second]


def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2[..., None] / (2 * SCALES)).sum(-1)


def mmd(x: np.ndarray, y: np.ndarray) -> float:
    """The authors' MMD between two sets (before flooring)."""
    return float(kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean())


class _Batch:
    """MMD between ``R ∪ S`` and ``M`` (``S``, ``M`` subsets of a batch) from precomputed kernel sums."""

    def __init__(self, batch: np.ndarray, reference: np.ndarray, krr: float):
        self.a = kernel(batch, reference).sum(1)  # sum_r k(i, r)
        self.b = kernel(batch, batch)
        self.krr, self.nr = krr, len(reference)

    def dist(self, moved: np.ndarray, members: np.ndarray) -> float:
        ns, nm = int(moved.sum()), int(members.sum())
        if nm == 0:
            return -np.inf
        xx = (self.krr + 2 * self.a[moved].sum() + self.b[np.ix_(moved, moved)].sum()) / (self.nr + ns) ** 2
        yy = self.b[np.ix_(members, members)].sum() / nm**2
        xy = (self.a[members].sum() + self.b[np.ix_(moved, members)].sum()) / ((self.nr + ns) * nm)
        return xx + yy - 2 * xy


def diff_batch(batch: np.ndarray, reference: np.ndarray, krr: float, max_passes: int) -> tuple[np.ndarray, np.ndarray]:
    """(member decisions, scores) of one batch against the non-member set (scores: module docstring)."""
    m = len(batch)
    kb = _Batch(batch, reference, krr)
    none = np.zeros(m, bool)
    pred = np.ones(m, bool)
    scores = np.zeros(m)
    for _ in range(max_passes):
        dis_ori = max(FLOOR, kb.dist(none, pred))
        new = pred.copy()
        for i in np.flatnonzero(pred):
            moved = none.copy()
            moved[i] = True
            rest = pred.copy()
            rest[i] = False
            dis_new = max(FLOOR, kb.dist(moved, rest))
            scores[i] = dis_ori - dis_new
            if dis_new > dis_ori:
                new[i] = False
        if (new == pred).all():
            break
        pred = new
    return pred, scores


def blindmi_diff(
    target_feats: np.ndarray, reference_feats: np.ndarray, batch_size: int, max_passes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    krr = float(kernel(reference_feats, reference_feats).sum())
    order = rng.permutation(len(target_feats))
    decisions, scores = np.zeros(len(order), bool), np.zeros(len(order))
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        d, s = diff_batch(target_feats[idx], reference_feats, krr, max_passes)
        decisions[idx], scores[idx] = d, s
    return decisions, scores


def run(ctx: MIAContext, batch_size: int, max_passes: int) -> MIAResult:
    if not ctx.scenarios:
        raise ValueError("blindmi-diff runs on scenario sets; none were given")
    feats = features(ctx.target_answers(0), ctx.candidates_y.numpy())
    per = {}
    for k, (sid, sets) in enumerate(sorted(ctx.scenarios.items())):
        d, s = blindmi_diff(feats[sets["targets"]], feats[sets["reference"]], batch_size, max_passes, ctx.rng(100 + k))
        per[sid] = {"scores": s, "decisions": d}
    return MIAResult(None, None, per_scenario=per, info={"batch_size": batch_size})
