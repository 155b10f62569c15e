"""Loss threshold (Yeom, Giacomelli, Fredrikson, Jha 2018, "Privacy risk in machine learning: analyzing the
connection to overfitting", CSF).

A candidate is a member when its cross-entropy loss ``-log p_y`` under the
target is below the target's average training loss. Yeom et al. assume the
adversary knows that average; here it is estimated as the mean training loss
of the attacker's offline shadow models on their own members (``rule:
mean-train-loss``, the paper's rule). ``rule: shadow-fit`` instead takes
Song & Mittal's threshold (the loss best separating shadow members from
shadow non-members). Score: ``-loss``. Deviation: the shadows train on the
population (half of it each), usually fewer images than the target, so their
training loss may be lower or higher than the target's; the threshold-free
metrics (AUC, TPR at low FPR) do not depend on it.
"""

from __future__ import annotations

from mibench_core.membership.attacks.common import require, shadow_features
from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import ce_loss, fit_threshold

METHODS = [
    {
        "name": "loss-threshold",
        "kind": "mia",
        "call": "run",
        "description": "Loss threshold (Yeom et al. 2018): member when -log p_y < the shadows' mean training loss",
        "defaults": {"rule": "mean-train-loss", "samples": None},
        "access": "probabilities",
        "aux": ["offline"],
    }
]

RULES = ("mean-train-loss", "shadow-fit")


def run(ctx: MIAContext, rule: str, samples: int | None) -> MIAResult:
    if rule not in RULES:
        raise ValueError(f"loss-threshold: rule {rule!r} is not one of {', '.join(RULES)}")
    require(ctx.offline, 1, "loss-threshold")
    loss = ce_loss(ctx.target_answers(0), ctx.candidates_y.numpy())
    l_in, l_out, _, _ = shadow_features(ctx, ctx.offline, ce_loss, samples, salt=1)
    tau = float(l_in.mean()) if rule == "mean-train-loss" else -fit_threshold(-l_in, -l_out)
    return MIAResult(-loss, loss <= tau, info={"threshold": tau, "rule": rule})
