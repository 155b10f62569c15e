"""Collect every attack run's manifests and metrics into tidy Parquet tables.

``attacks.parquet``: one row per attack run. Columns: the run's labels; the
artifact ids of its lineage; every spec field, flattened with a stage prefix
(``attack.params.lr``, ``target.train.epochs``, ``dataset.resolution``...);
every metric value (missing values are null, with the reason in
``missing_reasons``); the target's and evaluation model's natural accuracy;
wall times; library versions; ``output_defense`` (the output processing of a
black-box run, ``none`` otherwise) and ``target_defense.*`` (what the
target's defense reported: DP-SGD's epsilon, AT's robust accuracy, ...);
``metric_columns``, the names of the metric values of the row (JSON; the
configured metrics in order, each with its declared columns, then values no
metric declares), so reports show every metric without a list of their own
(:func:`metric_columns`; titles: :func:`column_title`, from each metric's
``columns`` declaration).

``attack_classes.parquet``: one row per (run, class) with per-class values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mibench_core import registry, store


def flatten(prefix: str, obj: Any, out: dict) -> dict:
    if isinstance(obj, dict):
        for k, v in obj.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(obj, (list, tuple)):
        out[prefix] = json.dumps(obj)
    else:
        out[prefix] = obj
    return out


def collect(metric_dirs: list[str]) -> tuple[list[dict], list[dict]]:
    """Rows for both tables from the metric artifact folders of every run."""
    by_attack: dict[str, list[dict]] = {}
    for d in metric_dirs:
        manifest = store.read_manifest(d)
        manifest["_dir"] = str(d)
        by_attack.setdefault(manifest["inputs"]["attack"], []).append(manifest)
    rows, class_rows = [], []
    for attack_id, metric_manifests in by_attack.items():
        results_dir = Path(metric_manifests[0]["_dir"]).parent.parent
        dir_of = {"data": "data", "model": "models", "prior": "priors", "attack": "attacks"}
        attack = store.read_manifest(results_dir / "attacks" / attack_id)
        m0 = metric_manifests[0]["inputs"]
        target = store.read_manifest(results_dir / "models" / m0["target"])
        evaluation = store.read_manifest(results_dir / "models" / m0["evaluation"])
        data = store.read_manifest(results_dir / "data" / m0["data"])
        prior = None
        if "prior" in attack["inputs"]:
            prior = store.read_manifest(results_dir / dir_of["prior"] / attack["inputs"]["prior"])
        label = attack["label"]
        ds_label, target_label, defense_label, attack_label = label.split(".", 3)
        row: dict[str, Any] = {
            "run": label,
            "dataset": ds_label,
            "target": target_label,
            "defense": defense_label,
            "prior": prior["label"].split(".")[1] if prior else None,
            "attack": attack_label,
            "attack_name": attack["name"],
            "data_id": data["id"],
            "target_id": target["id"],
            "evaluation_id": evaluation["id"],
            "prior_id": prior["id"] if prior else None,
            "attack_id": attack_id,
            "target_test_acc": target["results"]["test_acc"],
            "target_val_acc": target["results"]["val_acc"],
            "evaluation_test_acc": evaluation["results"]["test_acc"],
            "num_reconstructions": attack["results"]["num_reconstructions"],
            "queries": attack["results"].get("queries"),
            "attack_wall_s": attack["wall_time_s"],
            "target_wall_s": target["wall_time_s"],
            "prior_wall_s": prior["wall_time_s"] if prior else None,
            "device": attack["device"],
        }
        # output processing of black-box runs, and defense facts of the target (epsilon, ...)
        row["output_defense"] = (attack["spec"].get("output") or {}).get("name", "none")
        flatten("target_defense", target["results"].get("defense", {}), row)
        flatten("dataset", data["spec"], row)
        flatten("target", target["spec"], row)
        flatten("evaluation", evaluation["spec"], row)
        if prior:
            flatten("prior", prior["spec"], row)
        flatten("attack", attack["spec"], row)
        for k, v in attack["versions"].items():
            row[f"version.{k}"] = v
        missing: dict[str, str] = {}
        per_class: dict[str, dict] = {}
        values: list[str] = []
        for mm in sorted(metric_manifests, key=lambda m: m["name"]):
            payload = store.read_json(Path(mm["_dir"]) / "metrics.json")
            row.update(payload["overall"])
            values += [name for name in _value_order(mm["spec"]["metrics"], payload["overall"]) if name not in values]
            missing.update(payload["missing"])
            row["metrics_id"] = mm["id"]
            row["metric_wall_s"] = row.get("metric_wall_s", 0.0) + mm["wall_time_s"]
            for c, vals in payload["per_class"].items():
                per_class.setdefault(c, {}).update(vals)
        row["missing_reasons"] = json.dumps(missing, sort_keys=True)
        row["metric_columns"] = json.dumps(values)
        rows.append(row)
        for c, vals in sorted(per_class.items(), key=lambda kv: int(kv[0])):
            class_rows.append({"run": label, "attack_id": attack_id, "class": int(c), **vals})
    rows.sort(key=lambda r: r["run"])
    class_rows.sort(key=lambda r: (r["run"], r["class"]))
    return rows, class_rows


def _value_order(metrics: list[dict], overall: dict) -> list[str]:
    """The values of one metric job in display order: the configured metrics in turn, each with its
    declared columns in declaration order (``<column>.<label>`` for a labelled entry), then any value
    no entry declares, sorted."""
    out: list[str] = []
    for met in metrics:
        suffix = "" if met["label"] == met["name"] else f".{met['label']}"
        entry = registry.REGISTRIES["metric"].get(met["name"])
        out += [c + suffix for c in (entry.columns if entry else {}) if c + suffix in overall]
    return out + sorted(set(overall) - set(out))


def declared_columns() -> dict[str, dict[str, str]]:
    """Every metric value the registry's metric entries declare (``columns``), in discovery order."""
    out: dict[str, dict[str, str]] = {}
    for entry in registry.REGISTRIES["metric"].values():
        for col, spec in entry.columns.items():
            out.setdefault(col, spec)
    return out


