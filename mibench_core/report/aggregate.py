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

Intervals and replicates: each metric value ``<m>`` has ``<m>_ci_low`` and
``<m>_ci_high``, its within-run percentile bootstrap interval over the run's
reconstructions (null where the value has none; why in ``ci_notes``, JSON),
``n_recon`` the number of reconstructions and ``ci_method`` how the interval
was made. ``replicate_seed`` is the replicate the row belongs to (config key
``replicates``; null without replicates) and ``setting`` the run's label
without it, the same for every replicate of a run.

``attack_classes.parquet``: one row per (run, class) with per-class values.

``attacks_summary.parquet`` (:func:`write_summary`): one row per setting,
over its replicates: each metric value and its interval the random-effects
combination of the runs' values with their within-run variances
(:func:`over_seeds`, :func:`mibench_core.stats.combine_runs`: logit scale for
proportions, log scale for distances, so no interval leaves the metric's
range), ``<m>_per_seed`` the runs' values (JSON, in seed order), other numeric
columns the mean over seeds; with one seed, the run's values and within-run
interval (``ci_method`` says which); ``n_seeds``, ``seeds`` (JSON) and
``n_recon`` (reconstructions over all seeds). ``<m>_n_eff`` in the attacks
table is a proportion's effective number of reconstructions (after the class
design effect). The figures and the paper tables read the summary.

