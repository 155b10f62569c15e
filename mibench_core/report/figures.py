"""Figures a person looks at: reconstruction grids, prior samples, comparison charts.

Made from the Parquet tables and the artifacts only (never recomputed). The
charts draw each value's interval (``<m>_ci_low`` / ``<m>_ci_high``) as an
error bar where the table has one: the workflow hands them the summary table
(one row per setting: the random-effects combination over seeds, or one run's
interval, conditional on its models).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mibench_core import store  # noqa: E402
from mibench_core.data.common import to_model_range  # noqa: E402


def _savefig(fig, path: str | Path) -> None:
    with store.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _show(ax, img: torch.Tensor) -> None:
    img = img.add(1).div(2).clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


# At most this many class rows in a reconstruction grid: one row per class of a 1,000-identity
# run would be over 100,000 px tall, more than matplotlib renders.
MAX_GRID_CLASSES = 20


def shown_classes(classes: list[int], max_classes: int = MAX_GRID_CLASSES) -> list[int]:
    """At most ``max_classes`` of the sorted ``classes``, evenly spread (first and last included)."""
    if len(classes) <= max_classes:
        return list(classes)
    if max_classes == 1:
        return [classes[0]]
    step = (len(classes) - 1) / (max_classes - 1)
    return [classes[round(i * step)] for i in range(max_classes)]


def reconstruction_grid(
    attack_dir: str, data_dir: str, out: str, label: str | None = None, n_private: int = 4, max_recon: int = 8
) -> None:
    """Per class row: private training samples | reconstructions (eval-model independent).

    ``label``: the run's label in the config (default: the one the attack was first built under)."""
    store.check(attack_dir, "attack")
    store.check(data_dir, "data")
    recon = store.load_tensors(Path(attack_dir) / "recon.safetensors")
    data = store.load_tensors(Path(data_dir) / "data.safetensors")
    info = store.read_manifest(data_dir)["results"]
    manifest = store.read_manifest(attack_dir)
    attacked = sorted(set(recon["labels"].tolist()))
    classes = shown_classes(attacked)  # the figure says when it shows a subset
    n_rec = min(max_recon, max((recon["labels"] == c).sum().item() for c in classes))
    cols = n_private + 1 + n_rec
    fig, axes = plt.subplots(len(classes), cols, figsize=(cols * 0.9, len(classes) * 0.95 + 0.6), squeeze=False)
    gen = torch.Generator().manual_seed(0)
    for r, c in enumerate(classes):
        priv = data["private_train_x"][data["private_train_y"] == c]
        pick = torch.randperm(len(priv), generator=gen)[:n_private]
        rec = recon["images"][recon["labels"] == c][:n_rec]
        for j in range(cols):
            ax = axes[r, j]
            if j < len(pick):
                _show(ax, to_model_range(priv[pick[j]]))
            elif j > n_private and j - n_private - 1 < len(rec):
                _show(ax, rec[j - n_private - 1])
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(info["class_names"][c], rotation=0, ha="right", va="center", fontsize=8)
    axes[0, 0].set_title("private", fontsize=8, loc="left")
    axes[0, n_private + 1].set_title("reconstructions", fontsize=8, loc="left")
    if len(classes) < len(attacked):
        fig.text(0.5, 0.0, f"{len(classes)} of {len(attacked)} attacked classes, evenly spread", ha="center", size=8)
    fig.suptitle(f"{label or manifest['label']}  ({manifest['id']})", fontsize=9)
    _savefig(fig, out)


def prior_samples(prior_dir: str, out: str, label: str | None = None) -> None:
    import matplotlib.image as mpimg

    store.check(prior_dir, "prior")
    img = mpimg.imread(Path(prior_dir) / "samples.png")
    manifest = store.read_manifest(prior_dir)
    fig, ax = plt.subplots(figsize=(5, 5.3))
    ax.imshow(img, cmap="gray")
    ax.axis("off")
    ax.set_title(f"prior samples: {label or manifest['label']} ({manifest['id']})", fontsize=9)
    _savefig(fig, out)


