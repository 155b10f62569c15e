"""The stage runners: which function runs each kind of job (stdlib only).

``mibench run --job`` dispatches on a job's kind through :data:`RUNNERS`, by
name (so the command line imports only the stage it runs), and the plan adds
each runner's import closure to the code fingerprint of that stage's
artifacts (:mod:`mibench_core.fingerprint`): the same mapping serves both.
"""

from __future__ import annotations

RUNNERS = {
    "data": "mibench_core.data.common:run",
    "model": "mibench_core.models.train:run",
    "prior": "mibench_core.priors:run_prior",
    "attack": "mibench_core.attacks.common:run",
    "metric": "mibench_core.metrics.common:run",
    "split": "mibench_core.split.common:run",
    "split-metric": "mibench_core.split.metrics:run",
}


def runner_module(kind: str) -> str:
    return RUNNERS[kind].split(":", 1)[0]
