"""LiRA, the likelihood ratio attack (Carlini, Chien, Nasr, Song, Terzis, Tramer 2022, "Membership inference
attacks from first principles", IEEE S&P), online and offline.

Signal: the logit-scaled confidence ``phi = log p_y - log sum_{j != y} p_j``
of the released probabilities, for the candidate and for ``augmentations``
augmented copies (shifts, :mod:`mibench_core.membership.signals`; index 0 is
the image itself), on the target (through the oracle) and on every reference
model (the attacker's own, through the same output processing).

* **online** (``lira-online``, online reference models: each trained on a
  random half of the candidates): per candidate and augmentation, a
  Gaussian of the references that trained on it (IN) and one of those that
  did not (OUT); the score is the log likelihood ratio
  ``log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)`` averaged over
  augmentations; member above a threshold calibrated on the references
  (below).
* **offline** (``lira-offline``, offline reference models, none trained on a
  candidate): the one-sided test of the paper, ``log Pr[Z < phi]`` with
  ``Z ~ N(mu_out, s_out^2)``, averaged over augmentations; the decision
  threshold is fitted without the target (each reference in turn plays the
  target on population points, the others are its references).

Means are medians over the reference models (the authors' code). ``s`` is the
per-example standard deviation over the references, or with ``fix_variance``
one **global** standard deviation shared by every example *and by both
Gaussians* (tensorflow/privacy ``research/mi_lira_2021/plot.py``,
``generate_ours``: ``std_in = std_out = np.std(dat_in)``, the IN signals of
every example; ``generate_ours_offline``: ``np.std(dat_out)``). With one
shared ``s`` the online log likelihood ratio is linear in ``phi`` with slope
``(mu_in - mu_out) / s^2``, so a more confident candidate never scores lower
than a less confident one (two different global variances would make it a
parabola). ``fix_variance: null`` (the default) chooses the global variance
below 64 reference models (the paper's recommendation: per-example
variances need many models; with two IN values per example they collapse).

Decision thresholds (the scores rank candidates; the member / non-member
decision needs a threshold): both are fitted without the target, each
reference in turn playing the target on its own IN and OUT points (balanced,
as the evaluated natural set), the others its references; the threshold with
the best balanced accuracy over every pseudo-target. Online: on the
candidates (each online reference knows which candidates it trained on);
offline: on the population. The paper reports threshold-free metrics only
(ROC, TPR at low FPR); the fixed ``LR > 0`` rule does not transfer (a
likelihood ratio of two fitted Gaussians is not a calibrated probability).

Paper defaults: 256 reference models (offline and online halves of them), 2
augmented queries (the image and its mirror image; here a shift, since the
training code never mirrors). Deviations from the authors' code: offline
scores use the paper's one-sided test ``log Pr[Z < phi]`` (the released
``plot.py`` scores ``logpdf``, two-sided); the decision thresholds above
(the authors' code has none).
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
        "defaults": {"augmentations": 2, "fix_variance": None, "samples": None},
        "bounds": {"augmentations": "[1, inf)"},
        "access": "probabilities",
        "aux": ["online"],
    },
    {
        "name": "lira-offline",
        "kind": "mia",
        "call": "run_offline",
        "description": "LiRA offline (Carlini et al. 2022): one-sided test against per-example OUT Gaussians",
        "defaults": {"augmentations": 2, "fix_variance": None, "samples": None},
        "bounds": {"augmentations": "[1, inf)"},
        "access": "probabilities",
        "aux": ["offline"],
    },
]

MIN_SD = 1e-6
GLOBAL_VARIANCE_BELOW = 64  # reference models; the paper fixes the variance with fewer


def use_global_variance(fix_variance: bool | None, n_references: int) -> bool:
    """``fix_variance`` as configured, or (``None``) the global variance below 64 reference models."""
    if fix_variance is None:
        return n_references < GLOBAL_VARIANCE_BELOW
    if not isinstance(fix_variance, bool):
        raise ValueError(f"LiRA fix_variance must be true, false or null (by reference count), got {fix_variance!r}")
    return fix_variance


def gaussian_fit(values: np.ndarray, mask: np.ndarray, shared_sd: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Median and standard deviation over the reference axis (axis 1 of ``[A, R, n]``) where ``mask`` (``[R, n]``);
    ``shared_sd``: one standard deviation for every example instead of the per-example one."""
    v = np.where(mask[None], values, np.nan)
    mu = np.nanmedian(v, axis=1)
    sd = np.full_like(mu, shared_sd) if shared_sd is not None else np.nanstd(v, axis=1)
    return mu, np.maximum(np.nan_to_num(sd, nan=MIN_SD), MIN_SD)


def global_sd(values: np.ndarray, mask: np.ndarray) -> float:
    """The authors' global standard deviation: ``np.std`` of every masked value (examples, references,
    augmentations together)."""
    return float(np.nanstd(np.where(mask[None], values, np.nan)))


