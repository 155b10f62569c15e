"""Selection baselines: scores that know nothing of membership, evaluated like attacks in every scenario.

A scenario selects its target set with the evaluator's knowledge (the
membership-inference benchmark's ratio filter removes the members with the
lowest privacy risk score; its distances are computed on the target's
outputs). Selection alone can then separate members from non-members: a
score unrelated to membership, but related to what the selection used,
gains advantage in a filtered scenario. These baselines measure that share:

* ``selection-random``: a uniform random score per candidate, member when
  above 1/2 (chance in every scenario: a filter cannot help a score that
  ignores the candidate);
* ``selection-independent``: the selection's own statistic, the privacy
  risk score (:func:`mibench_core.membership.attacks.risk_score.risk_scores`,
  the same histograms of the offline references' members and non-members),
  computed on an **independently trained model**: the first offline
  reference model, which never trained on any candidate, so its score of a
  candidate does not depend on the candidate's membership; member when the
  score is at least 1/2 (the risk-score attack's rule). What it gains in a
  scenario is the advantage the scenario's selection produces by itself
  through the candidates' difficulty.

An attack's advantage over the selection baseline (its advantage minus
``selection-independent``'s in the same scenario) is reported beside it.
Neither queries the target.
"""

from __future__ import annotations

from mibench_core.membership.attacks.common import require, shadow_features
from mibench_core.membership.attacks.risk_score import risk_scores
from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import m_entropy

METHODS = [
    {
        "name": "selection-random",
        "kind": "mia",
        "call": "run_random",
        "description": "Selection baseline: a uniform random score per candidate (knows nothing of membership)",
        "defaults": {},
        "access": "label",
        "aux": [],
    },
    {
        "name": "selection-independent",
        "kind": "mia",
        "call": "run_independent",
        "description": "Selection baseline: privacy risk score on an offline reference (never saw a candidate)",
        "defaults": {"bins": 5, "log_bins": True, "samples": None},
        "bounds": {"bins": "[1, inf)"},
        "access": "probabilities",
        "aux": ["offline"],
    },
]

BASELINES = ("selection-random", "selection-independent")


def run_random(ctx: MIAContext) -> MIAResult:
    score = ctx.rng(21).random(len(ctx.candidates_y))
    return MIAResult(score, score > 0.5, info={"baseline": "random"})


def run_independent(ctx: MIAContext, bins: int, log_bins: bool, samples: int | None) -> MIAResult:
    require(ctx.offline, 1, "selection-independent")
    y = ctx.candidates_y.numpy()
    e_in, e_out, y_in, y_out = shadow_features(ctx, ctx.offline, m_entropy, samples, salt=3)
    independent = ctx.shadow_answers(ctx.offline[0], "cand")
    risk = risk_scores(e_in, y_in, e_out, y_out, m_entropy(independent, y), y, ctx.num_classes, bins, log_bins)
    return MIAResult(risk, risk >= 0.5, info={"baseline": "independent model", "model": ctx.offline[0].dir})
