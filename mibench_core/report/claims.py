"""The literature's claims, checked on whatever runs a configuration holds.

``config/claims.yaml`` lists comparisons the papers make, each with its source.
:func:`evaluate` checks every claim on the run's tables (``attacks.parquet``,
``membership.parquet``, ``split_inference.parquet``: a table the config does not
produce is absent) and :func:`write_claims` writes ``claims.parquet`` and the
Markdown and LaTeX tables (claim, source, our effect with its interval, test, p,
seeds, verdict).

The replicate seed is the unit: every claim reduces the runs of one seed to one
number (its ``effect`` per seed), and the test is over seeds.

Kinds of claim (``kind``):

* ``compare``: ``a`` above ``b`` (``direction: greater``; ``less``: below) in
  ``metric``. ``a`` and ``b`` select rows of ``table`` (column -> value, a glob
  pattern or a list of them); rows are paired on the ``match`` columns within a
  seed, and a seed's effect is the mean over its pairs of a - b. A selection of
  several rows per pair (white-box attacks) counts as their mean.
* ``drops``: the relative drop (baseline - defended) / baseline of ``first``
  (``table``, ``metric``, ``baseline``, ``defended``, ``match``) is larger
  (``greater``) than that of ``second``; a seed's effect is the difference of the
  two drops.
* ``trend``: ``metric`` falls (``less``) or rises (``greater``) with the column
  ``x`` among the rows ``select`` picks; a seed's effect is the least-squares slope
  over the means at each ``x``.

Test: the two-sided one-sample t test of the per-seed effects (SciPy), Holm-
corrected over the claims that could be tested (statsmodels ``multipletests``).
Verdicts: ``supported`` (adjusted p below ``alpha`` with the claimed sign),
``contradicted`` (significant, opposite sign), ``not significant``, ``not testable
with this config`` (no runs for one side, or fewer seeds than ``min_seeds``:
"n seeds"). The table also gives the smallest p an exact sign-flip test reaches
with that many seeds (``2^(1-n)``): the t test assumes normal per-seed effects.
The effect's interval is the t interval of the per-seed effects (none from one
seed).
"""

from __future__ import annotations

import fnmatch
import json
import math
from pathlib import Path

import numpy as np

from mibench_core import store

KINDS = ("compare", "drops", "trend")
DIRECTIONS = ("greater", "less")
TABLES = ("attacks", "membership", "split")
DEFAULTS = {"alpha": 0.05, "confidence": 0.95, "min_seeds": 3}


class ClaimsError(ValueError):
    pass


def load_claims(path: str) -> list[dict]:
    """The claims of a claims file, checked (a clear error naming the key)."""
    import yaml

    with open(path) as fh:
        doc = yaml.safe_load(fh) or {}
    claims = doc.get("claims")
    if not isinstance(claims, list) or not claims:
        raise ClaimsError(f"{path}: key 'claims' must be a non-empty list")
    seen = set()
    for i, c in enumerate(claims):
        where = f"{path}: claims[{i}]"
        for key in ("id", "claim", "source", "kind", "direction"):
            if not isinstance(c.get(key), str) or not c[key]:
                raise ClaimsError(f"{where}: key {key!r} must be a non-empty string")
        if c["id"] in seen:
            raise ClaimsError(f"{where}: key 'id' {c['id']!r} repeats")
        seen.add(c["id"])
        if c["kind"] not in KINDS:
            raise ClaimsError(f"{where}: key 'kind' {c['kind']!r}; valid: {', '.join(KINDS)}")
        if c["direction"] not in DIRECTIONS:
            raise ClaimsError(f"{where}: key 'direction' {c['direction']!r}; valid: {', '.join(DIRECTIONS)}")
        parts = [c["first"], c["second"]] if c["kind"] == "drops" else [c]
        for part in parts:
            if part.get("table") not in TABLES:
                raise ClaimsError(f"{where}: key 'table' must be one of {', '.join(TABLES)}")
            if not isinstance(part.get("metric"), str):
                raise ClaimsError(f"{where}: key 'metric' must be a column name")
        need = {"compare": ("a", "b"), "drops": (), "trend": ("select", "x")}[c["kind"]]
        for key in need:
            if key not in c:
                raise ClaimsError(f"{where}: key {key!r} is required for a {c['kind']} claim")
    return claims


def _matches(value, pattern) -> bool:
    if isinstance(pattern, list):
        return any(_matches(value, p) for p in pattern)
    return fnmatch.fnmatchcase(str(value), str(pattern))


def _select(df, select: dict):
    mask = np.ones(len(df), dtype=bool)
    for col, pattern in (select or {}).items():
        if col not in df.columns:
            return df.iloc[0:0]
        mask &= np.array([_matches(v, pattern) for v in df[col]], dtype=bool)
    return df[mask]


