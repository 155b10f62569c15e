"""Significance-aware rankings: attacks per target model, defenses per attack, with groups of ties.

Families. For each (dataset, target, defense) the attacks are ranked; for each
(dataset, target, attack) with two or more defenses, the defenses (most
protective first). Each family is ranked by every value in the config's
``statistics.rank_by`` (default Acc@1 and KNN distance) that the runs report.

Values and intervals: a method's value is its run's value with the run's
within-run interval (conditional on that run's trained models), or, with
replicate seeds, the random-effects combination of its runs' values
(:func:`mibench_core.report.aggregate.over_seeds`, as in
``attacks_summary.parquet``), with the per-seed values beside it.

Tests. The run, not the reconstruction, is the unit: the reconstructions of
one run share its trained target, prior and attack state, so they are not
independent evidence about the method. Each run contributes one
class-balanced value (the mean over classes of its per-reconstruction class
means, ``per_sample.safetensors``), and a family's runs are analysed as a
randomized complete block design: value = method + seed, seeds as blocks,
the method x seed interaction as the error (two-way analysis of variance,
e.g. Montgomery, *Design and Analysis of Experiments*, ch. 4; statsmodels
OLS). Every pair gets the t test of its contrast on that error, and the
family's p-values are Holm-corrected (Holm 1979; statsmodels
``multipletests``); pairs with an adjusted p below ``statistics.alpha``
differ significantly. The groups are a compact letter display (Piepho
2004): two methods share a letter exactly when their difference is not
significant. Fewer seeds than ``statistics.min_seeds`` (default 3): no test,
no groups, and the table says "not testable with n seeds". Every table
states how many seeds it rests on, the error df, and the smallest p an exact
(distribution-free, sign-flip) seed-level test could reach with that many
seeds, 2^(1 - n): the parametric test's p has no such floor because it
assumes normal method x seed effects of equal variance.

Outputs: ``ranking.parquet`` (one row per family, value and method: rank,
value, interval, group), ``ranking_pairs.parquet`` (one row per tested pair:
difference, p, Holm-adjusted p, significant) and the Markdown and LaTeX tables.
"""

from __future__ import annotations

import json
from pathlib import Path

from mibench_core import stats, store
from mibench_core.report.aggregate import column_title, declared_columns, metric_columns
from mibench_core.report.intervals import cell
from mibench_core.stats import load_per_sample

DEFAULTS = {"alpha": 0.05, "confidence": 0.95, "rank_by": ["acc1", "knn_dist"], "min_seeds": 3}


def _direction(col: str) -> str | None:
    declared = declared_columns()
    spec = declared.get(col) or declared.get(col.split(".", 1)[0]) or {}
    return spec.get("better")


def _load(rows, files: dict[str, str]) -> dict[str, tuple]:
    """metrics id -> (labels, values, stats) for the rows whose per-reconstruction values exist."""
    out = {}
    for mid in rows["metrics_id"].dropna().unique():
        if mid in files and Path(files[mid]).exists():
            out[mid] = load_per_sample(Path(files[mid]).parent)
    return out


def _run_value(run, col: str, loaded: dict) -> float:
    """A run's class-balanced value: the mean over classes of its per-reconstruction class means where
    they were saved, else the table's value (the same for equal class sizes)."""
    import pandas as pd

    got = loaded.get(run.get("metrics_id"))
    if got is not None and col in got[1]:
        labels, values, _ = got
        return float(stats.resampled_statistic(values[col], labels, stat="class_mean")[0])
    v = pd.to_numeric(pd.Series([run.get(col)]), errors="coerce").iloc[0]
    return float(v)