def short_run_labels(runs: list[str]) -> list[str]:
    """Run labels without the dot-separated parts every run shares (``a.b.gmi`` -> ``gmi``)."""
    parts = [r.split(".") for r in runs]
    if len(parts) < 2 or len({len(p) for p in parts}) != 1:
        return list(runs)
    keep = [k for k in range(len(parts[0])) if len({p[k] for p in parts}) > 1]
    return [".".join(p[k] for k in keep) for p in parts] if keep else list(runs)


def comparison_chart(attacks_parquet: str, out: str) -> None:
    """One panel per metric, one bar per run in the same order in every panel.

    A missing value is written as "missing" at its run's place, never drawn as 0;
    a metric missing for every run gets no panel but is named under the figure
    (the reasons are in the Markdown table and ``missing_reasons``).
    """
    import numpy as np
    import pandas as pd
    import seaborn as sns

    from mibench_core.report.aggregate import column_title, metric_columns
    from mibench_core.report.intervals import error_bars, has_intervals

    df = pd.read_parquet(attacks_parquet).sort_values("run").reset_index(drop=True)
    all_metrics = metric_columns(df)
    metrics = [m for m in all_metrics if df[m].notna().any()]
    absent = [m for m in all_metrics if m not in metrics]
    labels = short_run_labels(list(df["run"]))
    y = np.arange(len(df))
    n = max(1, len(metrics))
    ncols = min(3, n)
    nrows = (n + ncols - 1) // ncols
    panel_h = 0.22 * len(df) + 0.9
    size = (3.6 * ncols + 1.5, panel_h * nrows + 0.4)
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, sharey=True)
    for ax, m in zip(axes.flat, metrics):
        vals = pd.to_numeric(df[m], errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(vals)
        err = error_bars(df, m)[:, ok] if has_intervals(df, m) else None
        ax.barh(y[ok], vals[ok], color="#4C72B0", height=0.7, xerr=err, ecolor="#222", capsize=2,
                error_kw={"elinewidth": 0.8})  # fmt: skip
        for yi in y[~ok]:
            ax.text(0.01, yi, "missing", va="center", fontsize=7, color="#a00",
                    transform=ax.get_yaxis_transform())  # fmt: skip
        ax.set_ylim(len(df) - 0.5, -0.5)
        title, hint = column_title(m)
        ax.set_title(f"{title}\n({hint})" if hint else title, fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes[:, 0]:
        ax.set_yticks(y, labels)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    footer = []
    if any(has_intervals(df, m) for m in metrics):
        footer.append(f"error bars: {_interval_method(df)}")
    if absent:
        names = ", ".join(column_title(m)[0] for m in absent)
        footer.append(f"missing for every run (reasons in the Markdown table): {names}")
    for i, text in enumerate(footer):  # one line (0.2 in) below the other
        fig.text(0.01, -0.2 * i / fig.get_figheight(), text, fontsize=8,
                 color="#a00" if text.startswith("missing") else "#333", ha="left", va="top")  # fmt: skip
    if not metrics:
        axes.flat[0].text(0.5, 0.5, "no metric has a value", ha="center", va="center")
    fig.tight_layout()
    _savefig(fig, out)


def _interval_method(df) -> str:
    methods = sorted({str(m) for m in df["ci_method"].dropna()}) if "ci_method" in df.columns else []
    return "; ".join(methods) if methods else "see the tables"


def markdown_table(attacks_parquet: str, out: str) -> None:
    """The table of every run: natural accuracy beside attack metrics, each with its interval
    (``value [low, high]``: the run's bootstrap interval over its reconstructions)."""
    import json

    import pandas as pd

    from mibench_core.report.aggregate import metric_columns
    from mibench_core.report.intervals import cell, has_intervals

    df = pd.read_parquet(attacks_parquet)
    metrics = metric_columns(df)
    seeded = "replicate_seed" in df.columns and df["replicate_seed"].notna().any()
    cols = ["dataset", "target", "defense", "attack", *(["replicate_seed"] if seeded else []), "target_test_acc",
            *metrics]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if v is None or (isinstance(v, float) and pd.isna(v)):
                cells.append("missing" if c != "replicate_seed" else "-")
            elif c in metrics:
                cells.append(cell(row, c))
            elif isinstance(v, float):
                cells.append(f"{v:.4g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    notes = set()
    for _, row in df.iterrows():
        for name, reason in json.loads(row["missing_reasons"]).items():
            notes.add(f"- `{name}` missing for {row['run']}: {reason}")
    text = "\n".join(lines) + "\n"
    if any(has_intervals(df, m) for m in metrics):
        text += f"\nIntervals: {_interval_method(df)}.\n"
        no_ci = {}
        for _, row in df.iterrows():
            for name, why in json.loads(row.get("ci_notes") or "{}").items():
                no_ci.setdefault(name, why)
        text += "".join(f"- `{name}` has no interval: {why}\n" for name, why in sorted(no_ci.items()))
    if notes:
        text += "\n" + "\n".join(sorted(notes)) + "\n"
    store.write_bytes(out, text.encode())


def queries_chart(attacks_parquet: str, out: str, metric: str = "acc1") -> None:
    """Attack success (``metric``, Acc@1 of the evaluation model) against the number of
    target queries, one point per run with counted queries (log x axis). Runs without
    counted queries (white-box) or without the metric are listed under the axes, never
    drawn at 0."""
    import pandas as pd

    from mibench_core.report.aggregate import column_title
    from mibench_core.report.intervals import error_bars, has_intervals

    df = pd.read_parquet(attacks_parquet)
    if "queries" not in df.columns:
        df["queries"] = None
    if metric not in df.columns:
        df[metric] = None
    counted = df[df["queries"].notna()]
    counted = counted[counted["queries"] > 0]
    drawn = counted[counted[metric].notna()]
    # several targets / defenses: name each point by them
    tag_cols = [c for c in ("dataset", "target", "defense") if c in df.columns and df[c].nunique() > 1]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    markers = "osD^vP*Xh<>p"
    for i, name in enumerate(sorted(drawn["attack"].unique())):
        sub = drawn[drawn["attack"] == name]
        ax.scatter(sub["queries"], sub[metric], marker=markers[i % len(markers)], s=50, label=name)
        if has_intervals(sub, metric):
            ax.errorbar(sub["queries"], sub[metric], yerr=error_bars(sub, metric), fmt="none", ecolor="#444",
                        elinewidth=0.8, capsize=2)  # fmt: skip
        if tag_cols:
            for _, row in sub.iterrows():
                tag = ".".join(str(row[c]) for c in tag_cols)
                ax.annotate(tag, (row["queries"], row[metric]), fontsize=6, xytext=(4, 3), textcoords="offset points")
    if len(drawn):
        ax.set_xscale("log")
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no run with counted queries and a value", ha="center", va="center", transform=ax.transAxes)
    title, hint = column_title(metric)
    ax.set_xlabel("target queries per run (log scale)")
    ax.set_ylabel(title)
    if metric in ("acc1", "acc5"):
        ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"attack success vs. queries ({hint})" if hint else "attack success vs. queries", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    notes = []
    uncounted = sorted(set(df["run"]) - set(counted["run"]))
    if uncounted:
        notes.append("no counted queries (white-box): " + ", ".join(uncounted))
    no_value = sorted(set(counted["run"]) - set(drawn["run"]))
    if no_value:
        notes.append(f"{metric} missing: " + ", ".join(no_value))
    if has_intervals(drawn, metric):
        notes.append(f"error bars: {_interval_method(drawn)}")
    if notes:
        fig.text(0.01, -0.02, "\n".join(notes), fontsize=7, ha="left", va="top", wrap=True)
    _savefig(fig, out)
