"""The MIBench paper's tables, in Markdown and LaTeX, from the summary table (and the ranking's groups).

* :func:`attack_tables`: one table per target model (dataset, target, defense):
  one row per attack, strongest first, with Acc@1 / Acc@5 (in %), KNN
  distance, FID and feature distance, each ``mean ± half-width`` (t interval
  over seeds) or ``value [low, high]`` (one run's bootstrap interval), and the
  Acc@1 significance group (:mod:`mibench_core.report.ranking`).
* :func:`defense_tables`: one table per (dataset, target): one block per
  defense (its strength and the defended target's natural accuracy), one row
  per attack with the same metric columns.

A value that is missing is written as missing with a footnote giving the
reason (from ``missing_reasons``), and a column whose metric the config does
not compute says so in its footnote: never 0.
"""

from __future__ import annotations

import json
import math

from mibench_core import store
from mibench_core.report.intervals import decimals_for, over_seeds, symmetric, with_interval

# (column, header, percent)
COLUMNS = (
    ("acc1", "Acc@1 (%) ↑", True),
    ("acc5", "Acc@5 (%) ↑", True),
    ("knn_dist", "KNN dist. ↓", False),
    ("fid", "FID ↓", False),
    ("feat_dist", "Feat. dist. ↓", False),
)
TEX_HEADERS = {
    "acc1": r"Acc@1 (\%) $\uparrow$",
    "acc5": r"Acc@5 (\%) $\uparrow$",
    "knn_dist": r"KNN dist. $\downarrow$",
    "fid": r"FID $\downarrow$",
    "feat_dist": r"Feat. dist. $\downarrow$",
}
NOT_CONFIGURED = "not computed: its metric is not among the configured metrics"


def _esc(text) -> str:
    out = str(text).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")
    return out.replace("±", r"$\pm$")


class Footnotes:
    """Missing-value reasons of one table, each once, marked a, b, c..."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def mark(self, reason: str) -> str:
        if reason not in self.reasons:
            self.reasons.append(reason)
        i = self.reasons.index(reason)
        return "abcdefghijklmnopqrstuvwxyz"[i % 26] * (1 + i // 26)

    def markdown(self) -> list[str]:
        return [f"- ({self.mark(r)}) {r}" for r in self.reasons]

    def latex(self) -> list[str]:
        if not self.reasons:
            return []
        notes = r" \\ ".join(rf"\textsuperscript{{{self.mark(r)}}}\,{_esc(r)}" for r in self.reasons)
        return [r"\par\smallskip\footnotesize " + notes]


def _value_cells(row, columns, notes: Footnotes) -> tuple[list[str], list[str]]:
    """(Markdown cells, LaTeX cells) of one row's metric values."""
    missing = json.loads(row.get("missing_reasons") or "{}")
    md, tex = [], []
    for col, _, percent in columns:
        value = row.get(col) if col in row.index else None
        if value is None or (isinstance(value, float) and math.isnan(value)):
            reason = NOT_CONFIGURED if col not in row.index else missing.get(col, "not computed (no reason recorded)")
            mark = notes.mark(reason)
            md.append(f"missing ({mark})")
            tex.append(rf"--\textsuperscript{{{mark}}}")
            continue
        kwargs = {"scale": 100.0, "fixed": 1} if percent else {"fixed": 2}
        kwargs["symmetric"] = symmetric(row)
        low, high = row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
        if over_seeds(row):  # a half-width from a few seeds: two significant digits
            k = kwargs.get("scale", 1.0)
            d = decimals_for(*(None if v is None or v != v else float(v) * k for v in (value, low, high)))
            kwargs["fixed"] = kwargs["fixed"] if d is None else d
        md.append(with_interval(value, low, high, **kwargs))
        tex.append(with_interval(value, low, high, pm=r"$\pm$", **kwargs).replace("[", "{\\scriptsize[").replace(
            "]", "]}"))  # fmt: skip
    return md, tex