def rank_family(runs, key_col: str, col: str, settings: dict, loaded: dict):
    """Ranked rows and tested pairs of one family (``runs``: its rows; ``key_col``: the method column)."""
    from mibench_core.report.aggregate import over_seeds

    better = _direction(col)
    methods = sorted(runs[key_col].unique())
    info, run_values = {}, []
    for m in methods:
        sub = runs[runs[key_col] == m].sort_values("replicate_seed", na_position="first")
        per_run = [_run_value(r, col, loaded) for _, r in sub.iterrows()]
        seeds = [None if s is None or s != s else int(s) for s in sub["replicate_seed"]]
        run_values += [(m, s, v) for s, v in zip(seeds, per_run, strict=True) if v == v]
        if len(sub) == 1:
            v = per_run[0]
            lo = sub.get(f"{col}_ci_low")
            hi = sub.get(f"{col}_ci_high")
            lo = None if lo is None or pd_na(lo.iloc[0]) else float(lo.iloc[0])
            hi = None if hi is None or pd_na(hi.iloc[0]) else float(hi.iloc[0])
            value = None if v != v else v
            method = "the run's within-run interval (conditional on its models)"
        else:
            value, lo, hi, method = over_seeds(sub, col, settings["confidence"])
        info[m] = {"value": value, "ci_low": lo, "ci_high": hi, "n_seeds": len(sub), "interval": method,
                   "per_seed": [None if v != v else round(v, 6) for v in per_run],
                   "n_recon": int(sub["n_recon"].sum()) if "n_recon" in sub else None}  # fmt: skip
    # attacks: strongest first; defenses: most protective (least attack success) first
    strongest_first = (better == "higher") == (key_col == "attack")
    ranked = sorted((m for m in methods if info[m]["value"] is not None),
                    key=lambda m: (-info[m]["value"] if strongest_first else info[m]["value"], m))  # fmt: skip
    tests = stats.seed_block_tests([r for r in run_values if r[0] in ranked], settings["alpha"],
                                   settings["min_seeds"])  # fmt: skip
    order = {m: i for i, m in enumerate(ranked)}
    pairs, different = [], set()
    for p in tests["pairs"]:
        if order[p["a"]] > order[p["b"]]:
            p = {**p, "a": p["b"], "b": p["a"], "difference": -p["difference"]}
        p = {**p, "test": "two-way method x seed, interaction as error" if tests["testable"] else tests["reason"],
             "df": tests["df"], "n_seeds": tests["n_seeds"]}  # fmt: skip
        pairs.append(p)
        if p["significant"]:
            different.add(frozenset((p["a"], p["b"])))
    pairs.sort(key=lambda p: (order[p["a"]], order[p["b"]]))
    # untested pairs never count as different: without a test every method shares one group
    tested = {m for p in pairs if p["p"] == p["p"] for m in (p["a"], p["b"])}
    in_test = [m for m in ranked if m in tested]
    letters = stats.compact_letters(in_test, different) if in_test and tests["testable"] else {}
    rows = []
    for r, m in enumerate(ranked + [m for m in methods if m not in ranked]):
        d = info[m]
        rows.append({"rank": r + 1 if m in order else None, "method": m, "value": d["value"],
                     "ci_low": d["ci_low"], "ci_high": d["ci_high"], "interval": d["interval"],
                     "group": letters.get(m, ""), "n_seeds": d["n_seeds"], "n_recon": d["n_recon"],
                     "per_seed": json.dumps(d["per_seed"]), "family_seeds": tests["n_seeds"],
                     "df": tests["df"], "testable": tests["testable"], "exact_floor": tests["exact_floor"],
                     "untestable_reason": tests["reason"]})  # fmt: skip
    return rows, pairs


def pd_na(v) -> bool:
    return v is None or v != v


def rankings(df, files: dict[str, str], settings: dict, seed: int = 0):
    """(ranked rows, pairs) over every family of an attacks table (see the module docstring)."""
    settings = {**DEFAULTS, **(settings or {})}
    if "replicate_seed" not in df.columns:
        df = df.assign(replicate_seed=None)
    loaded = _load(df, files)
    present = [c for c in settings["rank_by"] if c in metric_columns(df) and _direction(c)]
    rows, pairs = [], []
    families = []
    for (ds, tgt, dfn), grp in df.groupby(["dataset", "target", "defense"], sort=True):
        families.append(("attacks", {"dataset": ds, "target": tgt, "defense": dfn}, grp, "attack"))
    for (ds, tgt, atk), grp in df.groupby(["dataset", "target", "attack"], sort=True):
        if grp["defense"].nunique() >= 2:
            families.append(("defenses", {"dataset": ds, "target": tgt, "attack": atk}, grp, "defense"))
    for family, where, grp, key_col in families:
        if grp[key_col].nunique() < 2:
            continue
        for col in present:
            ranked, tested = rank_family(grp, key_col, col, settings, loaded)
            base = {"family": family, **where, "metric": col, "better": _direction(col)}
            rows += [{**base, **r} for r in ranked]
            pairs += [{**base, **p} for p in tested]
    return rows, pairs, settings


def _method_text(settings: dict) -> str:
    return (
        f"Methods sharing a letter do not differ significantly at {settings['alpha']:g} (family-wise): the run is "
        "the unit; each run's class-balanced value enters a two-way method x seed analysis with seeds as blocks and "
        "the method x seed interaction as error, each pair a t test of its contrast, Holm-corrected per table; "
        f"fewer than {settings['min_seeds']} seeds: not testable. Values: the run's, with its within-run interval "
        "(conditional on this run's models), or the random-effects combination over seeds (logit scale for "
        "proportions, log scale for distances), per-seed values beside."
    )


def _design_line(r) -> str:
    seeds = int(r["family_seeds"])
    floor = f"an exact seed-level test could reach p = {r['exact_floor']:.2g} at best"
    if not r["testable"]:
        return f"Rests on {seeds} seed{'s' if seeds != 1 else ''}: {r['untestable_reason']} ({floor}); no groups."
    return (f"Rests on {seeds} seeds (error df {int(r['df'])}); {floor}, the two-way test's p assumes normal "
            "method x seed effects of equal variance.")  # fmt: skip


