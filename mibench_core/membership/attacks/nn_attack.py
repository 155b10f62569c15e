"""NN attack (Shokri, Stronati, Song, Shmatikov 2017, "Membership inference attacks against machine learning
models", IEEE S&P), on the sorted probability vector.

Shadow models imitate the target (the offline reference models: same
architecture and training, on halves of the attacker's population); an
attack classifier learns to tell their answers on their own training points
(label 1) from their answers on points they did not train on (label 0), and
is applied to the target's answers. As in the benchmark (and Salem et al.'s
class-independent variant), the classifier's input is the whole released
probability vector sorted in decreasing order, one classifier for all
classes (Shokri et al. train one per class on the unsorted vector); it is a
fully connected network with one hidden layer of ``hidden`` (64) units
(scikit-learn's ``MLPClassifier``, Adam, ``max_iter`` epochs). ``shadows``
limits how many reference models provide training data (null: all; Shokri
et al. use up to 100), ``samples`` how many IN and as many OUT points each
provides (null: all, balanced). Member when the classifier's probability is at
least 1/2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mibench_core.membership.attacks.common import require, shadow_features
from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import sorted_desc, train_classifier

METHODS = [
    {
        "name": "nn-attack",
        "kind": "mia",
        "call": "run",
        "description": "NN attack (Shokri et al. 2017): shadow models, an MLP on the sorted probability vector",
        "defaults": {"hidden": 64, "max_iter": 200, "shadows": None, "samples": None},
        "bounds": {"hidden": "[1, inf)", "max_iter": "[1, inf)"},
        "access": "probabilities",
        "aux": ["offline"],
    }
]


def classifier_attack(
    ctx: MIAContext,
    feature: Callable[[np.ndarray, np.ndarray], np.ndarray],
    name: str,
    hidden: int,
    max_iter: int,
    shadows: int | None,
    samples: int | None,
    salt: int,
) -> MIAResult:
    """Train an attack MLP on shadow IN/OUT features, apply it to the target's answers."""
    require(ctx.offline, 1, name)
    refs = ctx.offline[: shadows or len(ctx.offline)]
    f_in, f_out, _, _ = shadow_features(ctx, refs, feature, samples, salt)
    clf = train_classifier(f_in, f_out, ctx.seed + salt, "mlp", hidden=(hidden,), max_iter=max_iter)
    score = clf.predict_proba(feature(ctx.target_answers(0), ctx.candidates_y.numpy()))[:, 1]
    shadow_acc = 0.5 * (clf.predict(f_in).mean() + 1 - clf.predict(f_out).mean())
    return MIAResult(score, score >= 0.5, info={"shadows": len(refs), "train_points": len(f_in) + len(f_out),
                                                "shadow_balanced_accuracy": float(shadow_acc)})  # fmt: skip


def _sorted(answers, labels):
    return sorted_desc(answers)


def run(ctx: MIAContext, hidden: int, max_iter: int, shadows: int | None, samples: int | None) -> MIAResult:
    return classifier_attack(ctx, _sorted, "nn-attack", hidden, max_iter, shadows, samples, salt=10)