def online_scores(
    obs: np.ndarray, ref: np.ndarray, ref_in: np.ndarray, fix_variance: bool, sd: float | None = None
) -> np.ndarray:
    """LiRA online: ``obs`` ``[A, n]`` target signals, ``ref`` ``[A, R, n]`` reference signals, ``ref_in``
    ``[R, n]`` which references trained on each example. ``fix_variance``: one standard deviation, that of the
    IN signals, for IN and OUT (the authors' ``generate_ours``); ``sd``: that value when computed over more
    examples than those scored."""
    if not (ref_in.any(0) & (~ref_in).any(0)).all():
        raise ValueError("LiRA online needs, for every example, reference models with and without it")
    shared = (global_sd(ref, ref_in) if sd is None else sd) if fix_variance else None
    mu_in, sd_in = gaussian_fit(ref, ref_in, shared)
    mu_out, sd_out = gaussian_fit(ref, ~ref_in, shared)
    lr = stats.norm.logpdf(obs, mu_in, sd_in) - stats.norm.logpdf(obs, mu_out, sd_out)
    return lr.mean(0)


def offline_scores(
    obs: np.ndarray, ref: np.ndarray, ref_out: np.ndarray, fix_variance: bool, sd: float | None = None
) -> np.ndarray:
    """LiRA offline: mean over augmentations of ``log Pr[Z < obs]``, ``Z ~ N(mu_out, s_out^2)``;
    ``fix_variance``: one standard deviation of every OUT signal (the authors' ``generate_ours_offline``;
    ``sd``: that value when computed over more examples than those scored)."""
    ref_out = ref_out.copy()
    ref_out[:, ~ref_out.any(0)] = True  # no reference left the example out: use them all
    shared = (global_sd(ref, ref_out) if sd is None else sd) if fix_variance else None
    mu, sd = gaussian_fit(ref, ref_out, shared)
    return stats.norm.logcdf((obs - mu) / sd).mean(0)


def _signals(ctx: MIAContext, refs: list[Reference], part: str, idx: np.ndarray, labels: np.ndarray, n_aug: int):
    return np.stack([
        np.stack([logit_confidence(ctx.shadow_answers(r, part, a)[idx], labels) for r in refs]) for a in range(n_aug)
    ])  # fmt: skip


def _target_signals(ctx: MIAContext, n_aug: int) -> np.ndarray:
    y = ctx.candidates_y.numpy()
    return np.stack([logit_confidence(ctx.target_answers(a), y) for a in range(n_aug)])


def run_online(ctx: MIAContext, augmentations: int, fix_variance: bool | None, samples: int | None) -> MIAResult:
    require(ctx.online, 2, "lira-online", "online")
    fixed = use_global_variance(fix_variance, len(ctx.online))
    y, idx = ctx.candidates_y.numpy(), np.arange(len(ctx.candidates_y))
    ref = _signals(ctx, ctx.online, "cand", idx, y, augmentations)
    ref_in = np.stack([r.cand_in for r in ctx.online])
    score = online_scores(_target_signals(ctx, augmentations), ref, ref_in, fixed)

    def pseudo(target: Reference, others: list[Reference], pidx: np.ndarray) -> np.ndarray:
        keep = np.array([r is not target for r in ctx.online])
        sd = global_sd(ref[:, keep], ref_in[keep])  # the others' global sd, over every candidate
        obs = ref[:, ~keep][:, 0][:, pidx]
        sig, ins = ref[:, keep][:, :, pidx], ref_in[keep][:, pidx]
        out = np.full(len(pidx), np.nan)
        ok = ins.any(0) & (~ins).any(0)  # the other references have it IN and OUT
        if ok.any():
            out[ok] = online_scores(obs[:, ok], sig[:, :, ok], ins[:, ok], fixed, sd)
        return out

    tau = leave_one_out_threshold(ctx, ctx.online, pseudo, samples, salt=4, part="cand")
    source = "pseudo-targets"
    if tau is None:  # no pseudo-target has IN and OUT references left: likelihood ratio above 1
        tau, source = 0.0, "likelihood ratio > 1 (too few references to calibrate)"
    info = {"references": len(ctx.online), "threshold": tau, "threshold_source": source, "fix_variance": fixed}
    return MIAResult(score, score > tau, info=info)


def run_offline(ctx: MIAContext, augmentations: int, fix_variance: bool | None, samples: int | None) -> MIAResult:
    require(ctx.offline, 1, "lira-offline")
    fixed = use_global_variance(fix_variance, len(ctx.offline))
    y, idx = ctx.candidates_y.numpy(), np.arange(len(ctx.candidates_y))
    ref = _signals(ctx, ctx.offline, "cand", idx, y, augmentations)
    ref_out = np.stack([~r.cand_in for r in ctx.offline])
    score = offline_scores(_target_signals(ctx, augmentations), ref, ref_out, fixed)
    py = ctx.population_y.numpy()

    pidx_all = np.arange(len(py))
    pop = _signals(ctx, ctx.offline, "pop", pidx_all, py, augmentations) if len(ctx.offline) > 1 else None
    pop_out = np.stack([~r.pop_in for r in ctx.offline])

    def pseudo(target: Reference, others: list[Reference], pidx: np.ndarray) -> np.ndarray:
        keep = np.array([r is not target for r in ctx.offline])
        sd = global_sd(pop[:, keep], pop_out[keep])  # the others' global sd, over the whole population
        obs = pop[:, ~keep][:, 0][:, pidx]
        return offline_scores(obs, pop[:, keep][:, :, pidx], pop_out[keep][:, pidx], fixed, sd)

    tau = leave_one_out_threshold(ctx, ctx.offline, pseudo, samples, salt=5)
    if tau is None:  # one reference: the one-sided test at level 1/2 (phi above the OUT median)
        tau = float(np.log(0.5))
    info = {"references": len(ctx.offline), "threshold": tau, "fix_variance": fixed}
    return MIAResult(score, score >= tau, info=info)
