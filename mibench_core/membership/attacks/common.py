"""Helpers the membership-inference attacks share: shadow training sets and pseudo-target thresholds."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mibench_core.membership.context import MIAContext, Reference
from mibench_core.membership.signals import balanced_indices, fit_threshold


def require(refs: list[Reference], n: int, what: str, section: str = "offline") -> None:
    if len(refs) < n:
        raise ValueError(
            f"membership attack {what} needs at least {n} {section} reference model(s); "
            f"configured: {len(refs)} (membership.shadows.{section})"
        )


def shadow_sets(
    ctx: MIAContext, refs: list[Reference], samples: int | None, salt: int, part: str = "pop"
) -> list[tuple[Reference, np.ndarray, np.ndarray]]:
    """Per reference model: balanced indices of points it trained on (IN) and did not (OUT), among the
    population (``part="pop"``, offline models) or the candidates (``"cand"``, online models: the attacker
    knows which candidates it trained its own models on, not which are the target's members)."""
    rng = ctx.rng(salt)
    return [(ref, *balanced_indices(ref.pop_in if part == "pop" else ref.cand_in, samples, rng)) for ref in refs]


def shadow_features(
    ctx: MIAContext,
    refs: list[Reference],
    feature: Callable[[np.ndarray, np.ndarray], np.ndarray],
    samples: int | None,
    salt: int,
    aug: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``feature(answers, labels)`` of every reference model's IN and OUT population points:
    (features_in, features_out, labels_in, labels_out), stacked over the references."""
    y = ctx.population_y.numpy()
    fi, fo, yi, yo = [], [], [], []
    for ref, ins, outs in shadow_sets(ctx, refs, samples, salt):
        ans = ctx.shadow_answers(ref, "pop", aug)
        fi.append(feature(ans[ins], y[ins]))
        fo.append(feature(ans[outs], y[outs]))
        yi.append(y[ins])
        yo.append(y[outs])
    return np.concatenate(fi), np.concatenate(fo), np.concatenate(yi), np.concatenate(yo)


def leave_one_out_threshold(
    ctx: MIAContext,
    refs: list[Reference],
    score_fn: Callable[[Reference, list[Reference], np.ndarray], np.ndarray],
    samples: int | None,
    salt: int,
    part: str = "pop",
) -> float | None:
    """A decision threshold fitted by treating each reference model in turn as the target.

    ``score_fn(pseudo_target, other_references, index)`` returns the attack's
    scores of those points (population or candidates, ``part``) against the
    pseudo-target, using only the other references; the threshold maximising
    balanced accuracy over every pseudo-target's IN / OUT points is returned
    (None with one reference). A score ``score_fn`` returns as NaN (the point
    cannot be scored with those references) is left out."""
    if len(refs) < 2:
        return None
    s_in, s_out = [], []
    for ref, ins, outs in shadow_sets(ctx, refs, samples, salt, part):
        others = [r for r in refs if r is not ref]
        s_in.append(score_fn(ref, others, ins))
        s_out.append(score_fn(ref, others, outs))
    s_in, s_out = np.concatenate(s_in), np.concatenate(s_out)
    s_in, s_out = s_in[np.isfinite(s_in)], s_out[np.isfinite(s_out)]
    if len(s_in) == 0 or len(s_out) == 0:
        return None
    return fit_threshold(s_in, s_out)
