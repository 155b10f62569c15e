"""Significance-aware rankings: attacks per target model, defenses per attack, with groups of ties.

Families. For each (dataset, target, defense) the attacks are ranked; for each
(dataset, target, attack) with two or more defenses, the defenses (most
protective first). Each family is ranked by every value in the config's
``statistics.rank_by`` (default Acc@1 and KNN distance) that the runs report.

Values and intervals: a method's value is its run's value, or the mean over
its replicate seeds; the interval is the run's bootstrap interval, or the t
interval over seeds (as in ``attacks_summary.parquet``).

Tests. Two methods' reconstructions are not paired: no reconstruction of one
attack corresponds to one of another, and attacks make different numbers per
class (and defended targets are different models). They are matched only by
the class they were made for and, with replicates, by the replicate seed: each
pair gets a two-sided permutation test of the difference of class-balanced
means that permutes the method labels of the per-reconstruction values
(``per_sample.safetensors``) within each stratum, (seed, class) when both
methods have the same seeds, class otherwise
(:func:`mibench_core.stats.stratified_permutation_test`, ``statistics.permutations``
permutations). The p-values of a family and value are Holm-corrected (Holm
1979), and pairs with an adjusted p below ``statistics.alpha`` differ
significantly. The groups are a compact letter display (Piepho 2004): two
methods share a letter exactly when their difference is not significant.

The test treats reconstructions as the units: it measures the sampling noise of
reconstructions within runs; with replicates it pools the runs of each seed,
but it does not model seed-to-seed variation of training as a random effect
(the t intervals over seeds do): read groups together with the intervals.

Outputs: ``ranking.parquet`` (one row per family, value and method: rank,
value, interval, group), ``ranking_pairs.parquet`` (one row per tested pair:
difference, p, Holm-adjusted p, significant) and the Markdown and LaTeX tables.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from mibench_core import stats, store
from mibench_core.report.aggregate import column_title, declared_columns, metric_columns
from mibench_core.report.intervals import with_interval
from mibench_core.stats import load_per_sample

DEFAULTS = {"permutations": 5000, "alpha": 0.05, "confidence": 0.95, "rank_by": ["acc1", "knn_dist"]}


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


def _rng(seed: int, *key: str) -> np.random.Generator:
    h = int(hashlib.sha256("|".join(key).encode()).hexdigest()[:8], 16)
    return np.random.default_rng([seed, h])


def _method_value(runs, col: str, confidence: float) -> tuple[float | None, float | None, float | None]:
    import pandas as pd

    values = pd.to_numeric(runs[col], errors="coerce").tolist()
    if len(runs) == 1:
        v = values[0]
        if v != v:
            return None, None, None
        lo, hi = runs.get(f"{col}_ci_low"), runs.get(f"{col}_ci_high")
        lo = None if lo is None or pd.isna(lo.iloc[0]) else float(lo.iloc[0])
        hi = None if hi is None or pd.isna(hi.iloc[0]) else float(hi.iloc[0])
        return float(v), lo, hi
    mean, lo, hi = stats.t_interval(values, confidence)
    return (None if mean != mean else mean), lo, hi


def _samples(runs, col: str, loaded: dict) -> tuple[np.ndarray, list, list] | None:
    """(values, (seed, class) strata, seeds) of a method's reconstructions, or None when absent."""
    vals, strata, seeds = [], [], []
    for _, run in runs.iterrows():
        got = loaded.get(run.get("metrics_id"))
        if got is None or col not in got[1]:
            return None
        labels, values, _ = got
        seed = run.get("replicate_seed")
        seed = None if seed is None or seed != seed else int(seed)
        vals.append(values[col])
        strata += [(seed, int(c)) for c in labels]
        seeds.append(seed)
    return np.concatenate(vals), strata, seeds


