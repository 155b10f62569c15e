"""The evaluation perspectives of the MIBench paper, from ``attacks.parquet`` only.

Each perspective is one figure and one Markdown table:

* **privacy-utility**: attack Acc@1 and KNN distance against the (defended)
  target's natural test accuracy, one point per defense strength, one panel
  per attack; only datasets that have a defended target. The undefended
  targets of the same dataset (different training budgets) are drawn as the
  undefended utility curve on the same axes, and the table compares each
  defended target with the undefended model of equal accuracy (the curve
  linearly interpolated at the defended target's accuracy; missing, with
  the reason, outside the curve's accuracy range: no extrapolation). One
  line per defense variant: the defense and its non-numeric strength
  parameters (BiDO's ``estimator``, MID's ``inference``, DP-SGD's
  ``private``), so BiDO-HSIC and BiDO-COCO are separate lines.
* **predictive power**: undefended targets of different accuracy (different
  training budgets: several ``targets`` entries) against attack success.
* **resolution**: the undefended protocol at each configured resolution
  (several ``datasets`` entries differing in ``resolution``).
* **adversarial robustness**: PGD adversarially trained targets beside the
  standard target of the same dataset and architecture.

plus the paper-style matrix (attacks x defenses: natural accuracy in the
first row, Acc@1 in the cells) in Markdown and LaTeX.

Every drawn value carries its interval where the table has one (error bars
from ``<m>_ci_low`` / ``<m>_ci_high``; the workflow passes the summary table:
random-effects combinations over seeds, or one run's interval), and the
tables write it beside the value.

White-box and black-box rows without output processing are used
(``output_defense == "none"``); output-processed black-box rows appear as
their own attack rows in the matrix. A perspective whose data the config
does not contain (one resolution only, no AT target...) still produces its
figure and table, saying what is missing and how to configure it: the
report never fails because a config studies less.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mibench_core import registry, store  # noqa: E402
from mibench_core.report import PERSPECTIVES as PERSPECTIVE_NAMES  # noqa: E402
from mibench_core.report.intervals import (  # noqa: E402
    cell,
    error_bars,
    has_intervals,
    interval_of,
    symmetric,
    with_interval,
)

METRICS = (("acc1", "attack Acc@1 (higher = more leakage)"), ("knn_dist", "KNN distance (lower = more leakage)"))


# --- table helpers -----------------------------------------------------------------


def _fmt(v) -> str:
    if v is None:
        return "missing"
    if isinstance(v, float):
        return "missing" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def markdown(df, cols: list[str], title: str, note: str = "") -> str:
    lines = [f"# {title}", ""]
    if note:
        lines += [note, ""]
    if df is None or len(df) == 0:
        return "\n".join(lines) + "\n"
    cols = [c for c in cols if c in df.columns]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    with_ci = {c for c in cols if has_intervals(df, c)}
    for _, row in df.iterrows():
        # defense facts (epsilon, robust accuracy) do not apply to other defenses: n/a, not missing
        cells = ["n/a" if c.startswith("target_defense.") and _fmt(row[c]) == "missing" else _fmt(row[c]) for c in cols]
        cells = [cell(row, c) if c in with_ci else text for c, text in zip(cols, cells, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    if with_ci:
        methods = sorted({str(m) for m in df["ci_method"].dropna()}) if "ci_method" in df.columns else []
        lines += ["", "Intervals: " + ("; ".join(methods) or "as in the attacks table") + "."]
    return "\n".join(lines) + "\n"


def _write_text(path: str | Path, text: str) -> None:
    store.write_bytes(path, text.encode())


def _savefig(fig, path: str | Path) -> None:
    with store.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def absent_figure(path: str | Path, title: str, reason: str) -> None:
    """A figure that says the perspective is not in this configuration, and why."""
    fig, ax = plt.subplots(figsize=(6, 2.2))
    ax.axis("off")
    ax.text(0.5, 0.62, title, ha="center", va="center", fontsize=12, weight="bold")
    ax.text(0.5, 0.3, f"not in this configuration:\n{reason}", ha="center", va="center", fontsize=9, wrap=True)
    _savefig(fig, path)


# --- data preparation --------------------------------------------------------------------


def load(attacks_parquet: str):
    """The attack table with the columns every perspective relies on (defaults for older tables)."""
    import pandas as pd

    df = pd.read_parquet(attacks_parquet)
    if "output_defense" not in df.columns:
        df["output_defense"] = "none"
    df["output_defense"] = df["output_defense"].fillna("none")
    if "target.defense.name" not in df.columns:
        df["target.defense.name"] = "none"
    for col in ("acc1", "knn_dist", "target_test_acc"):
        if col not in df.columns:
            df[col] = float("nan")
    df["strength"] = [strength(row) for _, row in df.iterrows()]
    return df


def strength(row) -> str:
    """The row's defense strength, ``beta=0.003``: the parameters its registry entry names (``strength``)."""
    entry = registry.REGISTRIES["defense"].get(row.get("target.defense.name", "none"))
    parts = []
    for key in entry.strength if entry is not None else ():
        v = row.get(f"target.defense.params.{key}")
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            parts.append(f"{key}={_fmt(v)}")
    return ", ".join(parts) if parts else "-"


