"""Top-2 + true-label confidence attack.

An attack classifier (trained on the offline shadow models' members vs
non-members, as in :mod:`.nn_attack`) on three numbers of the released
probability vector: the two largest probabilities and the probability of the
candidate's true label, the feature vector BlindMI (Hui et al. 2021) builds
its differential comparison on and the benchmark's "Top2+True" attack. It
uses the label, so it needs the probability of a class that may lie outside
the top two: full probability access.
"""

from __future__ import annotations

import numpy as np

from mibench_core.membership.attacks.nn_attack import classifier_attack
from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import sorted_desc, true_prob

METHODS = [
    {
        "name": "top2-true",
        "kind": "mia",
        "call": "run",
        "description": "Top-2 + true-label confidence: an MLP on (p_(1), p_(2), p_y) trained on shadow models",
        "defaults": {"hidden": 64, "max_iter": 200, "shadows": None, "samples": None},
        "bounds": {"hidden": "[1, inf)", "max_iter": "[1, inf)"},
        "access": "probabilities",
        "aux": ["offline"],
    }
]


def top2_true(answers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    top = sorted_desc(answers)
    second = top[:, 1] if top.shape[1] > 1 else np.zeros(len(top))
    return np.c_[top[:, 0], second, true_prob(answers, labels)]


def run(ctx: MIAContext, hidden: int, max_iter: int, shadows: int | None, samples) -> MIAResult:
    return classifier_attack(ctx, top2_true, "top2-true", hidden, max_iter, shadows, samples, salt=12)
