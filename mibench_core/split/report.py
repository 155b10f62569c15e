"""The split-inference track's table and figures (from its artifacts and its Parquet table only).

``split_inference.parquet``: one row per split run (target x technique and
knowledge setting x split point). Columns: the labels (``group`` =
``<dataset>.<target>.<defense>``, ``technique``, ``split_point``,
``depth`` = the split point's index in its architecture, shallow = 0), the
setting (``access``, ``data``, ``structure``), the scores (``psnr``,
``ssim``, ``acc1``, ``reference_acc1``; missing values null with the reason
in ``missing_reasons``), queries, what the technique reported (feature loss,
shadow accuracy, decoder loss), the target's accuracy, artifact ids, wall
times and every technique parameter (``params.*``).

The Markdown tables are laid out like the paper's: per trained target, a
PSNR, an SSIM and an Acc@1 table whose rows are the techniques with their
knowledge setting and whose columns are the split points, shallow to deep.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mibench_core import registry, store  # noqa: E402

DATA_WORDS = {
    "train": "target's training set",
    "heldout": "same-distribution set",
    "public": "public split",
    "noise": "random noise",
}
SCORES = (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4), ("acc1", "Acc@1", 3))


def setting(access: str, params: dict) -> str:
    """The knowledge setting in words, e.g. ``black-box, queries: random noise``."""
    if access == "white-box":
        return "white-box"
    if access == "feature-queries":
        return f"black-box, queries: {DATA_WORDS.get(params.get('data'), params.get('data'))}"
    data = "same set" if params.get("data") == "train" else "diff set"
    net = "same net" if params.get("structure") == "same" else "diff net"
    return f"query-free, {data}, {net}"


def _flatten(prefix: str, obj: Any, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(obj, (list, tuple)):
        out[prefix] = json.dumps(obj)
    else:
        out[prefix] = obj


def _labels_from_manifests(metric_manifest: dict, run: dict) -> dict[str, str]:
    """A row's labels from the names its artifacts were first built under (no plan at hand)."""
    group = metric_manifest["label"].rsplit(".", 1)[0]
    dataset, target, defense = group.split(".")
    technique, point = run["label"][len(group) + 1 :].rsplit(".", 1)
    return dict(run=run["label"], group=group, dataset=dataset, target=target, defense=defense,
                technique=technique, split_point=point)  # fmt: skip


def collect(metric_dirs: list[str], labels: dict[str, dict] | None = None) -> list[dict]:
    """Rows of every split run scored in ``metric_dirs``. ``labels``: split id -> row labels (the plan's,
    :func:`mibench_core.split.plan.row_labels`); without it, the labels the artifacts were built under."""
    rows = []
    for d in metric_dirs:
        d = Path(d)
        results_dir = d.parent.parent
        manifest = store.read_manifest(d)
        scores = store.read_json(d / "metrics.json")["runs"]
        inputs = manifest["inputs"]
        target = store.read_manifest(results_dir / "models" / inputs["target"])
        evaluation = store.read_manifest(results_dir / "models" / inputs["evaluation"])
        points = registry.get("arch", target["spec"]["arch"]).split_points
        for role in sorted(r for r in inputs if r.startswith("split")):
            sid = inputs[role]
            run = store.read_manifest(results_dir / "split" / sid)
            res, sc = run["results"], scores[sid]
            entry = registry.get("split_attack", run["name"])
            params = run["spec"]["params"]
            names = labels[sid] if labels is not None else _labels_from_manifests(manifest, run)
            row: dict[str, Any] = {
                **{k: names[k] for k in ("run", "group", "dataset", "target", "defense", "technique")},
                "technique_name": run["name"],
                "access": entry.access, "setting": setting(entry.access, params),
                "data": params.get("data"), "structure": params.get("structure"),
                "split_point": res["split_point"], "depth": points.index(res["split_point"]),
                "psnr": sc["psnr"], "ssim": sc["ssim"], "acc1": sc["acc1"], "reference_acc1": sc["reference_acc1"],
                "missing_reasons": json.dumps(sc["missing"]), "num_reconstructions": res["num_reconstructions"],
                "queries": res.get("queries"), "feature_shape": json.dumps(res["feature_shape"]),
                "feature_loss": res.get("feature_loss"), "shadow_train_acc": res.get("shadow_train_acc"),
                "attacker_samples": res.get("attacker_samples"),
                "decoder_final_l2": (res.get("decoder_train_l2") or [None])[-1],
                "target_arch": target["spec"]["arch"], "target_test_acc": target["results"]["test_acc"],
                "evaluation_test_acc": evaluation["results"]["test_acc"],
                "split_id": sid, "target_id": target["id"], "evaluation_id": evaluation["id"],
                "data_id": inputs["data"], "metrics_id": manifest["id"], "split_wall_s": run["wall_time_s"],
                "target_wall_s": target["wall_time_s"],
            }  # fmt: skip
            _flatten("params", params, row)
            _flatten("target.train", target["spec"]["train"], row)
            _flatten("target.defense", target["spec"]["defense"], row)
            for k, v in (target["results"].get("defense") or {}).items():
                row[f"target_defense.{k}"] = v
            rows.append(row)
    return rows


def write_table(metric_dirs: list[str], out: str, labels: dict[str, dict] | None = None) -> None:
    import pandas as pd

    rows = collect(metric_dirs, labels)
    with store.atomic_path(out) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    return f"{value:.{digits}f}"


