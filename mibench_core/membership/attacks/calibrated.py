"""Calibrated score (Watson, Guo, Cormode, Sablayrolles 2022, "On the importance of difficulty calibration in
membership inference attacks", ICLR).

The target's loss on a candidate minus its expected loss on that example
when the example is not trained on, estimated by the mean loss of reference
models that did not train on it (the offline reference models: none trained
on a candidate): ``s(x) = l_target(x) - mean_k l_k(x)``; member when
``s(x) <= tau``. ``tau`` is fitted without the target: each reference model in
turn plays the target and the other references not trained on the point
calibrate it, on population points it did and did not train on; the
threshold best separating them is taken (with a single reference model,
``tau = 0``). Score: ``-s(x)``.
"""

from __future__ import annotations

import numpy as np

from mibench_core.membership.attacks.common import leave_one_out_threshold, require
from mibench_core.membership.context import MIAContext, MIAResult, Reference
from mibench_core.membership.signals import ce_loss

METHODS = [
    {
        "name": "calibrated-score",
        "kind": "mia",
        "call": "run",
        "description": "Calibrated score (Watson et al. 2022): target loss minus the reference models' mean loss",
        "defaults": {"samples": None},
        "access": "probabilities",
        "aux": ["offline"],
    }
]


def run(ctx: MIAContext, samples: int | None) -> MIAResult:
    require(ctx.offline, 1, "calibrated-score")
    y, py = ctx.candidates_y.numpy(), ctx.population_y.numpy()
    ref_loss = np.mean([ce_loss(ctx.shadow_answers(r, "cand"), y) for r in ctx.offline], axis=0)
    calibrated = ce_loss(ctx.target_answers(0), y) - ref_loss

    def pseudo(target: Reference, others: list[Reference], idx: np.ndarray) -> np.ndarray:
        own = ce_loss(ctx.shadow_answers(target, "pop")[idx], py[idx])
        losses = np.stack([ce_loss(ctx.shadow_answers(r, "pop")[idx], py[idx]) for r in others])
        out = np.stack([~r.pop_in[idx] for r in others])
        out[:, ~out.any(0)] = True  # no other reference left the point out: use them all
        return -(own - (losses * out).sum(0) / out.sum(0))

    neg_tau = leave_one_out_threshold(ctx, ctx.offline, pseudo, samples, salt=4)
    tau = 0.0 if neg_tau is None else -neg_tau
    return MIAResult(-calibrated, calibrated <= tau, info={"threshold": tau, "references": len(ctx.offline)})
