"""RMIA (Zarifzadeh, Liu, Shokri 2024, "Low-cost high-power membership inference attacks", ICML), online and
offline.

``Pr(x | theta)`` is the released probability of the true label (averaged
over ``augmentations`` augmented queries, as for LiRA). The likelihood ratio
of a candidate ``x`` against a population sample ``z`` is
``LR(x, z) = [Pr(x | theta) / Pr(x)] / [Pr(z | theta) / Pr(z)]``, where
``Pr(.)`` is the mean over reference models; the score is the fraction of
``population_samples`` population samples ``z`` with ``LR(x, z) >= gamma``.

* **online** (``rmia-online``): ``Pr(x)`` averages every online reference
  model (half of them trained on ``x``);
* **offline** (``rmia-offline``): only OUT models exist for a candidate;
  the paper's linear approximation ``Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2``
  with ``offline_a`` (``a``), applied alike to ``Pr(x)`` and ``Pr(z)``
  (privacytrustlab/ml_privacy_meter ``modules/mia/attacks/rmia.py``,
  ``run_rmia``: ``mean_x`` and ``mean_z`` from the OUT signals). ``a`` is tuned
  as that code's ``tune_offline_a``: one reference model plays the target
  (the "paired model"), the other references attack it on its own IN / OUT
  population points for ``a`` in 0, 0.1, ..., 1, and the ``a`` with the
  highest AUC is kept (``offline_a: null``, the default; a number fixes it).

The ``z`` come from the attacker's population (never a member, never a
candidate) and are queried on the target (counted). Online: ``Pr(z)``
averages every online reference (they train on candidates only, so none saw
``z``); offline: the OUT references of ``z`` and the approximation above. The
score counts ``z`` with ``LR(x, z) > gamma`` (strictly, as ``run_rmia``:
``ratios > 1.0``). The decision threshold on the score is fitted without the
target: each reference plays the target on the points it did and did not
train on (population for offline, candidates for online models), the others
are its references, and its ``z`` never include its own training points.
Paper defaults: ``gamma`` 1, ``a`` tuned; the number of ``z`` is not fixed by
the paper (2,500 here). Deviations from the reference code: the tuning's
pseudo-target uses every other offline reference (the reference code attacks
the paired model with one); with a single offline reference ``a`` cannot be
tuned and falls back to 0.3 (recorded in the run's ``info``).
"""

from __future__ import annotations

import numpy as np

from mibench_core.membership.attacks.common import leave_one_out_threshold, require
from mibench_core.membership.context import MIAContext, MIAResult, Reference
from mibench_core.membership.signals import true_prob

METHODS = [
    {
        "name": "rmia-online",
        "kind": "mia",
        "call": "run_online",
        "description": "RMIA online (Zarifzadeh et al. 2024): likelihood ratio of x against population samples z",
        "defaults": {"augmentations": 2, "gamma": 1.0, "population_samples": 2500, "samples": None},
        "bounds": {"augmentations": "[1, inf)", "gamma": "(0, inf)", "population_samples": "[1, inf)"},
        "access": "probabilities",
        "aux": ["online"],
    },
    {
        "name": "rmia-offline",
        "kind": "mia",
        "call": "run_offline",
        "description": "RMIA offline (Zarifzadeh et al. 2024): OUT references with the linear Pr(x) approximation",
        "defaults": {"augmentations": 2, "gamma": 1.0, "offline_a": None, "population_samples": 2500, "samples": None},
        "bounds": {"augmentations": "[1, inf)", "gamma": "(0, inf)", "offline_a": "[0, 1]"},
        "access": "probabilities",
        "aux": ["offline"],
    },
]


A_GRID = np.round(np.arange(0, 1.1, 0.1), 1)  # tune_offline_a's grid
A_UNTUNED = 0.3  # with one offline reference (nothing to tune on)


def rmia_scores(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float) -> np.ndarray:
    """Fraction of ``z`` with ``ratio_x / ratio_z > gamma`` for each ``x``."""
    zs = np.sort(ratio_z)
    return np.searchsorted(zs, ratio_x / gamma, side="left") / len(zs)


def _pr(ctx: MIAContext, ref: Reference, part: str, idx: np.ndarray, labels: np.ndarray, n_aug: int) -> np.ndarray:
    return np.mean([true_prob(ctx.shadow_answers(ref, part, a)[idx], labels) for a in range(n_aug)], axis=0)


def _marginal(pr_refs: np.ndarray, refs_in: np.ndarray | None, offline_a: float | None) -> np.ndarray:
    """``Pr(x)`` from ``[R, n]`` reference probabilities; offline: OUT only and the linear approximation."""
    if offline_a is None:
        return pr_refs.mean(0)
    out = ~refs_in
    out[:, ~out.any(0)] = True
    pr_out = (pr_refs * out).sum(0) / out.sum(0)
    return 0.5 * ((1 + offline_a) * pr_out + (1 - offline_a))