def _order(rows):
    """Strongest attack first (Acc@1, then KNN distance), rows without Acc@1 last."""
    import pandas as pd

    def numeric(col: str, fill: float):
        if col not in rows.columns:
            return pd.Series(fill, index=rows.index)
        return pd.to_numeric(rows[col], errors="coerce").fillna(fill)

    ordered = rows.assign(_acc=numeric("acc1", -1.0), _knn=numeric("knn_dist", math.inf))
    return ordered.sort_values(["_acc", "_knn", "attack"], ascending=[False, True, True])


def _interval_note(df) -> str:
    methods = sorted({str(m) for m in df["ci_method"].dropna()}) if "ci_method" in df.columns else []
    seeds = sorted({int(n) for n in df["n_seeds"].dropna()}) if "n_seeds" in df.columns else [1]
    return (
        f"Intervals: {'; '.join(methods) or 'none'}. Seeds per row: {', '.join(map(str, seeds))}. "
        "`[low, high]`: one seed, the run's interval (conditional on this run's models); several seeds, the "
        "random-effects combination of the runs (logit scale for proportions, log scale for distances); "
        "per-seed values in attacks_summary.parquet (`<value>_per_seed`)."
    )


def _groups(ranking_parquet: str | None) -> dict:
    if not ranking_parquet:
        return {}
    from mibench_core.report.ranking import groups_of

    return groups_of(ranking_parquet, "attacks", "acc1")


def attack_tables(summary_parquet: str, ranking_parquet: str | None, md_out: str, tex_out: str) -> None:
    """Per target model: attacks x (Acc@1, Acc@5, KNN distance, FID, feature distance), mean with interval."""
    import pandas as pd

    df = pd.read_parquet(summary_parquet)
    groups = _groups(ranking_parquet)
    md = ["# Attacks per target model (the MIBench paper's layout)", "", _interval_note(df),
          "Group: Acc@1 significance group from the runs over seeds (methods sharing a letter do not differ "
          "significantly; `-`: not tested, too few seeds; see `ranking.md`).", ""]  # fmt: skip
    tex = ["% Attacks per target model (MIBench layout), generated by mibench_core.report.paper",
           "% " + _interval_note(df).replace("`", "")]  # fmt: skip
    for (ds, tgt, dfn), block in df.groupby(["dataset", "target", "defense"], sort=True):
        block = _order(block)
        notes = Footnotes()
        first = block.iloc[0]
        nat_text = with_interval(first.get("target_test_acc"), first.get("target_test_acc_ci_low"),
                                 first.get("target_test_acc_ci_high"), scale=100.0, fixed=1,
                                 symmetric=symmetric(first))  # fmt: skip
        title = f"{ds} / target {tgt} / defense {dfn} (natural accuracy {nat_text} %)"
        heads = [h for _, h, _ in COLUMNS]
        md += [f"## {title}", "", "| attack | " + " | ".join(heads[:1]) + " | group | " + " | ".join(heads[1:]) + " |",
               "|---|" + "---|" * (len(heads) + 1)]  # fmt: skip
        tex += [r"\begin{table}[t]", r"\centering", rf"\caption{{{_esc(title)}.}}",
                r"\begin{tabular}{l" + "c" * (len(heads) + 1) + "}", r"\toprule",
                "Attack & " + TEX_HEADERS["acc1"] + " & Group & " + " & ".join(TEX_HEADERS[c] for c, _, _ in
                                                                              COLUMNS[1:]) + r" \\",
                r"\midrule"]  # fmt: skip
        for _, row in block.iterrows():
            md_cells, tex_cells = _value_cells(row, COLUMNS, notes)
            group = groups.get((ds, tgt, dfn, row["attack"]), "")
            md.append(f"| {row['attack']} | {md_cells[0]} | {group or '-'} | " + " | ".join(md_cells[1:]) + " |")
            tex.append(f"{_esc(row['attack'])} & {tex_cells[0]} & {group or '--'} & " + " & ".join(tex_cells[1:])
                       + r" \\")  # fmt: skip
        md += ["", *notes.markdown(), ""]
        tex += [r"\bottomrule", r"\end{tabular}", *notes.latex(), r"\end{table}", ""]
    store.write_bytes(md_out, ("\n".join(md) + "\n").encode())
    store.write_bytes(tex_out, ("\n".join(tex) + "\n").encode())