def rank_family(runs, key_col: str, col: str, settings: dict, family_key: tuple, loaded: dict, seed: int):
    """Ranked rows and tested pairs of one family (``runs``: its rows; ``key_col``: the method column)."""
    better = _direction(col)
    methods = sorted(runs[key_col].unique())
    info = {}
    for m in methods:
        sub = runs[runs[key_col] == m]
        value, lo, hi = _method_value(sub, col, settings["confidence"])
        info[m] = {"value": value, "ci_low": lo, "ci_high": hi, "n_seeds": len(sub),
                   "n_recon": int(sub["n_recon"].sum()) if "n_recon" in sub else None,
                   "samples": _samples(sub, col, loaded)}  # fmt: skip
    # attacks: strongest first; defenses: most protective (least attack success) first
    strongest_first = (better == "higher") == (key_col == "attack")
    ranked = sorted((m for m in methods if info[m]["value"] is not None),
                    key=lambda m: (-info[m]["value"] if strongest_first else info[m]["value"], m))  # fmt: skip
    pairs = []
    for i, a in enumerate(ranked):
        for b in ranked[i + 1 :]:
            sa, sb = info[a]["samples"], info[b]["samples"]
            if sa is None or sb is None:
                pairs.append({"a": a, "b": b, "difference": math.nan, "p": math.nan, "strata": 0,
                              "pairing": "no per-reconstruction values"})  # fmt: skip
                continue
            same_seeds = sorted(map(str, sa[2])) == sorted(map(str, sb[2]))
            strata_a = sa[1] if same_seeds else [s[1] for s in sa[1]]
            strata_b = sb[1] if same_seeds else [s[1] for s in sb[1]]
            diff, p, k = stats.stratified_permutation_test(sa[0], strata_a, sb[0], strata_b, settings["permutations"],
                                                           _rng(seed, *map(str, family_key), col, a, b))  # fmt: skip
            pairs.append({"a": a, "b": b, "difference": diff, "p": p, "strata": k,
                          "pairing": "within (seed, class)" if same_seeds else "within class"})  # fmt: skip
    adjusted = stats.holm([p["p"] for p in pairs])
    different = set()
    for p, adj in zip(pairs, adjusted, strict=True):
        p["p_holm"] = adj
        p["significant"] = bool(adj == adj and adj < settings["alpha"])
        if p["significant"]:
            different.add(frozenset((p["a"], p["b"])))
    # pairs that could not be tested count as not significant: the letters never claim a difference untested
    letters = stats.compact_letters(ranked, different) if ranked else {}
    rows = []
    for r, m in enumerate(ranked + [m for m in methods if m not in ranked]):
        d = info[m]
        rows.append({"rank": r + 1 if m in letters else None, "method": m, "value": d["value"],
                     "ci_low": d["ci_low"], "ci_high": d["ci_high"], "group": letters.get(m, ""),
                     "n_seeds": d["n_seeds"], "n_recon": d["n_recon"],
                     "has_samples": d["samples"] is not None})  # fmt: skip
    return rows, pairs


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
            key = (family, *where.values())
            ranked, tested = rank_family(grp, key_col, col, settings, key, loaded, seed)
            base = {"family": family, **where, "metric": col, "better": _direction(col)}
            rows += [{**base, **r} for r in ranked]
            pairs += [{**base, **p} for p in tested]
    return rows, pairs, settings


def _method_text(settings: dict) -> str:
    return (
        f"Methods sharing a letter do not differ significantly at {settings['alpha']:g} (family-wise): two-sided "
        f"permutation tests ({settings['permutations']} permutations) of the difference of class-balanced means of "
        "per-reconstruction values, labels permuted within (replicate seed, class) strata (within class where two "
        "methods have different seeds), Holm-corrected per table. "
        "Values: the run's, or the mean over seeds; intervals: the run's bootstrap, or the t interval over seeds."
    )


def _esc(text) -> str:
    return str(text).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def _tables(rows: list[dict], settings: dict) -> tuple[str, str]:
    import pandas as pd

    md = ["# Rankings with significance groups", "", _method_text(settings), ""]
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
        md += [f"| rank | {who[:-1]} | {title} | group | seeds | reconstructions |", "|---|---|---|---|---|---|"]
        tex += [r"\begin{table}[t]", r"\centering",
                rf"\caption{{{_esc(where)}: {who} by {_esc(title)} ({_esc(order)}). Methods sharing a letter do not "
                rf"differ significantly (Holm-corrected permutation tests, $\alpha={settings['alpha']:g}$).}}",
                r"\begin{tabular}{rllcc}", r"\toprule",
                rf"Rank & {who[:-1].capitalize()} & {_esc(title)} & Group & Seeds \\", r"\midrule"]  # fmt: skip
        for _, r in grp.iterrows():
            t = r["n_seeds"] > 1  # the mean over seeds with its t interval
            value = with_interval(r["value"], r["ci_low"], r["ci_high"], symmetric=t)
            rank = "-" if pd.isna(r["rank"]) else str(int(r["rank"]))
            md.append(f"| {rank} | {r['method']} | {value} | {r['group'] or '-'} | {r['n_seeds']} | {r['n_recon']} |")
            tex_value = with_interval(r["value"], r["ci_low"], r["ci_high"], pm=r"$\pm$", missing="--", symmetric=t)
            tex.append(rf"{rank} & {_esc(r['method'])} & {tex_value} & {r['group'] or '--'} & {r['n_seeds']} \\")
        if not grp["has_samples"].all():
            md += ["", "Methods without per-reconstruction values were not tested (no group claims a difference)."]
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