def _plain(df):
    """Rows without output processing (white-box rows, unprocessed black-box rows)."""
    return df[df["output_defense"] == "none"]


def _undefended(df):
    return df[(df["output_defense"] == "none") & (df["target.defense.name"] == "none")]


# defense facts from the target's manifest that the tables carry (where any row has them)
DEFENSE_FACTS = (
    "target_defense.guarantee",  # DP-SGD: (epsilon, delta), accountant, sampling rate, steps
    "target_defense.frozen_param_fraction",  # TL: the achieved frozen share of the parameters
    "target_defense.selected_smoothing",  # negative LS: the smoothing factor of the deployed checkpoint
    "target_defense.robust_test_acc",  # AT: under the evaluation attack named in robust_eval_attack
    "target_defense.robust_eval_attack",
)


def _defense_extra_cols(df) -> list[str]:
    return [c for c in DEFENSE_FACTS if c in df.columns and df[c].notna().any()]


def variant(row) -> str:
    """The line a defended row belongs to: the defense name and its non-numeric strength parameters."""
    name = row.get("target.defense.name", "none")
    entry = registry.REGISTRIES["defense"].get(name)
    parts = []
    for key in entry.strength if entry is not None else ():
        v = row.get(f"target.defense.params.{key}")
        if isinstance(v, str) or type(v).__name__ in ("bool", "bool_"):  # numpy booleans too
            parts.append(f"{key}={v if isinstance(v, str) else bool(v)}")
    return f"{name} ({', '.join(parts)})" if parts else name


