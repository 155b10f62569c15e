"""The split-inference track's part of the plan (stdlib only), and the lookups its rules use.

For every dataset of ``split_inference`` (default: the top-level ones), every
split target in its scope and every defense label of the section:

* a target model node (the model stage, role ``target``), labelled
  ``<dataset>.<target>.<defense>`` like the other targets;
* one ``split`` node per (technique entry, split point), labelled
  ``<dataset>.<target>.<defense>.<technique label>.<split point>``, with the
  technique's parameters resolved at that split point (so changing rMLE's
  lambda at fc1 reruns only the fc1 nodes);
* one ``split-metric`` node scoring all of them (inputs ``split000``,
  ``split001``, ...), with the dataset's evaluation model.

Data and evaluation nodes have the same specs as the main track's, so a
dataset both use is prepared once and scored by one evaluation model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mibench_core import registry
from mibench_core.split.settings import resolve

METRIC_NAME = "split-metrics"


@dataclass
class SplitGroup:
    """The split runs of one trained target (what one table block and one set of grids show)."""

    label: str  # <dataset>.<target>.<defense>
    metric_id: str
    points: list[str] = field(default_factory=list)  # shallow to deep
    runs: dict[tuple[str, str], str] = field(default_factory=dict)  # (technique label, point) -> node id


def add_split_nodes(plan) -> None:
    """Add the track's nodes to ``plan`` (a :class:`mibench_core.plan.Plan` being built)."""
    from mibench_core.fingerprint import of_modules
    from mibench_core.plan import Node, _files
    from mibench_core.stages import runner_module

    config = plan.config
    sec = config.get("split_inference") or {}
    if not sec.get("targets"):
        return
    ev_cfg = config["evaluation"]
    defenses = sec["defense_entries"]
    metric_files = of_modules(runner_module("split-metric"))
    for ds in sec["datasets"]:
        ds_entry = registry.get("dataset", ds["name"])
        data_id = plan.add(
            Node(
                "data",
                ds["name"],
                ds["label"],
                {k: v for k, v in ds.items() if k not in ("label", "root", "download")},
                {},
                _files("data", ds_entry),
                options={"root": ds["root"], "download": ds["download"]},
            )
        )
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
                _files("model", registry.get("arch", ev_cfg["arch"]), registry.get("defense", "none")),
            )
        )
        for tgt in sec["targets"]:
            if ds["label"] not in tgt["datasets"]:
                continue
            arch_entry = registry.get("arch", tgt["arch"])
            for dfn_label in sec["defenses"]:
                dfn = defenses[dfn_label]
                group = f"{ds['label']}.{tgt['label']}.{dfn_label}"
                target_id = plan.add(
                    Node(
                        "model",
                        tgt["arch"],
                        group,
                        {
                            "role": "target",
                            "arch": tgt["arch"],
                            "arch_params": tgt["arch_params"],
                            "defense": {"name": dfn["name"], "params": dfn["params"]},
                            "train": tgt["train"],
                        },
                        {"data": data_id},
                        _files("model", arch_entry, registry.get("defense", dfn["name"])),
                    )
                )
                inputs = {"data": data_id, "evaluation": eval_id, "target": target_id}
                for atk in sec["attacks"]:
                    entry = registry.get("split_attack", atk["name"])
                    for point in tgt["split_points"]:
                        params = {k: resolve(v, tgt["arch"], point) for k, v in atk["params"].items()}
                        spec = {
                            "params": params,
                            "split_point": point,
                            "victims": {"count": sec["victims"], "seed": config["seed"]},
                        }
                        sid = plan.add(
                            Node(
                                "split",
                                atk["name"],
                                f"{group}.{atk['label']}.{point}",
                                spec,
                                {"target": target_id, "data": data_id},
                                _files("split", entry),
                            )
                        )
                        inputs[f"split{len(inputs) - 3:03d}"] = sid
                plan.add(Node("split-metric", METRIC_NAME, f"{group}.{METRIC_NAME}", {}, inputs, metric_files))


def groups(plan) -> list[SplitGroup]:
    """One :class:`SplitGroup` per split-metric node, in plan order."""
    out = []
    for node in plan.of_kind("split-metric"):
        g = SplitGroup(node.label.rsplit(".", 1)[0], node.id)
        for role, nid in node.inputs.items():
            if not role.startswith("split"):
                continue
            run = plan.nodes[nid]
            atk_label, point = run.label[len(g.label) + 1 :].rsplit(".", 1)
            g.runs[(atk_label, point)] = nid
            if point not in g.points:
                g.points.append(point)
        out.append(g)
    return out


def row_labels(plan) -> dict[str, dict[str, str]]:
    """Split id -> the labels of its table row (this config's, not the ones its artifact was built under)."""
    out = {}
    for g in groups(plan):
        dataset, target, defense = g.label.split(".")
        for (technique, point), nid in g.runs.items():
            out[nid] = dict(run=plan.nodes[nid].label, group=g.label, dataset=dataset, target=target,
                            defense=defense, technique=technique, split_point=point)  # fmt: skip
    return out


def group_by_label(plan) -> dict[str, SplitGroup]:
    return {g.label: g for g in groups(plan)}


def final_targets(plan, tables: str, reports: str) -> list[str]:
    """What ``rule all`` asks of the track (nothing when it is not configured)."""
    gs = groups(plan)
    if not gs:
        return []
    return [
        f"{tables}/split_inference.parquet",
        f"{reports}/tables/split_inference.md",
        f"{reports}/figures/split/depth.png",
        *[f"{reports}/figures/split/{g.label}/{p}.png" for g in gs for p in g.points],
    ]