def metric_columns(df) -> list[str]:
    """The metric value columns of an attack table, in the order of the rows' ``metric_columns``.

    Every value a metric job reported is one, whether or not its metric declares it, and so is
    the labelled copy of a metric (``acc1.<label>``). A table without that column (written by hand) falls back on
    the columns the registry declares."""
    if "metric_columns" in df.columns:
        out: list[str] = []
        for text in df["metric_columns"].dropna():
            out += [c for c in json.loads(text) if c not in out and c in df.columns]
        return out
    return [c for c in declared_columns() if c in df.columns]


def column_title(column: str) -> tuple[str, str]:
    """(title, hint) of a metric column from its metric's declaration, e.g. ``("Acc@1 (eval model)",
    "higher = stronger attack")``; ``acc1.<label>`` (a labelled copy) is titled ``Acc@1 (eval model) [<label>]``;
    an undeclared column is titled by its name, without a hint."""
    declared = declared_columns()
    base, _, label = column.partition(".")
    spec = declared.get(column) or declared.get(base)
    if spec is None:
        return column, ""
    title = spec["label"] if column in declared or not label else f"{spec['label']} [{label}]"
    better, meaning = spec.get("better"), spec.get("meaning")
    hint = f"{better} = {meaning}" if better and meaning else (f"{better} is better" if better else "")
    return title, hint


def write_tables(metric_dirs: list[str], attacks_path: str, classes_path: str) -> None:
    import pandas as pd

    rows, class_rows = collect(metric_dirs)
    for path, data in ((attacks_path, rows), (classes_path, class_rows)):
        df = pd.DataFrame(data)
        with store.atomic_path(path) as tmp:
            df.to_parquet(tmp, index=False)