def markdown_table(table: str, out: str) -> None:
    """Per trained target, a PSNR, an SSIM and an Acc@1 table: rows technique (knowledge setting), columns
    split points (shallow to deep)."""
    import pandas as pd

    df = pd.read_parquet(table)
    lines = [
        "# Split inference: input reconstruction from intermediate features",
        "",
        "He, Zhang, Lee 2019. Scores against the exact inputs whose features were inverted (private test images): "
        "PSNR (dB, data range 1) and SSIM per sample, averaged; Acc@1 = the evaluation model's top-1 accuracy "
        "on the reconstructions (its accuracy on the originals in the heading).",
        "",
    ]
    reasons: dict[str, str] = {}
    for group, g in df.groupby("group", sort=False):
        points = list(g.sort_values("depth")["split_point"].drop_duplicates())
        first = g.iloc[0]
        lines += [
            f"## {group}",
            "",
            f"Target {first['target_arch']} (test accuracy {first['target_test_acc']:.4f}); "
            f"{int(first['num_reconstructions'])} victims; evaluation-model Acc@1 on the originals "
            f"{first['reference_acc1']:.3f}.",
            "",
        ]
        for key, label, digits in SCORES:  # one table per score, the paper's PSNR and SSIM blocks
            header = ["technique", "setting", *points]
            lines += [f"{label}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for technique, rows in g.groupby("technique", sort=False):
                by_point = rows.set_index("split_point")
                cells = [technique, rows.iloc[0]["setting"]]
                cells += [_fmt(by_point.loc[p, key], digits) if p in by_point.index else "—" for p in points]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        for _, r in g.iterrows():
            for k, why in json.loads(r["missing_reasons"]).items():
                reasons[k] = why
        queries = g.dropna(subset=["queries"])
        if len(queries):
            lines += ["Queries of f1 (black-box): " + ", ".join(
                f"{t} {int(q)}" for t, q in queries.groupby("technique", sort=False)["queries"].first().items()
            ) + ".", ""]  # fmt: skip
    if reasons:
        lines += ["Missing values:", ""] + [f"- `{k}`: {why}" for k, why in sorted(reasons.items())] + [""]
    with store.atomic_path(out) as tmp:
        Path(tmp).write_text("\n".join(lines))


def _savefig(fig, path: str) -> None:
    with store.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def depth_figure(table: str, out: str) -> None:
    """PSNR and SSIM against split depth, one line per technique and setting, one row per trained target."""
    import pandas as pd

    df = pd.read_parquet(table)
    groups = list(df["group"].drop_duplicates())
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.4 * len(groups)), squeeze=False)
    for r, group in enumerate(groups):
        g = df[df["group"] == group]
        order = g.sort_values("depth")[["depth", "split_point"]].drop_duplicates()
        for c, (key, label, _) in enumerate(SCORES[:2]):
            ax = axes[r, c]
            for technique, rows in g.groupby("technique", sort=False):
                rows = rows.sort_values("depth")
                ax.plot(rows["depth"], rows[key], marker="o", label=f"{technique} ({rows.iloc[0]['setting']})")
            ax.set_xticks(list(order["depth"]), list(order["split_point"]), rotation=45, ha="right")
            ax.set_ylabel(label)
            ax.set_title(f"{group}: {label} against split depth", fontsize=9)
            ax.grid(alpha=0.3)
        axes[r, 1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    _savefig(fig, out)


def _show(ax, img: torch.Tensor) -> None:
    img = img.add(1).div(2).clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def reconstruction_grid(run_dirs: list[str], data_dir: str, table: str, out: str, group: str, n: int = 8) -> None:
    """Originals (first row) and each technique's reconstructions of the same victims at one split point."""
    import pandas as pd

    from mibench_core.data.common import to_model_range

    df = pd.read_parquet(table).set_index("split_id")
    runs = []
    for d in run_dirs:
        manifest = store.read_manifest(d)
        runs.append((manifest, store.load_tensors(Path(d) / "recon.safetensors")))
    order = {sid: i for i, sid in enumerate(df.index)}
    runs.sort(key=lambda r: order.get(r[0]["id"], len(order)))
    index = runs[0][1]["victim_index"].long()[:n]
    originals = to_model_range(store.load_tensors(Path(data_dir) / "data.safetensors")["private_test_x"][index])
    cols = len(index)
    fig, axes = plt.subplots(len(runs) + 1, cols, figsize=(cols * 0.95 + 2.6, (len(runs) + 1) * 1.0), squeeze=False)
    for j in range(cols):
        _show(axes[0, j], originals[j])
    axes[0, 0].set_ylabel("original", rotation=0, ha="right", va="center", fontsize=8)
    for r, (manifest, recon) in enumerate(runs, start=1):
        for j in range(cols):
            _show(axes[r, j], recon["images"][j])
        row = df.loc[manifest["id"]] if manifest["id"] in df.index else None
        name = row["technique"] if row is not None else manifest["name"]
        score = f"\n{_fmt(row['psnr'], 1)} dB, SSIM {_fmt(row['ssim'], 2)}" if row is not None else ""
        axes[r, 0].set_ylabel(name + score, rotation=0, ha="right", va="center", fontsize=7)
    point = runs[0][0]["results"]["split_point"]
    fig.suptitle(f"{group}: reconstructions from {point}", fontsize=9)
    _savefig(fig, out)