def interpolate(xs: list[float], ys: list[float], x: float) -> float | None:
    """The piecewise-linear curve through (xs, ys) at ``x``; None outside [min xs, max xs]."""
    pts = sorted(zip(xs, ys, strict=True))
    if not pts or x < pts[0][0] or x > pts[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[0][1]  # a single point, hit exactly


def matched_utility(sub, undefended) -> None:
    """Add, per defended row, the undefended curve's value at its accuracy and the difference (in place)."""
    for metric, _ in METRICS:
        at, diff, why = [], [], []
        for _, row in sub.iterrows():
            curve = undefended[(undefended["dataset"] == row["dataset"]) & (undefended["attack"] == row["attack"])]
            curve = curve[curve[metric].notna() & curve["target_test_acc"].notna()]
            value = None
            if row["target.defense.name"] != "none" and len(curve) >= 2:
                value = interpolate(list(curve["target_test_acc"]), list(curve[metric]), row["target_test_acc"])
            at.append(float("nan") if value is None else value)
            diff.append(float("nan") if value is None or row[metric] != row[metric] else row[metric] - value)
            if row["target.defense.name"] == "none":
                why.append("undefended")
            elif len(curve) < 2:
                why.append("fewer than 2 undefended targets")
            elif value is None:
                lo, hi = curve["target_test_acc"].min(), curve["target_test_acc"].max()
                why.append(f"accuracy outside the undefended curve [{lo:.3g}, {hi:.3g}]")
            else:
                why.append("")
        sub[f"undefended_{metric}_at_equal_acc"] = at
        sub[f"{metric}_minus_undefended"] = diff
        sub[f"matched_{metric}_note"] = why


def _error_bars(ax, rows, xcol: str, ycol: str, color) -> None:
    """The rows' intervals on both axes (where the table has them), in the series' colour."""
    if not (has_intervals(rows, ycol) or has_intervals(rows, xcol)):
        return
    ax.errorbar(rows[xcol], rows[ycol], yerr=error_bars(rows, ycol), xerr=error_bars(rows, xcol), fmt="none",
                ecolor=color, elinewidth=0.8, capsize=2, alpha=0.8)  # fmt: skip


def _bars(ax, xs: list[float], picked: list, metric: str, width: float, label: str) -> None:
    """One bar per picked row (one-row frames), with its interval as an error bar."""
    import pandas as pd

    rows = pd.concat(picked) if picked else None
    ys = [float(r[metric].iloc[0]) for r in picked]
    err = error_bars(rows, metric) if rows is not None and has_intervals(rows, metric) else None
    ax.bar(xs, ys, width=width, label=label, yerr=err, capsize=2, error_kw={"elinewidth": 0.8})


# --- privacy-utility ----------------------------------------------------------------------------


def privacy_utility(attacks_parquet: str, figure: str, table: str) -> None:
    df = _plain(load(attacks_parquet))
    defended = df[df["target.defense.name"] != "none"]
    pairs = defended[["dataset", "target"]].drop_duplicates()
    title = "Privacy-utility: attack success against natural accuracy"
    if len(pairs) == 0:
        reason = "no defended target; add entries to `defenses` (e.g. mid, bido, negative-ls, tl)"
        absent_figure(figure, title, reason)
        _write_text(table, markdown(None, [], title, f"Not in this configuration: {reason}."))
        return
    keys = set(map(tuple, pairs.values))
    datasets = set(pairs["dataset"])
    sub = df[[(d, t) in keys for d, t in zip(df["dataset"], df["target"], strict=True)]].copy()
    undefended = df[(df["target.defense.name"] == "none") & df["dataset"].isin(datasets)]
    sub["variant"] = [variant(r) for _, r in sub.iterrows()]
    sub = sub.sort_values(["dataset", "target", "attack", "variant", "target_test_acc"])
    attacks = sorted(sub["attack"].unique())
    fig, axes = plt.subplots(len(METRICS), len(attacks), figsize=(5 * len(attacks), 4 * len(METRICS)), squeeze=False)
    names = sorted(sub["variant"].unique())
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(n for n in names if n != "none")}
    colors["none"] = "black"
    markers = {k: m for k, m in zip(sorted(keys), "osD^vP*X", strict=False)}
    for j, atk in enumerate(attacks):
        for i, (metric, label) in enumerate(METRICS):
            ax = axes[i, j]
            for ds, curve in undefended[undefended["attack"] == atk].groupby("dataset"):
                curve = curve[curve[metric].notna()].sort_values("target_test_acc")
                series = (
                    f"undefended, by training budget ({ds})" if len(datasets) > 1 else "undefended, by training budget"
                )
                ax.plot(curve["target_test_acc"], curve[metric], color="black", linestyle="--", marker="o",
                        markerfacecolor="white", label=series, zorder=3)  # fmt: skip
                _error_bars(ax, curve, "target_test_acc", metric, "black")
                for _, row in curve.iterrows():
                    ax.annotate(row["target"], (row["target_test_acc"], row[metric]), fontsize=7,
                                xytext=(3, -9), textcoords="offset points")  # fmt: skip
            a = sub[(sub["attack"] == atk) & (sub["target.defense.name"] != "none")]
            for (ds, tgt, name), grp in a.groupby(["dataset", "target", "variant"]):
                grp = grp.sort_values("target_test_acc")
                ok = grp[grp[metric].notna()]
                series = f"{name} ({ds}/{tgt})" if len(keys) > 1 else name
                ax.plot(ok["target_test_acc"], ok[metric], marker=markers.get((ds, tgt), "o"), color=colors[name],
                        label=series, linestyle="-")  # fmt: skip
                _error_bars(ax, ok, "target_test_acc", metric, colors[name])
                for _, row in ok.iterrows():
                    ax.annotate(row["defense"], (row["target_test_acc"], row[metric]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")  # fmt: skip
            ax.set_xlabel("target natural test accuracy (utility)")
            ax.set_ylabel(label)
            ax.set_title(atk, fontsize=10)
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    fig.legend(uniq.values(), uniq.keys(), loc="lower center", ncol=min(5, len(uniq)), fontsize=8,
               bbox_to_anchor=(0.5, -0.02))  # fmt: skip
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    _savefig(fig, figure)
    import pandas as pd

    # the table lists the undefended curve's own points too (the weaker targets are not in ``sub``)
    curve_rows = undefended[~undefended.index.isin(sub.index)].assign(variant="none")
    sub = pd.concat([sub, curve_rows]).sort_values(["dataset", "attack", "variant", "target_test_acc"])
    matched_utility(sub, undefended)
    cols = ["dataset", "target", "attack", "defense", "variant", "strength", "target_test_acc",
            *_defense_extra_cols(sub), "acc1", "undefended_acc1_at_equal_acc", "acc1_minus_undefended",
            "matched_acc1_note", "knn_dist", "undefended_knn_dist_at_equal_acc", "knn_dist_minus_undefended",
            "matched_knn_dist_note"]  # fmt: skip
    note = (
        "One row per (attack, defended target). Utility: the target's natural test accuracy. "
        "`undefended_<m>_at_equal_acc`: the undefended targets of the same dataset (different training budgets) "
        "linearly interpolated at this target's accuracy; `<m>_minus_undefended`: this target's value minus it "
        "(Acc@1: negative = less leakage than an undefended model of equal accuracy; KNN distance: positive). "
        "Missing outside the undefended curve's accuracy range (no extrapolation), with the reason. The "
        "differences carry no interval: read them beside the intervals of the values they come from."
    )
    _write_text(table, markdown(sub, cols, title, note))


# --- predictive power ------------------------------------------------------------------------


def predictive_power(attacks_parquet: str, figure: str, table: str) -> None:
    df = _undefended(load(attacks_parquet))
    title = "Predictive power: attack success against target accuracy (undefended targets)"
    counts = df.groupby(["dataset", "attack"])["target"].nunique()
    keep = counts[counts >= 2].index
    if len(keep) == 0:
        reason = (
            "needs >= 2 undefended targets of different accuracy on one dataset; "
            "add `targets` entries with fewer epochs or a smaller learning rate"
        )
        absent_figure(figure, title, reason)
        _write_text(table, markdown(None, [], title, f"Not in this configuration: {reason}."))
        return
    sub = df[[(d, a) in set(keep) for d, a in zip(df["dataset"], df["attack"], strict=True)]]
    sub = sub.sort_values(["dataset", "attack", "target_test_acc"])
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5.5 * len(METRICS), 4), squeeze=False)
    for i, (metric, label) in enumerate(METRICS):
        ax = axes[0, i]
        for (ds, atk), grp in sub.groupby(["dataset", "attack"]):
            ok = grp[grp[metric].notna()]
            (line,) = ax.plot(ok["target_test_acc"], ok[metric], marker="o", label=f"{atk} ({ds})")
            _error_bars(ax, ok, "target_test_acc", metric, line.get_color())
            for _, row in ok.iterrows():
                ax.annotate(row["target"], (row["target_test_acc"], row[metric]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
        ax.set_xlabel("target natural test accuracy")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _savefig(fig, figure)
    cols = ["dataset", "target", "target.arch", "target.train.epochs", "target.train.lr",
            "dataset.max_private_per_class", "target_test_acc", "attack", "acc1", "knn_dist"]  # fmt: skip
    _write_text(table, markdown(sub, cols, title, "Targets differ only in their training budget."))


# --- resolution --------------------------------------------------------------------------------


def resolution(attacks_parquet: str, figure: str, table: str) -> None:
    df = _undefended(load(attacks_parquet))
    title = "Resolution: the same protocol at several image sizes (undefended targets)"
    if "dataset.resolution" not in df.columns:
        df = df.assign(**{"dataset.resolution": float("nan")})
    counts = df.groupby(["dataset.name", "target", "attack"])["dataset.resolution"].nunique()
    keep = set(counts[counts >= 2].index)
    if not keep:
        reason = "needs the same dataset at >= 2 resolutions; add a second `datasets` entry with another `resolution`"
        absent_figure(figure, title, reason)
        _write_text(table, markdown(None, [], title, f"Not in this configuration: {reason}."))
        return
    sub = df[[k in keep for k in zip(df["dataset.name"], df["target"], df["attack"], strict=True)]]
    sub = sub.sort_values(["attack", "target", "dataset.resolution"])
    metrics = [*METRICS, ("target_test_acc", "target natural test accuracy")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 4), squeeze=False)
    groups = list(sub.groupby(["attack", "target"]))
    resolutions = sorted(sub["dataset.resolution"].unique())
    width = 0.8 / max(1, len(resolutions))
    for i, (metric, label) in enumerate(metrics):
        ax = axes[0, i]
        for r_i, res in enumerate(resolutions):
            xs, picked = [], []
            for g_i, (_, grp) in enumerate(groups):
                at = grp[(grp["dataset.resolution"] == res) & grp[metric].notna()]
                if len(at):
                    xs.append(g_i + r_i * width)
                    picked.append(at.iloc[[0]])
            _bars(ax, xs, picked, metric, width, f"{int(res)} px")
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))])
        ax.set_xticklabels([f"{a}\n{t}" for (a, t), _ in groups], fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _savefig(fig, figure)
    cols = ["dataset.name", "dataset.resolution", "dataset", "target", "attack", "target_test_acc",
            "evaluation_test_acc", "acc1", "knn_dist"]  # fmt: skip
    note = "KNN distances are in each resolution's own evaluation-model space: compare within a resolution."
    _write_text(table, markdown(sub, cols, title, note))


# --- adversarial robustness ----------------------------------------------------------------------


def robustness(attacks_parquet: str, figure: str, table: str) -> None:
    df = _plain(load(attacks_parquet))
    title = "Adversarial robustness: adversarially trained vs standard targets"
    at = df[df["target.defense.name"] == "adv-training"]
    pairs = set(map(tuple, at[["dataset", "target"]].drop_duplicates().values))
    sub = df[
        [(d, t) in pairs and n in ("none", "adv-training")
         for d, t, n in zip(df["dataset"], df["target"], df["target.defense.name"], strict=True)]
    ]  # fmt: skip
    if len(at) == 0 or (sub["target.defense.name"] == "none").sum() == 0:
        reason = "needs an `adv-training` defense and the undefended (`none`) target of the same dataset and target"
        absent_figure(figure, title, reason)
        _write_text(table, markdown(None, [], title, f"Not in this configuration: {reason}."))
        return
    sub = sub.sort_values(["attack", "target.defense.name", "defense"])
    metrics = [*METRICS, ("target_test_acc", "target natural test accuracy")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 4), squeeze=False)
    attacks = sorted(sub["attack"].unique())
    variants = list(dict.fromkeys(sub["defense"]))
    width = 0.8 / len(variants)
    for i, (metric, label) in enumerate(metrics):
        ax = axes[0, i]
        for v_i, var in enumerate(variants):
            rows = sub[sub["defense"] == var]
            xs = [a_i + v_i * width for a_i, a in enumerate(attacks) if (rows["attack"] == a).any()]
            picked = [rows[rows["attack"] == a].iloc[[0]] for a in attacks if (rows["attack"] == a).any()]
            _bars(ax, xs, picked, metric, width, var)
        ax.set_xticks([a + 0.4 - width / 2 for a in range(len(attacks))])
        ax.set_xticklabels(attacks, fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _savefig(fig, figure)
    cols = ["dataset", "target", "defense", "strength", "target_test_acc", "target_defense.robust_test_acc", "attack",
            "acc1", "knn_dist"]  # fmt: skip
    _write_text(table, markdown(sub, cols, title, "Robust accuracy: PGD with the training attack's settings."))


# --- paper-style matrix --------------------------------------------------------------------------


def _matrix_blocks(df):
    """One block per (dataset, target): defense labels (columns), natural accuracy, training time, Acc@1 per attack.

    Acc@1 cells are the rows themselves (value and interval columns); ``-`` where missing."""
    blocks = []
    for (ds, tgt), grp in df.groupby(["dataset", "target"], sort=True):
        defenses = list(dict.fromkeys(grp.sort_values(["target.defense.name", "defense"])["defense"]))
        if "none" in defenses:
            defenses.remove("none")
            defenses.insert(0, "none")
        nat = {d: grp[grp["defense"] == d]["target_test_acc"].iloc[0] for d in defenses}
        wall = {}
        if "target_wall_s" in grp.columns:
            wall = {d: grp[grp["defense"] == d]["target_wall_s"].iloc[0] for d in defenses}
        attacks = sorted(grp["attack"].unique())
        cells = {}
        for _, row in grp.iterrows():
            cells[(row["attack"], row["defense"])] = row
        blocks.append((ds, tgt, defenses, nat, wall, attacks, cells))
    return blocks


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:.1f}"