def _seed(v) -> int:
    return 0 if v is None or v != v else int(v)  # no replicates: the config's seed, replicate 0


def _cells(df, metric: str, select: dict, match: list[str]) -> dict[tuple, float]:
    """(seed, *match values) -> mean of ``metric`` over the selected rows there."""
    import pandas as pd

    rows = _select(df, select)
    if metric not in rows.columns or len(rows) == 0:
        return {}
    rows = rows.assign(_seed=[_seed(v) for v in rows.get("replicate_seed", pd.Series([None] * len(rows)))])
    rows = rows.assign(_v=pd.to_numeric(rows[metric], errors="coerce")).dropna(subset=["_v"])
    out = {}
    for key, grp in rows.groupby(["_seed", *match], sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        out[key] = float(grp["_v"].mean())
    return out


def _per_seed_mean(diffs: dict[tuple, float]) -> dict[int, float]:
    by_seed: dict[int, list[float]] = {}
    for key, d in diffs.items():
        by_seed.setdefault(int(key[0]), []).append(d)
    return {s: float(np.mean(v)) for s, v in sorted(by_seed.items())}


def _compare(tables: dict, c: dict) -> tuple[dict[int, float], str | None]:
    df = tables.get(c["table"])
    if df is None:
        return {}, f"no {c['table']} table in this config"
    match = list(c.get("match", []))
    a, b = _cells(df, c["metric"], c["a"], match), _cells(df, c["metric"], c["b"], match)
    if not a or not b:
        return {}, f"no runs for {'a' if not a else 'b'} ({c['a'] if not a else c['b']})"
    common = sorted(set(a) & set(b))
    if not common:
        return {}, f"no runs of a and b with equal {', '.join(['seed', *match])}"
    return _per_seed_mean({k: a[k] - b[k] for k in common}), None


def _drop(tables: dict, part: dict) -> tuple[dict[tuple, float], str | None]:
    df = tables.get(part["table"])
    if df is None:
        return {}, f"no {part['table']} table in this config"
    match = list(part.get("match", []))
    base = _cells(df, part["metric"], {**part.get("select", {}), **part["baseline"]}, match)
    dfd = _cells(df, part["metric"], {**part.get("select", {}), **part["defended"]}, match)
    common = sorted(k for k in set(base) & set(dfd) if base[k] != 0)
    if not common:
        return {}, f"no baseline and defended runs of {part['metric']} in the {part['table']} table"
    return {k: (base[k] - dfd[k]) / abs(base[k]) for k in common}, None


def _drops(tables: dict, c: dict) -> tuple[dict[int, float], str | None]:
    first, why = _drop(tables, c["first"])
    if why:
        return {}, why
    second, why = _drop(tables, c["second"])
    if why:
        return {}, why
    f, s = _per_seed_mean(first), _per_seed_mean(second)
    seeds = sorted(set(f) & set(s))
    if not seeds:
        return {}, "no seed with runs for both drops"
    return {k: f[k] - s[k] for k in seeds}, None


def _trend(tables: dict, c: dict) -> tuple[dict[int, float], str | None]:
    df = tables.get(c["table"])
    if df is None:
        return {}, f"no {c['table']} table in this config"
    cells = _cells(df, c["metric"], c["select"], [c["x"]])
    by_seed: dict[int, list[tuple[float, float]]] = {}
    for (seed, x), v in cells.items():
        by_seed.setdefault(int(seed), []).append((float(x), v))
    slopes = {s: float(np.polyfit(*zip(*pts, strict=True), 1)[0]) for s, pts in by_seed.items() if len(pts) >= 2}
    if not slopes:
        return {}, f"fewer than two values of {c['x']} among the selected runs"
    return dict(sorted(slopes.items())), None


def evaluate(tables: dict, claims: list[dict], settings: dict | None = None) -> list[dict]:
    """One row per claim: per-seed effects, effect and interval, p, Holm-adjusted p and verdict."""
    from scipy import stats as sps

    from mibench_core.stats import exact_seed_floor, holm

    settings = {**DEFAULTS, **(settings or {})}
    rows = []
    for c in claims:
        per_seed, why = {"compare": _compare, "drops": _drops, "trend": _trend}[c["kind"]](tables, c)
        effects = np.array(list(per_seed.values()), dtype=np.float64)
        n = len(effects)
        row = {"id": c["id"], "claim": c["claim"], "source": c["source"], "kind": c["kind"],
               "direction": c["direction"], "metric": c.get("metric") or f"{c['first']['metric']} vs "
               f"{c['second']['metric']}", "per_seed": json.dumps({str(k): v for k, v in per_seed.items()}),
               "seeds": n, "effect": float(effects.mean()) if n else math.nan, "ci_low": math.nan,
               "ci_high": math.nan, "p": math.nan, "exact_floor": exact_seed_floor(n), "reason": why}  # fmt: skip
        if n >= 2:
            half = sps.t.ppf((1 + settings["confidence"]) / 2, n - 1) * effects.std(ddof=1) / math.sqrt(n)
            row["ci_low"], row["ci_high"] = row["effect"] - half, row["effect"] + half
        if why is None and n < settings["min_seeds"]:
            row["reason"] = f"not testable with {n} seed{'s' if n != 1 else ''}"
        if row["reason"] is None:
            sd = effects.std(ddof=1)
            flat = not sd > 1e-12 * max(1.0, abs(row["effect"]))  # equal effects: t is infinite or undefined
            row["p"] = (0.0 if row["effect"] else 1.0) if flat else float(sps.ttest_1samp(effects, 0.0).pvalue)
            row["test"] = f"two-sided one-sample t over {n} seeds (df {n - 1})"
        else:
            row["test"] = "none"
        rows.append(row)
    adjusted = holm([r["p"] for r in rows])
    for r, adj in zip(rows, adjusted, strict=True):
        r["p_holm"] = adj
        if r["reason"] is not None:
            r["verdict"] = "not testable with this config"
        elif adj < settings["alpha"]:
            claimed = r["effect"] > 0 if r["direction"] == "greater" else r["effect"] < 0
            r["verdict"] = "supported" if claimed else "contradicted"
        else:
            r["verdict"] = "not significant"
    return rows


def _fmt(v, digits: int = 2) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}g}"


