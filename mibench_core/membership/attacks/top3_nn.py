"""Top-3 NN attack (Salem, Zhang, Humbert, Berrang, Fritz, Backes 2019, "ML-Leaks", NDSS: adversary 1).

Like the NN attack (:mod:`.nn_attack`) but the attack classifier sees only
the three largest released probabilities, sorted, and the target is asked
through a top-3 API (access ``top-k`` with ``top_k`` 3: the oracle releases
nothing else). Salem et al. show one shadow model suffices (``shadows`` 1,
their setting); the attack model is their MLP (one hidden layer, 64 units).
"""

from __future__ import annotations

from mibench_core.membership.attacks.nn_attack import classifier_attack
from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import sorted_desc

METHODS = [
    {
        "name": "top3-nn",
        "kind": "mia",
        "call": "run",
        "description": "Top-3 NN attack (Salem et al. 2019): an MLP on the three largest probabilities, 1 shadow",
        "defaults": {"top_k": 3, "hidden": 64, "max_iter": 200, "shadows": 1, "samples": None},
        "bounds": {"top_k": "[1, inf)", "hidden": "[1, inf)", "max_iter": "[1, inf)"},
        "access": "top-k",
        "aux": ["offline"],
    }
]


def run(ctx: MIAContext, top_k: int, hidden: int, max_iter: int, shadows: int | None, samples) -> MIAResult:
    k = min(3, ctx.num_classes)

    def top3(answers, labels):
        return sorted_desc(answers)[:, :k]

    return classifier_attack(ctx, top3, "top3-nn", hidden, max_iter, shadows, samples, salt=11)
