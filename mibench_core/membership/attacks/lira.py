"""LiRA, the likelihood ratio attack (Carlini, Chien, Nasr, Song, Terzis, Tramer 2022, "Membership inference
attacks from first principles", IEEE S&P), online and offline.

Signal: the logit-scaled confidence ``phi = log p_y - log sum_{j != y} p_j``
of the released probabilities, for the candidate and for ``augmentations``
augmented copies (shifts, :mod:`mibench_core.membership.signals`; index 0 is
the image itself), on the target (through the oracle) and on every reference
model (the attacker's own, through the same output processing).

* **online** (``lira-online``, online reference models: each trained on a
  random half of population + candidates): per candidate and augmentation, a
  Gaussian of the references that trained on it (IN) and one of those that
  did not (OUT); the score is the log likelihood ratio
  ``log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)`` averaged over
  augmentations; member when it is positive (likelihood ratio > 1).
* **offline** (``lira-offline``, offline reference models, none trained on a
  candidate): the one-sided test of the paper, ``log Pr[Z < phi]`` with
  ``Z ~ N(mu_out, s_out^2)``, averaged over augmentations; the decision
  threshold is fitted without the target (each reference in turn plays the
  target on population points, the others are its references).

Means are medians over the reference models (the authors' code); ``s`` is the
per-example standard deviation, or with ``fix_variance`` one standard
deviation of all reference signals shared by all examples (the paper's
recommendation with few reference models; the authors' code computes it
over every example). Paper defaults: 256 reference
models (offline and online halves of them), 2 augmented queries (the image
and its mirror image; here a shift, since the training code never mirrors).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from mibench_core.membership.attacks.common import leave_one_out_threshold, require
from mibench_core.membership.context import MIAContext, MIAResult, Reference
from mibench_core.membership.signals import logit_confidence

METHODS = [
    {
        "name": "lira-online",
        "kind": "mia",
        "call": "run_online",
        "description": "LiRA online (Carlini et al. 2022): per-example IN/OUT Gaussians of logit-scaled confidence",
        "defaults": {"augmentations": 2, "fix_variance": False, "samples": None},
        "bounds": {"augmentations": "[1, inf)"},
        "access": "probabilities",
        "aux": ["online"],
    },
    {
        "name": "lira-offline",
        "kind": "mia",
        "call": "run_offline",
        "description": "LiRA offline (Carlini et al. 2022): one-sided test against per-example OUT Gaussians",
        "defaults": {"augmentations": 2, "fix_variance": False, "samples": None},
        "bounds": {"augmentations": "[1, inf)"},
        "access": "probabilities",
        "aux": ["offline"],
    },
]

MIN_SD = 1e-6


def gaussian_fit(values: np.ndarray, mask: np.ndarray, fix_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Median and standard deviation over the reference axis (axis 1 of ``[A, R, n]``) where ``mask`` (``[R, n]``).

    With ``fix_variance`` one standard deviation of all those values (every example, reference and augmentation)
    is shared by every example, as in the authors' code."""
    v = np.where(mask[None], values, np.nan)
    mu = np.nanmedian(v, axis=1)
    if fix_variance:
        sd = np.full_like(mu, np.nanstd(v))
    else:
        sd = np.nanstd(v, axis=1)
    return mu, np.maximum(np.nan_to_num(sd, nan=MIN_SD), MIN_SD)


def online_scores(obs: np.ndarray, ref: np.ndarray, ref_in: np.ndarray, fix_variance: bool) -> np.ndarray:
    """LiRA online: ``obs`` ``[A, n]`` target signals, ``ref`` ``[A, R, n]`` reference signals, ``ref_in``
    ``[R, n]`` which references trained on each example."""
    if not (ref_in.any(0) & (~ref_in).any(0)).all():
        raise ValueError("LiRA online needs, for every example, reference models with and without it")
    mu_in, sd_in = gaussian_fit(ref, ref_in, fix_variance)
    mu_out, sd_out = gaussian_fit(ref, ~ref_in, fix_variance)
    lr = stats.norm.logpdf(obs, mu_in, sd_in) - stats.norm.logpdf(obs, mu_out, sd_out)
    return lr.mean(0)


def offline_scores(obs: np.ndarray, ref: np.ndarray, ref_out: np.ndarray, fix_variance: bool) -> np.ndarray:
    """LiRA offline: mean over augmentations of ``log Pr[Z < obs]``, ``Z ~ N(mu_out, s_out^2)``."""
    ref_out = ref_out.copy()
    ref_out[:, ~ref_out.any(0)] = True  # no reference left the example out: use them all
    mu, sd = gaussian_fit(ref, ref_out, fix_variance)
    return stats.norm.logcdf((obs - mu) / sd).mean(0)


def _signals(ctx: MIAContext, refs: list[Reference], part: str, idx: np.ndarray, labels: np.ndarray, n_aug: int):
    return np.stack([
        np.stack([logit_confidence(ctx.shadow_answers(r, part, a)[idx], labels) for r in refs]) for a in range(n_aug)
    ])  # fmt: skip


def _target_signals(ctx: MIAContext, n_aug: int) -> np.ndarray:
    y = ctx.candidates_y.numpy()
    return np.stack([logit_confidence(ctx.target_answers(a), y) for a in range(n_aug)])


def run_online(ctx: MIAContext, augmentations: int, fix_variance: bool, samples: int | None) -> MIAResult:
    require(ctx.online, 2, "lira-online", "online")
    y, idx = ctx.candidates_y.numpy(), np.arange(len(ctx.candidates_y))
    ref = _signals(ctx, ctx.online, "cand", idx, y, augmentations)
    ref_in = np.stack([r.cand_in for r in ctx.online])
    score = online_scores(_target_signals(ctx, augmentations), ref, ref_in, fix_variance)
    return MIAResult(score, score > 0, info={"references": len(ctx.online), "threshold": 0.0})


def run_offline(ctx: MIAContext, augmentations: int, fix_variance: bool, samples: int | None) -> MIAResult:
    require(ctx.offline, 1, "lira-offline")
    y, idx = ctx.candidates_y.numpy(), np.arange(len(ctx.candidates_y))
    ref = _signals(ctx, ctx.offline, "cand", idx, y, augmentations)
    ref_out = np.stack([~r.cand_in for r in ctx.offline])
    score = offline_scores(_target_signals(ctx, augmentations), ref, ref_out, fix_variance)
    py = ctx.population_y.numpy()

    def pseudo(target: Reference, others: list[Reference], pidx: np.ndarray) -> np.ndarray:
        obs = _signals(ctx, [target], "pop", pidx, py[pidx], augmentations)[:, 0]
        sig = _signals(ctx, others, "pop", pidx, py[pidx], augmentations)
        return offline_scores(obs, sig, np.stack([~r.pop_in[pidx] for r in others]), fix_variance)

    tau = leave_one_out_threshold(ctx, ctx.offline, pseudo, samples, salt=5)
    if tau is None:  # one reference: the one-sided test at level 1/2 (phi above the OUT median)
        tau = float(np.log(0.5))
    return MIAResult(score, score >= tau, info={"references": len(ctx.offline), "threshold": tau})
