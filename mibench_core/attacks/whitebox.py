"""White-box access: the attack receives the target model itself (``ctx.target``).

The attack stage (:func:`mibench_core.attacks.common.run`) calls the builder
of an attack's access level, named in :data:`mibench_core.stages.ACCESS_BUILDERS`;
this is the one for ``white-box``. Nothing of the query oracle or of output
processing is imported on this path, so neither is part of a white-box
attack's code fingerprint.
"""

from __future__ import annotations

from mibench_core.attacks.contract import AttackContext
from mibench_core.models.train import load_classifier


def prepare(ctx: AttackContext, job: dict, access: str, params: dict) -> None:
    """Give the attack the target classifier; nothing to do after the attack."""
    ctx.target = load_classifier(job["inputs"]["target"]["dir"], ctx.device)
    return None
