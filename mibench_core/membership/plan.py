"""Membership-inference nodes of the plan (stdlib only): called once from :func:`mibench_core.plan.build`.

For every target model of the plan in the scope of ``membership`` (its
``datasets`` / ``targets`` / ``defenses`` label lists, default all):

* ``shadows.offline`` + ``shadows.online`` shadow nodes (kind ``shadow``,
  reading the ``mia_input`` candidates artifact, never the data),
  the same architecture, training and (``defense: same``) defense as the
  target; a set shares its seed (``set_seed``) so its masks are drawn jointly;
  shadows of targets trained identically are the same artifacts;
* one ``scenario`` node (its evaluation sets, with membership: read by the
  evaluation only);
* ``mia_input`` nodes (:mod:`mibench_core.membership.inputs`): the
  candidates and the population without membership, and for set-dependent
  attacks the scenario sets without membership; an attack job reads these,
  never the data or the scenario artifact;
* one ``mia`` node per attack, and per output processing of the config
  (``output_defenses``, within their ``defenses`` scope) when
  ``membership.output_defenses`` is true;
* one ``mia_eval`` node over all of the target's attack runs.

The candidate pool's seed derives from the pool settings and the data
artifact, so every node of a dataset rebuilds the same pool.
"""

from __future__ import annotations

import copy

from mibench_core import registry


def _seed(*parts) -> int:
    from mibench_core.plan import digest

    return int(digest(list(parts))[:8], 16)


def expand(plan) -> None:
    """Add the membership nodes of ``plan.config["membership"]`` to ``plan`` (nothing when absent or disabled)."""
    from mibench_core.plan import Node, _files

    cfg = plan.config
    mem = cfg.get("membership")
    if not mem or not mem.get("enabled", True) or not mem.get("attacks"):
        return
    entries = [registry.get("mia", a["name"]) for a in mem["attacks"]]
    needs = set().union(*(set(e.aux) for e in entries))
    sh = mem["shadows"]
    outputs = cfg.get("output_defenses", []) if mem.get("output_defenses", True) else []
    targets = [n for n in list(plan.nodes.values()) if n.kind == "model" and n.spec.get("role") == "target"]
    for node in targets:
        ds_label, tgt_label, dfn_label = node.label.split(".", 2)
        if not (
            ds_label in mem.get("datasets", [ds_label])
            and tgt_label in mem.get("targets", [tgt_label])
            and dfn_label in mem.get("defenses", [dfn_label])
        ):
            continue
        data_id = node.inputs["data"]
        pool = {**mem["pool"], "seed": _seed("pool", mem["pool"], plan.nodes[data_id].semantic, cfg["seed"])}
        defense = node.spec["defense"] if sh["defense"] == "same" else {"name": "none", "params": {}}
        train = {**node.spec["train"], **copy.deepcopy(sh.get("train") or {})}
        arch_entry = registry.get("arch", node.spec["arch"])
        dfn_entry = registry.get("defense", defense["name"])
        refs: dict[str, str] = {}
        # what the attacker's jobs get of the pool: candidates and population without membership
        cand_inputs = {
            False: plan.add(
                Node(
                    "mia_input",
                    "mia_input",
                    f"{ds_label}.{tgt_label}.{dfn_label}.candidates",
                    {"pool": pool, "sets": False},
                    {"data": data_id},
                    _files("mia_input"),
                )
            )
        }
        for mode in ("offline", "online"):
            count = sh[mode] if (mode == "offline" or "online" in needs) else 0
            base = {
                "mode": mode, "count": count, "arch": node.spec["arch"], "arch_params": node.spec["arch_params"],
                "train": train, "defense": defense, "pool": pool, "augmentations": sh["augmentations"],
                "val_fraction": sh["val_fraction"], "train_size": sh["train_size"] if mode == "offline" else None,
            }  # fmt: skip
            set_seed = _seed("shadows", base, plan.nodes[data_id].semantic)
            for i in range(count):
                refs[f"{mode}{i}"] = plan.add(
                    Node(
                        "shadow",
                        "shadow",
                        f"{ds_label}.{tgt_label}.{dfn_label}.{mode}{i}",
                        {**base, "index": i, "set_seed": set_seed},
                        {"candidates": cand_inputs[False]},
                        _files("shadow", arch_entry, dfn_entry),
                    )  # fmt: skip
                )
        offline = {r: i for r, i in refs.items() if r.startswith("offline")}
        scen_id = plan.add(
            Node(
                "scenario",
                "scenarios",
                f"{ds_label}.{tgt_label}.{dfn_label}.scenarios",
                {"pool": pool, "scenarios": mem["scenarios"]},
                {"data": data_id, "target": node.id, **offline},
                _files("scenario"),
            )  # fmt: skip
        )
        if "scenarios" in needs:
            cand_inputs[True] = plan.add(
                Node(
                    "mia_input",
                    "mia_input",
                    f"{ds_label}.{tgt_label}.{dfn_label}.candidates+sets",
                    {"pool": pool, "sets": True},
                    {"data": data_id, "scenarios": scen_id},
                    _files("mia_input"),
                )  # fmt: skip
            )
        mia_ids = []
        for atk, entry in zip(mem["attacks"], entries):
            for out in [None, *outputs]:
                if out is not None and dfn_label not in out.get("defenses", [dfn_label]):
                    continue
                inputs = {"target": node.id, "candidates": cand_inputs["scenarios" in entry.aux]}
                if "offline" in entry.aux:
                    inputs.update(offline)
                if "online" in entry.aux:
                    inputs.update({r: i for r, i in refs.items() if r.startswith("online")})
                spec = {"name": atk["name"], "params": atk["params"], "pool": pool,
                        "augmentations": sh["augmentations"]}  # fmt: skip
                label, extra = atk.get("label", atk["name"]), []
                if out is not None:
                    spec["output"] = {"name": out["name"], "params": out["params"]}
                    label = f"{label}_{out['label']}"
                    extra = [registry.get("output", out["name"])]
                mia_ids.append(
                    plan.add(
                        Node(
                            "mia",
                            atk["name"],
                            f"{ds_label}.{tgt_label}.{dfn_label}.{label}",
                            spec,
                            inputs,
                            _files("mia", entry, *extra),
                        )  # fmt: skip
                    )
                )
        plan.add(
            Node(
                "mia_eval",
                "membership",
                f"{ds_label}.{tgt_label}.{dfn_label}.membership",
                {"metrics": "all"},
                {"scenarios": scen_id, **{f"mia{j}": m for j, m in enumerate(mia_ids)}},
                _files("mia_eval"),
            )  # fmt: skip
        )
