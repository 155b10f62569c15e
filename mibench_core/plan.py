"""Config -> DAG of artifact specs with content ids. Stdlib only (no torch).

Every artifact is a :class:`Node`. Its id is ``<name>-<hash>`` where the hash
covers the node's canonical spec, the ids of its inputs and the fingerprint
of the library files that produce it. So changing an attack hyperparameter
changes that attack's id and, through input ids, its metrics' ids, but no
model's; editing an attack module changes the attack's fingerprint but not
the models'. Snakemake sees a new output path and recomputes exactly that.

Seeds derive from a *semantic* hash: spec + input semantic hashes + global
seed, without code fingerprints. A refactor that changes no numbers then also
keeps the random streams, which makes before/after comparisons meaningful.

Who sees what: only trusted jobs (models, metrics, and the jobs that derive
views) read a private artifact (:data:`PRIVATE_KINDS`: the data artifact,
the victims of per-sample attacks, the membership scenarios). Attacker-side
jobs (:data:`ATTACKER_KINDS`: every prior, every attack) get the dataset's
*public view* under the input role ``data`` (the public split alone), the
target, and, for a per-sample attack, the target's *answers* on its victims
(role ``answers``); membership attacks and their reference models (also
attacker-side) get the candidates, the population and scenario sets without
membership (:mod:`mibench_core.membership.inputs`); :meth:`Plan.add` refuses any other wiring
(:mod:`mibench_core.data.views`). A public view carries its data artifact's
semantic hash (it adds no randomness), and an attack's answers, made from
what the attack's own spec and inputs already name, stay out of its
semantic hash: narrowing what a job sees keeps its seed.

Replicates (config key ``replicates: {seeds, vary}``) repeat the grid once per
seed: the stages named in ``vary`` (target, prior, attack) get the seed in
their spec (``replicate: <seed>``), so their ids and random streams differ;
whatever depends on them differs through its input ids, and everything else
(the data, the evaluation model, a stage not varied and not downstream of one)
is one shared artifact. A node that differs per replicate has ``.seed<seed>``
at the end of its label. Without ``replicates`` no spec has the key, so ids
and seeds are those of a plain run; the replicate whose seed is the config's
``seed`` carries no key either, so its artifacts are the plain run's (a
finished plain run is one replicate already).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from mibench_core import registry
from mibench_core.fingerprint import of_modules, source_hash
from mibench_core.membership import plan as membership
from mibench_core.stages import access_module, runner_module

STAGE_DIRS = {"data": "data", "public": "public", "victims": "victims", "answers": "answers", "model": "models",
              "prior": "priors", "attack": "attacks", "metric": "metrics"}  # fmt: skip
STAGE_DIRS.update({"split": "split", "split-metric": "split_metrics"})  # mibench_core/split/plan.py
MAIN_FILE = {
    "data": "data.safetensors",
    "public": "public.safetensors",
    "victims": "victims.safetensors",
    "answers": "answers.safetensors",
    "model": "model.safetensors",
    "prior": "generator.safetensors",
    "attack": "recon.safetensors",
    "metric": "metrics.json",
    "split": "recon.safetensors",
    "split-metric": "metrics.json",
}
# membership inference (mibench_core/membership/plan.py)
STAGE_DIRS.update(shadow="shadows", scenario="scenarios", mia_input="mia_inputs", mia="mia", mia_eval="mia_eval")
MAIN_FILE.update(shadow="outputs.safetensors", scenario="scenarios.safetensors", mia_input="inputs.safetensors",
                 mia="scores.safetensors", mia_eval="metrics.json")  # fmt: skip
HASH_LEN = 10
# Artifacts only trusted jobs may read, and the kinds of job an attacker runs: the plan never
# gives the first to the second (Plan.add).
PRIVATE_KINDS = ("data", "victims", "scenario")  # a scenario artifact holds membership
ATTACKER_KINDS = ("prior", "attack", "mia", "shadow")


def canonical(obj: Any) -> Any:
    """Canonical form for hashing: integral floats become ints (1e2 == 100)."""
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    return obj


def digest(obj: Any) -> str:
    text = json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(files: list[str] | tuple[str, ...]) -> str:
    """Hash of the library source files that produce an artifact (their code, not their docs)."""
    return digest({rel: source_hash(rel) for rel in sorted(set(files))})[:16]


@dataclass
class Node:
    kind: str
    name: str
    label: str
    spec: dict
    inputs: dict[str, str]  # role -> node id
    files: tuple[str, ...]
    options: dict = field(default_factory=dict)  # run options outside the identity (data roots)
    # Enters the id but not the seed (e.g. which weight files a metric would load).
    identity_extra: dict = field(default_factory=dict)
    # A view of one input (its role): the node shares that input's semantic hash and seed.
    view_of: str | None = None
    # Inputs made from this node's own spec and other inputs (a per-sample attack's answers, its
    # metrics' victims): they add nothing to its semantic hash, so they are left out of it.
    derived: tuple[str, ...] = ()
    varies: bool = False  # differs per replicate (its spec or an input has the replicate seed)
    id: str = ""
    semantic: str = ""
    fingerprint: str = ""
    seed: int = 0

    def directory(self, results_dir: str) -> str:
        return f"{results_dir}/{STAGE_DIRS[self.kind]}/{self.id}"

    def job(self, plan: Plan) -> dict:
        """Everything a job needs, as JSON-able data (what the CLI receives)."""
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "label": self.label,
            "spec": self.spec,
            "seed": self.seed,
            "fingerprint": self.fingerprint,
            "device": plan.config["device"],
            "outdir": self.directory(plan.results_dir),
            "options": self.options,
            "inputs": {
                role: {"id": nid, "kind": plan.nodes[nid].kind, "dir": plan.nodes[nid].directory(plan.results_dir)}
                for role, nid in self.inputs.items()
            },
        }


@dataclass
class Run:
    """One attack run with the labels a table row needs."""

    label: str
    dataset: str
    target: str
    defense: str
    prior: str | None
    attack: str
    attack_id: str
    metric_ids: list[str]
    output_defense: str | None = None  # label of the output processing (black-box runs only)
    replicate_seed: int | None = None  # the replicate it belongs to (None: not replicated)


@dataclass
class Plan:
    config: dict
    nodes: dict[str, Node] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    priors_by_dataset: dict[str, list[str]] = field(default_factory=dict)
    varied: set[str] = field(default_factory=set)  # ids of nodes that differ per replicate

    @property
    def results_dir(self) -> str:
        return self.config["results_dir"]

    def add(self, node: Node) -> str:
        if node.kind in ATTACKER_KINDS:
            private = {r: self.nodes[i].kind for r, i in node.inputs.items() if self.nodes[i].kind in PRIVATE_KINDS}
            if private:
                raise ValueError(f"{node.kind} {node.label!r} would read private artifacts {private}")
        inputs_sem = {r: self.nodes[i].semantic for r, i in node.inputs.items() if r not in node.derived}
        if node.view_of is not None:
            node.semantic = self.nodes[node.inputs[node.view_of]].semantic
        else:
            node.semantic = digest(
                {"kind": node.kind, "spec": node.spec, "inputs": inputs_sem, "seed": self.config["seed"]}
            )
        node.fingerprint = fingerprint(node.files)
        full = digest(
            {"semantic": node.semantic, "inputs": node.inputs, "code": node.fingerprint, "extra": node.identity_extra}
        )
        node.id = f"{node.name}-{full[:HASH_LEN]}"
        node.seed = int(node.semantic[:8], 16)
        existing = self.nodes.get(node.id)
        if existing is None:
            self.nodes[node.id] = node
        if node.varies:
            self.varied.add(node.id)
        return node.id

    def replicate(self, stage: str, spec: dict, inputs: dict[str, str], seed: int | None) -> tuple[dict, str]:
        """(spec, label suffix) of a ``stage`` node (target, prior, attack) in replicate ``seed``.

        A varied stage gets the seed in its spec, except in the replicate whose seed is the
        config's ``seed``: that one is the plain run. A node downstream of a varied one keeps its
        spec (its inputs differ). Either way its label ends in ``.seed<seed>``."""
        if seed is None:
            return spec, ""
        varied_stage = stage in self.config["replicates"]["vary"]
        if not varied_stage and not any(i in self.varied for i in inputs.values()):
            return spec, ""
        keyed = varied_stage and seed != self.config["seed"]
        return ({**spec, "replicate": seed} if keyed else spec), f".seed{seed}"

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == kind]

    def path(self, node_id: str, filename: str | None = None) -> str:
        node = self.nodes[node_id]
        return f"{node.directory(self.results_dir)}/{filename or MAIN_FILE[node.kind]}"

    def input_files(self, node_id: str) -> list[str]:
        node = self.nodes[node_id]
        out = []
        for nid in node.inputs.values():
            out += [self.path(nid), self.path(nid, "manifest.json")]
        return out

    def lineage(self, node_id: str) -> list[str]:
        seen: list[str] = []
        stack = [node_id]
        while stack:
            nid = stack.pop()
            if nid in seen:
                continue
            seen.append(nid)
            stack.extend(self.nodes[nid].inputs.values())
        return seen


def _files(stage: str, *entries: registry.Entry) -> tuple[str, ...]:
    """Files whose code produces an artifact: the import closures of the stage runner, of the
    method modules it loads by name and, for an attack, of its access level's context builder
    (mibench_core.fingerprint, mibench_core.stages)."""
    modules = [runner_module(stage), *(e.module for e in entries)]
    modules += [access_module(e.access) for e in entries if e.kind == "attack"]
    return of_modules(*modules)


def _in_scope(defense: dict, dataset_label: str, target_label: str) -> bool:
    """A defense entry may be limited to some datasets / targets (by label)."""
    return dataset_label in defense.get("datasets", [dataset_label]) and target_label in defense.get(
        "targets", [target_label]
    )


def _attack_variants(config: dict) -> list[tuple[dict, dict | None]]:
    """Each attack once as configured; attacks that only query the target (access other
    than white-box) once more per output-processing defense, which the oracle applies."""
    out = []
    for atk in config["attacks"]:
        out.append((atk, None))
        if registry.get("attack", atk["name"]).access != "white-box":
            out.extend((atk, od) for od in config.get("output_defenses", []))
    return out


def _victims(
    plan: Plan,
    entry: registry.Entry,
    spec: dict,
    modules: list[registry.Entry],
    run_label: str,
    ds_label: str,
    data_id: str,
    target_id: str,
) -> tuple[str, str]:
    """The victims of a per-sample attack and the target's answers on them: (victims id, answers id).

    The victims (``per_class`` private training samples of every class, a
    seeded draw) depend on the data and ``per_class`` only, so every
    per-sample attack with the same ``per_class`` inverts the same samples
    (output-processing variants included). The answers are at the attack's
    access level, with its ``top_k`` and output processing."""
    per_class = spec["params"]["per_class"]
    victims_id = plan.add(
        Node("victims", "victims", f"{ds_label}.victims-{per_class}", {"per_class": per_class}, {"data": data_id},
             _files("victims"))
    )  # fmt: skip
    answers_spec = {
        "access": entry.access,
        "top_k": spec["params"].get("top_k") if entry.access == "top-k" else None,
        **({"output": spec["output"]} if "output" in spec else {}),
    }
    answers_id = plan.add(
        Node("answers", "answers", f"{run_label}.answers", answers_spec,
             {"victims": victims_id, "data": data_id, "target": target_id}, _files("answers", *modules))
    )  # fmt: skip
    return victims_id, answers_id


def _replicate_seeds(config: dict) -> list[int | None]:
    """The replicate seeds of the config (``[None]``: no replicates)."""
    rep = config.get("replicates")
    return list(rep["seeds"]) if rep else [None]


def _prior_seeing(plan: Plan, prior_id: str, out: dict | None) -> str:
    """The prior an attack run uses. A prior that queries the target through an
    oracle (tied to the target, registry ``access`` not white-box) must see what
    the attacker sees: under output processing it is its own artifact, one per
    target and output defense, whose oracle applies it (spec key ``output``)."""
    node = plan.nodes[prior_id]
    entry = registry.get("prior", node.name)
    if out is None or not entry.needs_target or entry.access == "white-box":
        return prior_id
    spec = {**node.spec, "output": {"name": out["name"], "params": out["params"]}}
    files = _files("prior", entry, registry.get("output", out["name"]))
    return plan.add(
        Node("prior", node.name, f"{node.label}_{out['label']}", spec, dict(node.inputs), files, varies=node.varies)
    )


def build(config: dict) -> Plan:
    """Expand a *validated* config (see mibench_core.config.validate) into a plan."""
    plan = Plan(config=config)
    run_ids: set[str] = set()

    met_entries = [registry.get("metric", met["name"]) for met in config["metrics"]]
    metrics_spec = {
        "metrics": [{"name": m["name"], "label": m["label"], "params": m["params"]} for m in config["metrics"]]
    }
    metrics_files = _files("metric", *met_entries)
    metrics_extra: dict = {}
    if any(e.needs_weights for e in met_entries):
        from mibench_core.weights import presence_token

        metrics_extra = {"weights": presence_token(config.get("weights"))}
    # the within-run intervals: in the metrics' ids (not their seeds, so no value changes with them)
    intervals = {k: config["statistics"][k] for k in ("bootstrap", "confidence")}
    metrics_extra["intervals"] = intervals

    ev_cfg = config["evaluation"]
    for ds in config["datasets"]:
        ds_entry = registry.get("dataset", ds["name"])
        ds_spec = {k: v for k, v in ds.items() if k not in ("label", "root", "download")}
        data_id = plan.add(
            Node(
                "data",
                ds["name"],
                ds["label"],
                ds_spec,
                {},
                _files("data", ds_entry),
                options={"root": ds["root"], "download": ds["download"]},
            )  # fmt: skip
        )
        # what attacker-side jobs get of the dataset: its public split, in an artifact of its own
        public_id = plan.add(
            Node("public", "public", f"{ds['label']}.public", {}, {"data": data_id}, _files("public"), view_of="data")
        )
        ev_entry = registry.get("arch", ev_cfg["arch"])
        eval_id = plan.add(
            Node(
                "model",
                ev_cfg["arch"],
                f"{ds['label']}.{ev_cfg['label']}",
                {
                    "role": "evaluation",
                    "arch": ev_cfg["arch"],
                    "arch_params": ev_cfg["arch_params"],
                    "defense": {"name": "none", "params": {}},
                    "train": ev_cfg["train"],
                },
                {"data": data_id},
                _files("model", ev_entry, registry.get("defense", "none")),
            )
        )
        for tgt in config["targets"]:
            arch_entry = registry.get("arch", tgt["arch"])
            for dfn, rep in itertools.product(config["defenses"], _replicate_seeds(config)):
                if not _in_scope(dfn, ds["label"], tgt["label"]):
                    continue
                dfn_entry = registry.get("defense", dfn["name"])
                tgt_spec, tgt_suffix = plan.replicate(
                    "target",
                    {
                        "role": "target",
                        "arch": tgt["arch"],
                        "arch_params": tgt["arch_params"],
                        "defense": {"name": dfn["name"], "params": dfn["params"]},
                        "train": tgt["train"],
                    },
                    {"data": data_id},
                    rep,
                )
                target_id = plan.add(
                    Node(
                        "model",
                        tgt["arch"],
                        f"{ds['label']}.{tgt['label']}.{dfn['label']}{tgt_suffix}",
                        tgt_spec,
                        {"data": data_id},
                        _files("model", arch_entry, dfn_entry),
                        varies=bool(tgt_suffix),
                    )
                )
                prior_ids: dict[str, str] = {}
                for pr in config["priors"]:
                    pr_entry = registry.get("prior", pr["name"])
                    inputs = {"data": public_id}
                    if pr_entry.needs_target:
                        inputs["target"] = target_id
                    pr_spec, pr_suffix = plan.replicate("prior", {"name": pr["name"], "params": pr["params"]}, inputs,
                                                        rep)  # fmt: skip
                    prior_ids[pr["label"]] = plan.add(
                        Node(
                            "prior",
                            pr["name"],
                            # a prior tied to a target is one per target: its label says which
                            f"{ds['label']}.{pr['label']}"
                            + (f".{tgt['label']}.{dfn['label']}" if pr_entry.needs_target else "")
                            + pr_suffix,
                            pr_spec,
                            inputs,
                            _files("prior", pr_entry),
                            varies=bool(pr_suffix),
                        )
                    )
                plan.priors_by_dataset.setdefault(ds["label"], [])
                for pid in prior_ids.values():
                    if pid not in plan.priors_by_dataset[ds["label"]]:
                        plan.priors_by_dataset[ds["label"]].append(pid)
                for atk, out in _attack_variants(config):
                    if out is not None and dfn["label"] not in out.get("defenses", [dfn["label"]]):
                        continue  # output processing scoped to other targets' defenses
                    atk_entry = registry.get("attack", atk["name"])
                    inputs = {"target": target_id, "data": public_id}
                    if atk.get("prior"):
                        inputs["prior"] = _prior_seeing(plan, prior_ids[atk["prior"]], out)
                    for j, aux_label in enumerate(atk.get("aux") or []):
                        inputs[f"aux{j}"] = _prior_seeing(plan, prior_ids[aux_label], out)
                    atk_label, atk_spec, atk_modules = atk["label"], {"name": atk["name"], "params": atk["params"]}, []
                    if out is not None:
                        # the oracle applies it; the spec key puts it in the attack's id
                        atk_label = f"{atk['label']}_{out['label']}"
                        atk_spec["output"] = {"name": out["name"], "params": out["params"]}
                        atk_modules = [registry.get("output", out["name"])]
                    atk_spec, run_suffix = plan.replicate("attack", atk_spec, inputs, rep)
                    run_label = f"{ds['label']}.{tgt['label']}.{dfn['label']}.{atk_label}{run_suffix}"
                    trusted = {}  # the metric job's extra inputs: the victims a per-sample attack inverts
                    if atk_entry.victims:
                        trusted["victims"], inputs["answers"] = _victims(
                            plan, atk_entry, atk_spec, atk_modules, run_label, ds["label"], data_id, target_id
                        )
                    attack_id = plan.add(
                        Node(
                            "attack",
                            atk["name"],
                            run_label,
                            atk_spec,
                            inputs,
                            _files("attack", atk_entry, *atk_modules),
                            derived=("answers",),
                            varies=bool(run_suffix),
                        )
                    )
                    if rep is not None and attack_id in run_ids:
                        continue  # a run no replicate changes (e.g. an attack without a prior, only priors vary)
                    run_ids.add(attack_id)
                    # One job computes every configured metric of a run: they share
                    # the evaluation model's features of the private images.
                    metrics_id = plan.add(
                        Node(
                            "metric",
                            "metrics",
                            f"{run_label}.metrics",
                            metrics_spec,
                            {
                                "attack": attack_id,
                                "evaluation": eval_id,
                                "target": target_id,
                                "data": data_id,
                                **trusted,
                            },
                            metrics_files,
                            options={"weights": config.get("weights", {}), "statistics": intervals},
                            identity_extra=metrics_extra,
                            derived=("victims",),
                        )
                    )
                    plan.runs.append(
                        Run(
                            run_label,
                            ds["label"],
                            tgt["label"],
                            dfn["label"],
                            atk.get("prior"),
                            atk_label,
                            attack_id,
                            [metrics_id],
                            out["label"] if out is not None else None,
                            rep if run_suffix else None,
                        )
                    )
    membership.expand(plan)
    from mibench_core.split.plan import add_split_nodes

    add_split_nodes(plan)  # the split-inference track (config key split_inference)
    return plan


def from_config(config: dict) -> Plan:
    from mibench_core.config import validate

    return build(validate(config))
