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
  with ``offline_a`` (``a``; the paper tunes it per dataset with one reference
  model playing the target; here it is a fixed parameter).

The ``z`` come from the attacker's population (never a member, never a
candidate) and are queried on the target (counted); their ``Pr(z)`` averages
every reference model of the set (offline models: each ``z`` is in half of
them, so that mean is the marginal; online models train on candidates only,
so it is the mean over models that never saw ``z``). The decision threshold
on the score is fitted without the target: each reference plays the target
on the points it did and did not train on (population for offline,
candidates for online models), the others are its references. Paper defaults: ``gamma`` 1, ``a`` tuned
(0.3 is a value of the paper's range); the number of ``z`` is not fixed by
the paper (2,500 here).
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
        "defaults": {"augmentations": 2, "gamma": 1.0, "offline_a": 0.3, "population_samples": 2500, "samples": None},
        "bounds": {"augmentations": "[1, inf)", "gamma": "(0, inf)", "offline_a": "[0, 1]"},
        "access": "probabilities",
        "aux": ["offline"],
    },
]


def rmia_scores(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float) -> np.ndarray:
    """Fraction of ``z`` with ``ratio_x / ratio_z >= gamma`` for each ``x``."""
    zs = np.sort(ratio_z)
    return np.searchsorted(zs, ratio_x / gamma, side="right") / len(zs)


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
    pr_x_t = np.mean([true_prob(ctx.target_answers(a), y) for a in range(n_aug)], axis=0)
    pr_z_t = np.mean([true_prob(ctx.population_answers(z, a), py[z]) for a in range(n_aug)], axis=0)
    pr_x_refs = np.stack([_pr(ctx, r, "cand", idx, y, n_aug) for r in refs])
    cand_in = np.stack([r.cand_in for r in refs])
    pr_x = _marginal(pr_x_refs, cand_in, offline_a)
    pr_z = np.stack([_pr(ctx, r, "pop", z, py[z], n_aug) for r in refs]).mean(0)
    eps = 1e-30
    score = rmia_scores(pr_x_t / np.maximum(pr_x, eps), pr_z_t / np.maximum(pr_z, eps), gamma)

    part = "pop" if offline_a is not None else "cand"  # where the references' own members are
    labels = py if part == "pop" else y

    def pseudo(target: Reference, others: list[Reference], pidx: np.ndarray) -> np.ndarray:
        zz = np.setdiff1d(z, pidx) if part == "pop" else z
        own_x = _pr(ctx, target, part, pidx, labels[pidx], n_aug)
        own_z = _pr(ctx, target, "pop", zz, py[zz], n_aug)
        refs_x = np.stack([_pr(ctx, r, part, pidx, labels[pidx], n_aug) for r in others])
        ins = np.stack([(r.pop_in if part == "pop" else r.cand_in)[pidx] for r in others])
        mx = _marginal(refs_x, ins, offline_a)
        mz = np.stack([_pr(ctx, r, "pop", zz, py[zz], n_aug) for r in others]).mean(0)
        return rmia_scores(own_x / np.maximum(mx, eps), own_z / np.maximum(mz, eps), gamma)

    tau = leave_one_out_threshold(ctx, refs, pseudo, samples, salt + 1, part)
    if tau is None:  # one reference model, no pseudo-target: member when x beats half the z
        tau = 0.5
    return MIAResult(score, score >= tau, info={"references": len(refs), "threshold": tau, "population_z": len(z)})


def run_online(ctx: MIAContext, augmentations: int, gamma: float, population_samples: int, samples) -> MIAResult:
    require(ctx.online, 2, "rmia-online", "online")
    return _attack(ctx, ctx.online, augmentations, gamma, population_samples, None, samples, salt=6)


def run_offline(
    ctx: MIAContext, augmentations: int, gamma: float, offline_a: float, population_samples: int, samples
) -> MIAResult:
    require(ctx.offline, 1, "rmia-offline")
    return _attack(ctx, ctx.offline, augmentations, gamma, population_samples, offline_a, samples, salt=8)