def _acc_cell(row) -> str:
    """Acc@1 in % with the row's interval (``± h`` for a symmetric t interval, else ``[low, high]``)."""
    if row is None:
        return "-"
    low, high = interval_of(row, "acc1")
    return with_interval(row["acc1"], low, high, scale=100, fixed=1, missing="-", symmetric=symmetric(row))


def _seconds(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.0f}"


def defense_facts(grp) -> str:
    """The defense facts of one defense's rows (the guarantee of a DP target, TL's frozen share, ...)."""
    row = grp.iloc[0]
    parts = []
    for col in DEFENSE_FACTS:
        v = row.get(col)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        parts.append(f"{col.split('.', 1)[1]} {_fmt(v)}")
    return "; ".join(parts)


def defense_matrix(attacks_parquet: str, md_out: str, tex_out: str) -> None:
    """Attacks x defenses: natural accuracy and training time (first rows) and Acc@1 (%) of every attack."""
    df = load(attacks_parquet)
    md = ["# Attacks x defenses", "",
          "Natural accuracy of each (defended) target, its measured training wall time, and the attack's Acc@1 on "
          "it, in %, with its interval where the table has one (`[low, high]`: over seeds, a random-effects "
          "combination of the runs; for one run, conditional on its models, over its reconstructions). "
          "`-`: the run is missing or the metric could not be "
          "computed.", ""]  # fmt: skip
    tex = ["% Attacks x defenses: natural accuracy and Acc@1 (%), generated by mibench_core.report.perspectives"]
    for ds, tgt, defenses, nat, wall, attacks, cells in _matrix_blocks(df):
        md += [f"## {ds} / {tgt}", "", "| | " + " | ".join(defenses) + " |", "|---|" + "---|" * len(defenses)]
        md.append("| natural acc. | " + " | ".join(_cell(nat[d]) for d in defenses) + " |")
        if wall:
            md.append("| training time (s, measured) | " + " | ".join(_seconds(wall[d]) for d in defenses) + " |")
        for atk in attacks:
            md.append(f"| {atk} Acc@1 | " + " | ".join(_acc_cell(cells.get((atk, d))) for d in defenses) + " |")
        md.append("")

        def esc(s: str) -> str:
            return str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

        def acc(a, d, cells=cells):
            row = cells.get((a, d))
            return _cell(None if row is None else row["acc1"])

        tex += [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{Attacks vs defenses on {esc(ds)} / {esc(tgt)}: natural accuracy and attack Acc@1 (\%).}}",
            r"\begin{tabular}{l" + "c" * len(defenses) + "}",
            r"\toprule",
            " & " + " & ".join(esc(d) for d in defenses) + r" \\",
            r"\midrule",
            "Natural acc. & " + " & ".join(_cell(nat[d]) for d in defenses) + r" \\",
            r"\midrule",
            *[esc(a) + " & " + " & ".join(acc(a, d) for d in defenses) + r" \\" for a in attacks],
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    strengths = df[["defense", "target.defense.name", "strength"]].drop_duplicates().sort_values("defense")
    md += ["Defense strengths (and the facts each defended target's manifest records):", ""]
    for _, r in strengths.iterrows():
        facts = defense_facts(df[df["defense"] == r["defense"]])
        md.append(f"- `{r['defense']}`: {r['target.defense.name']} ({r['strength']})" + (f"; {facts}" if facts else ""))
    _write_text(md_out, "\n".join(md) + "\n")
    _write_text(tex_out, "\n".join(tex) + "\n")


# name (mibench_core.report.PERSPECTIVES, the workflow's wildcard values) -> function of that name
PERSPECTIVES = {name: globals()[name] for name in PERSPECTIVE_NAMES}


def summary(attacks_parquet: str) -> dict:
    """JSON-able overview (for notes): per perspective, whether its data is present."""
    df = load(attacks_parquet)
    return {
        "defended_rows": int((df["target.defense.name"] != "none").sum()),
        "targets": sorted(df["target"].unique().tolist()),
        "resolutions": sorted({int(r) for r in df.get("dataset.resolution", []) if r == r}),
        "defenses": json.loads(df[["defense"]].drop_duplicates().to_json(orient="values")),
    }
