"""Top-1 threshold (Salem, Zhang, Humbert, Berrang, Fritz, Backes 2019, "ML-Leaks", NDSS: adversary 3).

The score is the largest released probability, the only thing a top-1 API
returns (access ``top-k`` with ``top_k`` 1; the oracle zeroes the rest); a
candidate is a member when it exceeds a threshold. Salem et al. choose the
threshold from the target's answers on random inputs; like the benchmark's
code (Song & Mittal's confidence attack), the threshold here is the value
that best separates the offline shadow models' members from their
non-members (global, not per class, since the attack uses no label).
"""

from __future__ import annotations

from mibench_core.membership.attacks.common import require, shadow_features
from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import fit_threshold

METHODS = [
    {
        "name": "top1-threshold",
        "kind": "mia",
        "call": "run",
        "description": "Top-1 threshold (Salem et al. 2019): member when the top released probability is high",
        "defaults": {"top_k": 1, "samples": None},
        "bounds": {"top_k": "[1, inf)"},
        "access": "top-k",
        "aux": ["offline"],
    }
]


def _top1(answers, labels):
    return answers.max(1)


def run(ctx: MIAContext, top_k: int, samples: int | None) -> MIAResult:
    require(ctx.offline, 1, "top1-threshold")
    score = _top1(ctx.target_answers(0), None)
    s_in, s_out, _, _ = shadow_features(ctx, ctx.offline, _top1, samples, salt=2)
    tau = fit_threshold(s_in, s_out)
    return MIAResult(score, score >= tau, info={"threshold": tau})