Labels (``run``, ``dataset``, ``target``, ...) come from the config that asks
for the table (``runs``), not from the manifests: a label is a name, so a
renamed run reuses its artifacts and only the tables change. Every artifact
read is first checked against its manifest (metric artifacts in full, the
others' manifests by their own digest: the table reads nothing else of them).
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


def _manifest(folder: Path, what: str) -> dict:
    store.check(folder, what, files=False)
    return store.read_manifest(folder)


def replicate_seed(names: dict, specs: list[dict]) -> int | None:
    """The replicate a row belongs to: the plan's (``names["replicate_seed"]``) where it says, else the
    seed in the artifacts' specs. The replicate of the config's seed is the plain run, whose specs carry
    no seed, so only the plan knows it is replicate 0."""
    if "replicate_seed" in names:
        return names["replicate_seed"]
    return next((sp["replicate"] for sp in specs if "replicate" in sp), None)


def collect(metric_dirs: list[str], runs: dict[str, dict] | None = None) -> tuple[list[dict], list[dict]]:
    """Rows for both tables from the metric artifact folders of every run.

    ``runs``: attack id -> {run, dataset, target, defense, prior, attack, replicate_seed} labels of its
    row (the plan's; without it, the labels the artifacts were first built under)."""
    by_attack: dict[str, list[dict]] = {}
    for d in metric_dirs:
        store.check(d, "metrics")
        manifest = store.read_manifest(d)
        manifest["_dir"] = str(d)
        by_attack.setdefault(manifest["inputs"]["attack"], []).append(manifest)
    rows, class_rows = [], []
    for attack_id, metric_manifests in by_attack.items():
        results_dir = Path(metric_manifests[0]["_dir"]).parent.parent
        dir_of = {"data": "data", "model": "models", "prior": "priors", "attack": "attacks"}
        attack = _manifest(results_dir / "attacks" / attack_id, "attack")
        m0 = metric_manifests[0]["inputs"]
        target = _manifest(results_dir / "models" / m0["target"], "target model")
        evaluation = _manifest(results_dir / "models" / m0["evaluation"], "evaluation model")
        data = _manifest(results_dir / "data" / m0["data"], "data")
        prior = None
        if "prior" in attack["inputs"]:
            prior = _manifest(results_dir / dir_of["prior"] / attack["inputs"]["prior"], "prior")
        names = (runs or {}).get(attack_id)
        if names is None:
            ds_label, target_label, defense_label, rest = attack["label"].split(".", 3)
            attack_label = rest.split(".", 1)[0]  # without a replicate's `.seed<n>` (labels have no dots)
            names = {"run": attack["label"], "dataset": ds_label, "target": target_label, "defense": defense_label,
                     "prior": prior["label"].split(".")[1] if prior else None, "attack": attack_label}  # fmt: skip
        label = names["run"]
        specs = [attack["spec"], target["spec"], prior["spec"] if prior else {}]
        row: dict[str, Any] = {
            "run": label,
            "setting": f"{names['dataset']}.{names['target']}.{names['defense']}.{names['attack']}",
            "replicate_seed": replicate_seed(names, specs),
            "dataset": names["dataset"],
            "target": names["target"],
            "defense": names["defense"],
            "prior": names["prior"],
            "attack": names["attack"],
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
        ci_notes: dict[str, str] = {}
        per_class: dict[str, dict] = {}
        values: list[str] = []
        for mm in sorted(metric_manifests, key=lambda m: m["name"]):
            payload = store.read_json(Path(mm["_dir"]) / "metrics.json")
            row.update(payload["overall"])
            for name in payload["overall"]:
                low, high = (payload.get("ci") or {}).get(name) or (None, None)
                row[f"{name}_ci_low"], row[f"{name}_ci_high"] = low, high
                row[f"{name}_n_eff"] = (payload.get("n_eff") or {}).get(name)
            values += [name for name in _value_order(mm["spec"]["metrics"], payload["overall"]) if name not in values]
            missing.update(payload["missing"])
            ci_notes.update(payload.get("ci_notes", {}))
            row["n_recon"] = payload.get("n_recon", row["num_reconstructions"])
            row["ci_method"] = (payload.get("intervals") or {}).get("method", "none (metrics without intervals)")
            row["metrics_id"] = mm["id"]
            row["metric_wall_s"] = row.get("metric_wall_s", 0.0) + mm["wall_time_s"]
            for c, vals in payload["per_class"].items():
                per_class.setdefault(c, {}).update(vals)
        row["missing_reasons"] = json.dumps(missing, sort_keys=True)
        row["ci_notes"] = json.dumps(ci_notes, sort_keys=True)
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


def write_tables(metric_dirs: list[str], attacks_path: str, classes_path: str, runs: dict | None = None) -> None:
    import pandas as pd

    rows, class_rows = collect(metric_dirs, runs)
    for path, data in ((attacks_path, rows), (classes_path, class_rows)):
        df = pd.DataFrame(data)
        with store.atomic_path(path) as tmp:
            df.to_parquet(tmp, index=False)


# Values besides the metrics that get an interval over seeds in the summary (a target's accuracy varies with it).
SUMMARY_INTERVALS = ("target_test_acc", "target_val_acc", "evaluation_test_acc")
PER_RUN = ("run", "replicate_seed", "ci_method", "missing_reasons", "ci_notes", "n_recon")


def _merge_reasons(texts) -> str:
    """Merge JSON {value: reason} records of several runs: each reason once per value."""
    merged: dict[str, list[str]] = {}
    for text in texts:
        for name, reason in json.loads(text or "{}").items():
            if reason not in merged.setdefault(name, []):
                merged[name].append(reason)
    return json.dumps({k: " | ".join(v) for k, v in merged.items()}, sort_keys=True)


def _same(values: list) -> bool:
    return all(v == values[0] or (v != v and values[0] != values[0]) for v in values[1:])


def scale_of(col: str, values, n_eff) -> str:
    """The scale a value is combined over seeds on: ``logit`` for a proportion (a run's value with an
    effective n, or an accuracy of the models), ``log`` for a distance (lower is better, all values
    positive), ``identity`` otherwise."""
    import numpy as np

    declared = declared_columns()
    better = (declared.get(col) or declared.get(col.split(".", 1)[0]) or {}).get("better")
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if any(x is not None and x == x for x in n_eff) or (col in SUMMARY_INTERVALS and ((v > 0) & (v < 1)).all()):
        return "logit"
    if better == "lower" and len(v) and (v > 0).all():
        return "log"
    return "identity"


def over_seeds(grp, col: str, confidence: float) -> tuple[float | None, float | None, float | None, str]:
    """(value, low, high, method) of a column over a setting's replicate runs
    (:func:`mibench_core.stats.combine_runs`)."""
    import pandas as pd

    from mibench_core import stats

    def num(c):
        return pd.to_numeric(grp[c], errors="coerce").tolist() if c in grp else [None] * len(grp)

    values, lows, highs, n_eff = num(col), num(f"{col}_ci_low"), num(f"{col}_ci_high"), num(f"{col}_n_eff")
    keep = [i for i, v in enumerate(values) if v == v and v is not None]
    if not keep:
        return None, None, None, "no values"
    ivs = [None if lows[i] != lows[i] or highs[i] != highs[i] else (lows[i], highs[i]) for i in keep]
    ne = [None if n_eff[i] is None or n_eff[i] != n_eff[i] else n_eff[i] for i in keep]
    scale = scale_of(col, [values[i] for i in keep], ne)
    if scale == "logit" and col in SUMMARY_INTERVALS:
        ne = [None] * len(keep)
    value, low, high, method = stats.combine_runs([values[i] for i in keep], scale, confidence, ne, ivs)
    return value, low, high, method


def summarise(df, confidence: float = 0.95):
    """One row per setting (the run without its replicate seed): see the module docstring."""
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    df = df.copy()
    if "setting" not in df.columns:
        df["setting"] = df["run"]
    if "replicate_seed" not in df.columns:
        df["replicate_seed"] = None
    metrics = metric_columns(df)
    interval_cols = {f"{m}_{part}" for m in [*metrics, *SUMMARY_INTERVALS] for part in ("ci_low", "ci_high", "n_eff")}
    rows = []
    for setting, grp in df.groupby("setting", sort=True):
        grp = grp.sort_values("replicate_seed", na_position="first")
        n = len(grp)
        row: dict[str, Any] = {"run": setting}
        for col in df.columns:
            if col in PER_RUN or col in interval_cols or col in metrics or col == "setting":
                continue
            vals = grp[col].tolist()
            if _same(vals):
                row[col] = vals[0]
            elif is_numeric_dtype(grp[col]) and not is_bool_dtype(grp[col]):
                row[col] = float(pd.to_numeric(grp[col], errors="coerce").mean())
            else:
                row[col] = json.dumps(sorted({str(v) for v in vals}))
        row["setting"] = setting
        seeds = sorted(int(s) for s in grp["replicate_seed"] if s is not None and s == s)
        row["n_seeds"], row["seeds"] = n, json.dumps(seeds)
        row["n_recon"] = int(grp["n_recon"].sum()) if "n_recon" in grp else None
        methods: dict[str, str] = {}
        for col in [*metrics, *SUMMARY_INTERVALS]:
            if col not in grp:
                continue
            values = pd.to_numeric(grp[col], errors="coerce").tolist()
            if n == 1:
                row[col] = None if values[0] != values[0] else values[0]
                for side in ("low", "high"):
                    v = grp[f"{col}_ci_{side}"].iloc[0] if f"{col}_ci_{side}" in grp else None
                    row[f"{col}_ci_{side}"] = None if v is None or v != v else float(v)
                continue
            value, low, high, method = over_seeds(grp, col, confidence)
            row[col] = value
            row[f"{col}_ci_low"], row[f"{col}_ci_high"] = low, high
            row[f"{col}_per_seed"] = json.dumps([None if v != v else float(v) for v in values])
            if col in metrics:
                methods[col] = method
        if n == 1:
            row["ci_method"] = grp["ci_method"].iloc[0] if "ci_method" in grp else None
        else:
            kinds = sorted(set(methods.values()))
            row["ci_method"] = f"{confidence:.0%} over {n} seeds: " + ("; ".join(kinds) or "no values")
        for col in ("missing_reasons", "ci_notes"):
            if col in grp:
                row[col] = _merge_reasons(grp[col])
        rows.append(row)
    return pd.DataFrame(rows)


def write_summary(attacks_path: str, summary_path: str, confidence: float = 0.95) -> None:
    import pandas as pd

    out = summarise(pd.read_parquet(attacks_path), confidence)
    with store.atomic_path(summary_path) as tmp:
        out.to_parquet(tmp, index=False)