def _attack(ctx, refs, n_aug, gamma, n_z, offline_a, samples, salt) -> MIAResult:
    y, py = ctx.candidates_y.numpy(), ctx.population_y.numpy()
    rng = ctx.rng(salt)
    z = np.sort(rng.choice(len(py), min(n_z, len(py)), replace=False))
    idx = np.arange(len(y))
    offline = refs[0].mode == "offline"
    info: dict = {}
    if offline and offline_a is None:
        offline_a, info["offline_a_auc"] = tune_offline_a(ctx, refs, z, n_aug, gamma, samples, salt + 2)
        info["offline_a_tuned"] = offline_a is not None
        if offline_a is None:
            offline_a = A_UNTUNED
    if offline:
        info["offline_a"] = offline_a
    a = offline_a if offline else None
    pr_x_t = np.mean([true_prob(ctx.target_answers(k), y) for k in range(n_aug)], axis=0)
    pr_z_t = np.mean([true_prob(ctx.population_answers(z, k), py[z]) for k in range(n_aug)], axis=0)
    pr_x_refs = np.stack([_pr(ctx, r, "cand", idx, y, n_aug) for r in refs])
    pr_x = _marginal(pr_x_refs, np.stack([r.cand_in for r in refs]), a)
    pr_z_refs = np.stack([_pr(ctx, r, "pop", z, py[z], n_aug) for r in refs])
    pr_z = _marginal(pr_z_refs, np.stack([r.pop_in[z] for r in refs]), a)
    score = rmia_scores(pr_x_t / np.maximum(pr_x, EPS), pr_z_t / np.maximum(pr_z, EPS), gamma)

    part = "pop" if offline else "cand"  # where the references' own members are
    labels = py if part == "pop" else y

    def pseudo(target: Reference, others: list[Reference], pidx: np.ndarray) -> np.ndarray:
        return _pseudo_scores(ctx, target, others, pidx, part, labels, z, n_aug, gamma, a)

    tau = leave_one_out_threshold(ctx, refs, pseudo, samples, salt + 1, part)
    if tau is None:  # one reference model, no pseudo-target: member when x beats half the z
        tau = 0.5
    info.update(references=len(refs), threshold=tau, population_z=len(z))
    return MIAResult(score, score >= tau, info=info)


EPS = 1e-30


def _pseudo_scores(ctx, target, others, pidx, part, labels, z, n_aug, gamma, a) -> np.ndarray:
    """RMIA scores of points ``pidx`` against a reference playing the target, the ``others`` its references;
    its ``z``: the population samples it did not train on, other than the scored points (NaN scores when
    none is left)."""
    py = ctx.population_y.numpy()
    zz = z[~target.pop_in[z]]
    if part == "pop":
        zz = np.setdiff1d(zz, pidx)
    if len(zz) == 0:
        return np.full(len(pidx), np.nan)
    own_x = _pr(ctx, target, part, pidx, labels[pidx], n_aug)
    own_z = _pr(ctx, target, "pop", zz, py[zz], n_aug)
    refs_x = np.stack([_pr(ctx, r, part, pidx, labels[pidx], n_aug) for r in others])
    ins = np.stack([(r.pop_in if part == "pop" else r.cand_in)[pidx] for r in others])
    mx = _marginal(refs_x, ins, a)
    refs_z = np.stack([_pr(ctx, r, "pop", zz, py[zz], n_aug) for r in others])
    mz = _marginal(refs_z, np.stack([r.pop_in[zz] for r in others]), a)
    return rmia_scores(own_x / np.maximum(mx, EPS), own_z / np.maximum(mz, EPS), gamma)


def tune_offline_a(ctx, refs, z, n_aug, gamma, samples, salt) -> tuple[float | None, float | None]:
    """``a`` of the grid 0, 0.1, ..., 1 with the highest AUC when the other offline references attack the first
    one on its balanced IN / OUT population points (ml_privacy_meter's ``tune_offline_a``; the first ``a`` on
    ties). ``(None, None)`` with one reference."""
    from mibench_core.membership.attacks.common import shadow_sets
    from mibench_core.membership.metrics import auc

    if len(refs) < 2:
        return None, None
    target, others = refs[0], refs[1:]
    _, ins, outs = shadow_sets(ctx, [target], samples, salt)[0]
    pidx = np.r_[ins, outs]
    truth = np.r_[np.ones(len(ins), bool), np.zeros(len(outs), bool)]
    py = ctx.population_y.numpy()
    best_a, best_auc = None, -1.0
    for a in A_GRID:
        s = _pseudo_scores(ctx, target, others, pidx, "pop", py, z, n_aug, gamma, float(a))
        if not np.isfinite(s).all():
            return None, None
        value = auc(s, truth)
        if value > best_auc:
            best_a, best_auc = float(a), value
    return best_a, best_auc


def run_online(ctx: MIAContext, augmentations: int, gamma: float, population_samples: int, samples) -> MIAResult:
    require(ctx.online, 2, "rmia-online", "online")
    return _attack(ctx, ctx.online, augmentations, gamma, population_samples, None, samples, salt=6)


def run_offline(
    ctx: MIAContext, augmentations: int, gamma: float, offline_a: float | None, population_samples: int, samples
) -> MIAResult:
    require(ctx.offline, 1, "rmia-offline")
    return _attack(ctx, ctx.offline, augmentations, gamma, population_samples, offline_a, samples, salt=8)
