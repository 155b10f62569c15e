"""Positive-predictive-value attack: Merlin (Jayaraman, Wang, Knipmeyer, Gu, Evans 2021, "Revisiting membership
inference under realistic assumptions", PETS).

MERLIN queries the target on ``noise_samples`` noisy neighbours ``x + N(0,
noise_std^2)`` of a candidate (``noise_std`` in the model's [-1, 1] range,
twice the scale of the paper's [0, 1] features) and counts the
fraction whose loss exceeds the loss of ``x`` itself: a training point sits in
a local minimum of the loss, so nearly every direction increases it. The
threshold is chosen, as the paper does, for **positive predictive value**
(precision) rather than accuracy: on ``shadows`` offline shadow models (the
attacker's own, queried the same way) with ``samples`` members and as many
non-members, the threshold with the highest PPV among those predicting at
least ``min_fraction`` of the shadow members (the least such threshold on
ties). Queries: ``noise_samples + 1`` per candidate. Paper defaults: 100
neighbours, noise 0.01 with features in [0, 1], i.e. ``noise_std`` 0.02 in
the [-1, 1] range the noise is added in. The loss is the exact
``-log p_y`` of :func:`mibench_core.membership.signals.ce_loss` (confident
answers do not collapse to a loss of 0). MORGAN (Merlin combined with a loss
window) is not included.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mibench_core.data.common import to_model_range
from mibench_core.membership.attacks.common import require, shadow_sets
from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import ce_loss, softmax

METHODS = [
    {
        "name": "ppv",
        "kind": "mia",
        "call": "run",
        "description": "PPV attack, Merlin (Jayaraman et al. 2021): loss increase under noise, PPV-chosen threshold",
        "defaults": {"noise_std": 0.02, "noise_samples": 100, "shadows": 1, "samples": 500, "min_fraction": 0.01},
        "bounds": {"noise_std": "(0, inf)", "noise_samples": "[1, inf)", "min_fraction": "(0, 1]"},
        "access": "probabilities",
        "aux": ["offline"],
    }
]


def merlin(
    answer: Callable[[torch.Tensor], np.ndarray],
    x_uint8: torch.Tensor,
    y: np.ndarray,
    noise_samples: int,
    noise_std: float,
    gen: torch.Generator,
    chunk: int = 64,
) -> np.ndarray:
    """Fraction of noisy neighbours whose loss exceeds the candidate's own."""
    out = []
    for i in range(0, len(x_uint8), chunk):
        xb = to_model_range(x_uint8[i : i + chunk])
        yb = y[i : i + chunk]
        base = ce_loss(answer(xb), yb)
        rep = xb.repeat_interleave(noise_samples, 0)
        noisy = rep + noise_std * torch.randn(rep.shape, generator=gen)
        loss = ce_loss(answer(noisy), np.repeat(yb, noise_samples)).reshape(len(yb), noise_samples)
        out.append((loss > base[:, None]).mean(1))
    return np.concatenate(out)


def ppv_threshold(s_in: np.ndarray, s_out: np.ndarray, min_fraction: float) -> tuple[float, float]:
    """(threshold, PPV) with the highest PPV among thresholds flagging >= ``min_fraction`` of the members."""
    best_t, best_ppv = float(np.min(np.r_[s_in, s_out])), -1.0
    need = max(1, int(np.ceil(min_fraction * len(s_in))))
    for t in np.unique(np.r_[s_in, s_out]):
        tp, fp = int((s_in >= t).sum()), int((s_out >= t).sum())
        if tp < need:
            continue
        ppv = tp / (tp + fp)
        if ppv > best_ppv:
            best_t, best_ppv = float(t), ppv
    return best_t, best_ppv


def run(
    ctx: MIAContext, noise_std: float, noise_samples: int, shadows: int | None, samples: int | None,
    min_fraction: float,
) -> MIAResult:  # fmt: skip
    require(ctx.offline, 1, "ppv")
    gen = torch.Generator().manual_seed(ctx.seed)
    score = merlin(ctx.query_float, ctx.candidates_x, ctx.candidates_y.numpy(), noise_samples, noise_std, gen)
    py = ctx.population_y.numpy()
    s_in, s_out = [], []
    for ref, ins, outs in shadow_sets(ctx, ctx.offline[: shadows or len(ctx.offline)], samples, salt=14):
        model = ref.model(ctx.device)

        @torch.no_grad()
        def answer(x, model=model):
            return ctx.release(softmax(model(x.to(ctx.device)).cpu()))

        s_in.append(merlin(answer, ctx.population_x[torch.from_numpy(ins)], py[ins], noise_samples, noise_std, gen))
        s_out.append(merlin(answer, ctx.population_x[torch.from_numpy(outs)], py[outs], noise_samples, noise_std, gen))
    tau, ppv = ppv_threshold(np.concatenate(s_in), np.concatenate(s_out), min_fraction)
    return MIAResult(score, score >= tau, info={"threshold": tau, "shadow_ppv": ppv,
                                                "queries_per_candidate": noise_samples + 1})  # fmt: skip