def _esc(text) -> str:
    return str(text).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def _tables(rows: list[dict], settings: dict) -> tuple[str, str]:
    import pandas as pd

    md = [
        "# Rankings with significance groups",
        "",
        _method_text(settings),
        "",
        "Within-run intervals are conditional on this run's models.",
        "",
    ]
    tex = ["% Rankings with significance groups, generated by mibench_core.report.ranking",
           f"% {_method_text(settings)}"]  # fmt: skip
    if not rows:
        md.append("No family with two or more methods and a ranked value in this configuration.")
        return "\n".join(md) + "\n", "\n".join(tex) + "\n"
    df = pd.DataFrame(rows)
    keys = ["family", "dataset", "target", "defense", "attack", "metric"]
    keys = [k for k in keys if k in df.columns]
    for key, grp in df.groupby(keys, sort=False, dropna=False):
        k = dict(zip(keys, key, strict=True))
        title, hint = column_title(k["metric"])
        who = "attacks" if k["family"] == "attacks" else "defenses"
        where = f"{k['dataset']} / {k['target']} / " + (
            f"defense {k['defense']}" if who == "attacks" else f"attack {k['attack']}"
        )
        order = "strongest attack first" if who == "attacks" else "most protective defense first"
        md += [f"## {where}: {who} by {title}", "", f"{order}; {hint}.", ""]
        design = _design_line(grp.iloc[0])
        md += [design, ""]
        md += [f"| rank | {who[:-1]} | {title} | per seed | group | seeds | reconstructions |",
               "|---|---|---|---|---|---|---|"]  # fmt: skip
        tex += [r"\begin{table}[t]", r"\centering",
                rf"\caption{{{_esc(where)}: {who} by {_esc(title)} ({_esc(order)}). {_esc(design)} Methods sharing "
                rf"a letter do not differ significantly (Holm-corrected, $\alpha={settings['alpha']:g}$).}}",
                r"\begin{tabular}{rllcc}", r"\toprule",
                rf"Rank & {who[:-1].capitalize()} & {_esc(title)} & Group & Seeds \\", r"\midrule"]  # fmt: skip
        for _, r in grp.iterrows():
            row = {"v": r["value"], "v_ci_low": r["ci_low"], "v_ci_high": r["ci_high"],
                   "ci_method": r["interval"] if r["n_seeds"] > 1 else ""}  # fmt: skip
            value = cell(row, "v")
            per_seed = ", ".join("-" if v is None else f"{v:.3g}" for v in json.loads(r["per_seed"]))
            rank = "-" if pd.isna(r["rank"]) else str(int(r["rank"]))
            md.append(f"| {rank} | {r['method']} | {value} | {per_seed} | {r['group'] or '-'} | {r['n_seeds']} | "
                      f"{r['n_recon']} |")  # fmt: skip
            tex_value = cell(row, "v", missing="--")
            tex.append(rf"{rank} & {_esc(r['method'])} & {tex_value} & {r['group'] or '--'} & {r['n_seeds']} \\")
        md.append("")
        tex += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(md) + "\n", "\n".join(tex) + "\n"


def rank_methods(attacks_parquet: str, per_sample_files: list[str], table_out: str, pairs_out: str, md_out: str,
                 tex_out: str, settings: dict | None = None, seed: int = 0) -> None:  # fmt: skip
    """The ranking tables of an attacks table (``per_sample_files``: the runs' ``per_sample.safetensors``)."""
    import pandas as pd

    df = pd.read_parquet(attacks_parquet)
    files = {Path(f).parent.name: str(f) for f in per_sample_files}
    rows, pairs, settings = rankings(df, files, settings or {}, seed)
    for path, data in ((table_out, rows), (pairs_out, pairs)):
        with store.atomic_path(path) as tmp:
            pd.DataFrame(data).to_parquet(tmp, index=False)
    md, tex = _tables(rows, settings)
    store.write_bytes(md_out, md.encode())
    store.write_bytes(tex_out, tex.encode())


def groups_of(ranking_parquet: str, family: str = "attacks", metric: str = "acc1") -> dict[tuple, str]:
    """(dataset, target, defense-or-attack, method) -> letters, for tables that show the groups."""
    import pandas as pd

    df = pd.read_parquet(ranking_parquet)
    if len(df) == 0:
        return {}
    df = df[(df["family"] == family) & (df["metric"] == metric)]
    other = "defense" if family == "attacks" else "attack"
    return {(r["dataset"], r["target"], r[other], r["method"]): r["group"] for _, r in df.iterrows()}