def defense_tables(summary_parquet: str, md_out: str, tex_out: str) -> None:
    """Per (dataset, target): for each defense its natural accuracy and every attack's metrics."""
    import pandas as pd

    from mibench_core.report.perspectives import defense_facts, strength

    df = pd.read_parquet(summary_parquet)
    if "target.defense.name" not in df.columns:
        df["target.defense.name"] = "none"
    md = ["# Defenses (the MIBench paper's layout)", "",
          "Per defense: the defended target's natural test accuracy and each attack's metrics on it "
          "(lower attack success = better protection).", _interval_note(df), ""]  # fmt: skip
    tex = ["% Defenses (MIBench layout), generated by mibench_core.report.paper"]
    heads = [h for _, h, _ in COLUMNS]
    for (ds, tgt), block in df.groupby(["dataset", "target"], sort=True):
        notes = Footnotes()
        md += [f"## {ds} / target {tgt}", "", "| defense | natural acc. (%) | attack | " + " | ".join(heads) + " |",
               "|---|---|---|" + "---|" * len(heads)]  # fmt: skip
        tex += [r"\begin{table}[t]", r"\centering",
                rf"\caption{{Defenses on {_esc(ds)} / {_esc(tgt)}: natural accuracy and attack metrics.}}",
                r"\begin{tabular}{llc" + "c" * len(heads) + "}", r"\toprule",
                "Defense & Nat. acc. (\\%) & Attack & " + " & ".join(TEX_HEADERS[c] for c, _, _ in COLUMNS)
                + r" \\"]  # fmt: skip
        defenses = list(dict.fromkeys(block.sort_values(["target.defense.name", "defense"])["defense"]))
        if "none" in defenses:
            defenses.insert(0, defenses.pop(defenses.index("none")))
        for dfn in defenses:
            rows = _order(block[block["defense"] == dfn])
            first = rows.iloc[0]
            st = strength(first)
            name = f"{dfn} ({first['target.defense.name']}{', ' + st if st != '-' else ''})" if dfn != "none" else dfn
            facts = defense_facts(rows)  # a DP target's guarantee, TL's frozen share, ...
            name = f"{name}; {facts}" if facts else name
            nat = with_interval(first.get("target_test_acc"), first.get("target_test_acc_ci_low"),
                                first.get("target_test_acc_ci_high"), scale=100.0, fixed=1,
                                symmetric=symmetric(first))  # fmt: skip
            tex.append(r"\midrule")
            for i, (_, row) in enumerate(rows.iterrows()):
                md_cells, tex_cells = _value_cells(row, COLUMNS, notes)
                lead = (name, nat) if i == 0 else ("", "")
                md.append(f"| {lead[0]} | {lead[1]} | {row['attack']} | " + " | ".join(md_cells) + " |")
                tex_lead = (_esc(name), nat.replace("±", r"$\pm$")) if i == 0 else ("", "")
                tex.append(f"{tex_lead[0]} & {tex_lead[1]} & {_esc(row['attack'])} & " + " & ".join(tex_cells)
                           + r" \\")  # fmt: skip
        md += ["", *notes.markdown(), ""]
        tex += [r"\bottomrule", r"\end{tabular}", *notes.latex(), r"\end{table}", ""]
    store.write_bytes(md_out, ("\n".join(md) + "\n").encode())
    store.write_bytes(tex_out, ("\n".join(tex) + "\n").encode())
