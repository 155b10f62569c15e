"""Query access (``probabilities``, ``top-k``, ``label``): the attack receives only an oracle.

The attack stage (:func:`mibench_core.attacks.common.run`) calls the builder
of an attack's access level, named in :data:`mibench_core.stages.ACCESS_BUILDERS`;
this is the one for every access level but ``white-box``. :func:`prepare`
wraps the target artifact in a query-counting
:class:`~mibench_core.attacks.oracle.Oracle` (``ctx.oracle``; ``ctx.target``
stays None). For ``top-k`` access, k is the attack's ``top_k`` parameter
(None: every class). An attack parameter ``query_budget`` (when the attack
has one) becomes the oracle's budget.

Output processing (a spec key ``output: {name, params}``, which the plan adds
to black-box runs only) is looked up in the registry (kind ``output``) and
applied by the oracle to the probabilities before its access truncation. The
entry's callable is ``fn(probs, **params)``; one that declares a ``gen``
parameter (stochastic processing) also receives its own random stream, so
its noise does not shift the attack's random numbers.

After the attack, :func:`record_queries` stores the query counts: per run
(``info["queries"]``: the oracle's count plus ``info["queries_prior"]``,
queries a prior spent through its own oracle, plus ``info["queries_victims"]``,
those the answers job spent on a per-sample attack's victims) and per
reconstruction (extras ``queries``; when an attack does not set it, each
reconstruction gets its slot's queries plus an equal share of the shared
ones, plus its victim's queries).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch

from mibench_core import registry
from mibench_core.attacks.contract import AttackContext, AttackResult, VictimAnswers
from mibench_core.attacks.oracle import Oracle, build_oracle


def prepare(ctx: AttackContext, job: dict, access: str, params: dict) -> Callable[[AttackResult], None]:
    """Give the attack an oracle on the target; returns what records its queries afterwards."""
    top_k = (params.get("top_k") or ctx.num_classes) if access == "top-k" else None
    postprocess = make_postprocess(job["spec"].get("output"), gen=torch.Generator().manual_seed(job["seed"] + 1))
    ctx.oracle = build_oracle(
        job["inputs"]["target"]["dir"],
        access,
        ctx.device,
        top_k=top_k,
        budget=params.get("query_budget"),
        postprocess=postprocess,
    )
    return functools.partial(record_queries, oracle=ctx.oracle, victims=ctx.victims)


def record_queries(result: AttackResult, oracle: Oracle, victims: VictimAnswers | None = None) -> None:
    """Per-run and per-reconstruction query counts of a black-box attack (``victims``: a per-sample
    attack's answers, whose queries count too; its extras ``victim`` names each reconstruction's)."""
    prior_queries = int(result.info.get("queries_prior") or 0)
    victim_queries = 0 if victims is None else int(victims.queries.sum())
    result.info["queries_oracle"] = oracle.queries
    if victims is not None:
        result.info["queries_victims"] = victim_queries
    result.info["queries"] = oracle.queries + prior_queries + victim_queries
    if "queries" not in result.extras:
        per = oracle.per_reconstruction(len(result.images), extra_shared=prior_queries)
        if victims is not None:
            per = per + victims.queries[result.extras["victim"]].double()
        result.extras["queries"] = per


def validate_spec(spec: dict | str | None) -> dict | None:
    """Normalise an output-processing spec: ``None`` for none, else ``{"name", "params"}`` over the defaults."""
    if spec is None or spec == "none" or (isinstance(spec, dict) and spec.get("name") in (None, "none")):
        return None
    if isinstance(spec, str):
        spec = {"name": spec}
    name = spec["name"]
    known = registry.REGISTRIES["output"]
    if name not in known:
        raise ValueError(f"unknown output processing {name!r}; valid: none, {', '.join(sorted(known))}")
    defaults = known[name].defaults
    params = dict(defaults)
    for key, val in (spec.get("params") or {}).items():
        if key not in defaults:
            raise ValueError(f"output processing {name!r} has no parameter {key!r}; valid: {sorted(defaults) or '-'}")
        params[key] = val
    return {"name": name, "params": params}


def make_postprocess(
    spec: dict | str | None, gen: torch.Generator | None = None
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The callable the oracle applies to probabilities (``None``: release them unchanged)."""
    spec = validate_spec(spec)
    if spec is None:
        return None
    fn = registry.load(registry.get("output", spec["name"]))
    kwargs = dict(spec["params"])
    if "gen" in inspect.signature(fn).parameters:
        kwargs["gen"] = gen
    return functools.partial(fn, **kwargs)