def _effect_text(r) -> str:
    from mibench_core.report.intervals import decimals_for

    if r["effect"] != r["effect"]:
        return "-"
    d = decimals_for(r["effect"], r["ci_low"], r["ci_high"])
    if d is None:
        return f"{r['effect']:.3g}"
    return f"{r['effect']:.{d}f} [{r['ci_low']:.{d}f}, {r['ci_high']:.{d}f}]"


def tables_text(rows: list[dict], settings: dict | None = None) -> tuple[str, str]:
    settings = {**DEFAULTS, **(settings or {})}
    intro = (
        "Each claim is reduced to one effect per replicate seed (the run is the unit); p: two-sided one-sample t "
        f"test over seeds, Holm-corrected over the tested claims (alpha {settings['alpha']:g}); fewer than "
        f"{settings['min_seeds']} seeds: not testable. Effect: the mean over seeds with its "
        f"{settings['confidence']:.0%} t interval. Exact floor: the smallest p an exact sign-flip test over these "
        "seeds could reach."
    )
    md = ["# The literature's claims on this configuration's runs", "", intro, "",
          "| claim | source | effect | test | p (Holm) | seeds | exact floor | verdict |",
          "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    esc = _tex
    tex = ["% The literature's claims, generated by mibench_core.report.claims", f"% {intro}",
           r"\begin{tabular}{p{5cm}p{3cm}llrrl}", r"\toprule",
           r"Claim & Source & Effect & $p$ (Holm) & Seeds & Floor & Verdict \\", r"\midrule"]  # fmt: skip
    for r in rows:
        verdict = r["verdict"] + (f" ({r['reason']})" if r["reason"] else "")
        p = f"{_fmt(r['p'])} ({_fmt(r['p_holm'])})" if r["p"] == r["p"] else "-"
        md.append(f"| {r['claim']} | {r['source']} | {_effect_text(r)} | {r['test']} | {p} | {r['seeds']} | "
                  f"{_fmt(r['exact_floor'])} | {verdict} |")  # fmt: skip
        tex.append(f"{esc(r['claim'])} & {esc(r['source'])} & {esc(_effect_text(r))} & {esc(p)} & {r['seeds']} & "
                   rf"{_fmt(r['exact_floor'])} & {esc(verdict)} \\")  # fmt: skip
    tex += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(md) + "\n", "\n".join(tex)


def _tex(text) -> str:
    return str(text).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def write_claims(claims_file: str, attacks: str | None, membership: str | None, split: str | None, table_out: str,
                 md_out: str, tex_out: str, settings: dict | None = None) -> None:  # fmt: skip
    """Evaluate the claims file on the tables that exist (paths, or None) and write the tables."""
    import pandas as pd

    tables = {name: pd.read_parquet(p) for name, p in (("attacks", attacks), ("membership", membership),
                                                        ("split", split)) if p and Path(p).exists()}  # fmt: skip
    settings = {k: v for k, v in (settings or {}).items() if k in DEFAULTS}
    rows = evaluate(tables, load_claims(claims_file), settings)
    with store.atomic_path(table_out) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
    md, tex = tables_text(rows, settings)
    store.write_bytes(md_out, md.encode())
    store.write_bytes(tex_out, tex.encode())
