"""The stage runners and the attack stage's access builders: which function runs what (stdlib only).

``mibench run --job`` dispatches on a job's kind through :data:`RUNNERS`, by
name (so the command line imports only the stage it runs), and the attack
stage prepares an attack's context through the builder of its registry
``access`` in :data:`ACCESS_BUILDERS`, also by name. The plan adds each
runner's and each builder's import closure to the code fingerprint of the
artifacts they produce (:mod:`mibench_core.fingerprint`): the same mappings
serve both, so what runs is what the id covers.
"""

from __future__ import annotations

RUNNERS = {
    "data": "mibench_core.data.common:run",
    # what the plan derives from a data artifact (mibench_core.data.views): the public view that
    # attacker-side jobs get, the private victims of per-sample attacks, and the target's answers on them
    "public": "mibench_core.data.views:run_public",
    "victims": "mibench_core.data.views:run_victims",
    "answers": "mibench_core.attacks.victims:run",
    "model": "mibench_core.models.train:run",
    "prior": "mibench_core.priors:run_prior",
    "attack": "mibench_core.attacks.common:run",
    "metric": "mibench_core.metrics.common:run",
    # membership inference
    "shadow": "mibench_core.membership.shadows:run",
    "scenario": "mibench_core.membership.scenarios:run",
    "mia_input": "mibench_core.membership.inputs:run",
    "mia": "mibench_core.membership.common:run",
    "mia_eval": "mibench_core.membership.evaluate:run",
    "split": "mibench_core.split.common:run",
    "split-metric": "mibench_core.split.metrics:run",
}

# Access level -> ``builder(ctx, job, access, params)``: fills the attack context with what that
# threat model sees and returns a callable applied to the attack's result afterwards (or None).
ACCESS_BUILDERS = {
    "white-box": "mibench_core.attacks.whitebox:prepare",
    "probabilities": "mibench_core.attacks.blackbox:prepare",
    "top-k": "mibench_core.attacks.blackbox:prepare",
    "label": "mibench_core.attacks.blackbox:prepare",
}


def runner_module(kind: str) -> str:
    return RUNNERS[kind].split(":", 1)[0]


def access_module(access: str) -> str:
    return ACCESS_BUILDERS[access].split(":", 1)[0]
