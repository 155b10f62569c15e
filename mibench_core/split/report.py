"""The split-inference track's table and figures (from its artifacts and its Parquet table only).

``split_inference.parquet``: one row per split run (target x technique and
knowledge setting x split point). Columns: the labels (``group`` =
``<dataset>.<target>.<defense>``, ``technique``, ``split_point``,
``depth`` = the split point's index in its architecture, shallow = 0), the
setting (``access``, ``data``, ``structure``), the scores (``psnr``,
``ssim``, ``acc1``, ``reference_acc1``; missing values null with the reason
in ``missing_reasons``), queries, what the technique reported (feature loss,
shadow accuracy, decoder loss, the TV weight it chose: ``lambda_tv``), the target's accuracy, artifact ids, wall
times and every technique parameter (``params.*``).

Each score also has its 95% Student's t interval over the victims
(``psnr_low`` / ``psnr_high`` and so on, from the per-victim scores of the
metric stage), and PSNR and SSIM have the paper's value for the same
architecture, knowledge setting and split point where its Tables 3
(white-box), 4 (black-box) and 6 (query-free) give one (``paper_psnr``,
``paper_ssim``; null elsewhere). The paper's numbers are for MNIST (LeNet)
and CIFAR-10 (CIFAR CNN) at its own training budgets; a dataset of ours
with another name is compared with the paper's dataset for the same
architecture, which the Markdown says in its heading.

The Markdown tables are laid out like the paper's: per trained target, a
PSNR, an SSIM and an Acc@1 table whose rows are the techniques with their
knowledge setting and whose columns are the split points, shallow to deep;
a cell is the mean over victims, its 95% interval, and the paper's value
where there is one.
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
from mibench_core.stats import t_interval  # noqa: E402

DATA_WORDS = {
    "train": "target's training set",
    "heldout": "same-distribution set",
    "public": "public split",
    "noise": "random noise",
}
SCORES = (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4), ("acc1", "Acc@1", 3))
CONFIDENCE = 0.95

# He, Zhang, Lee 2019, (PSNR dB, SSIM) by architecture, knowledge setting (as :func:`setting` words it) and
# split point: Table 3 (white-box rMLE), Table 4 (black-box inverse network: "same set" = queries of the
# training set, "same dist" = other images of its distribution, "rand set" = Gaussian noise), Table 6
# (query-free). LeNet on MNIST, the CIFAR CNN on CIFAR-10.
PAPER_DATASET = {"lenet-split": "MNIST", "cifar-cnn-split": "CIFAR-10"}
_PAPER_POINTS = {"lenet-split": ("conv1", "ReLU2"), "cifar-cnn-split": ("conv11", "ReLU22", "ReLU32")}
_PAPER_ROWS = {  # setting: (PSNR by point, SSIM by point), MNIST points then CIFAR-10 points
    "white-box": ((39.69, 15.10, 37.59, 19.47, 13.38), (0.9969, 0.5998, 0.9960, 0.6940, 0.1625)),
    "black-box, queries: target's training set": (
        (39.64, 20.35, 49.88, 19.81, 15.42), (0.9887, 0.7334, 0.9993, 0.6939, 0.3124)),
    "black-box, queries: same-distribution set": (
        (40.72, 20.81, 49.02, 19.36, 13.95), (0.9950, 0.8046, 0.9992, 0.6802, 0.2196)),
    "black-box, queries: random noise": (
        (14.76, 7.72, 48.59, 12.79, 12.37), (0.7188, 0.4310, 0.9996, 0.2930, 0.0440)),
    "query-free, same set, same net": ((17.60, 9.61, 21.16, 12.74, 11.09), (0.7423, 0.4981, 0.9104, 0.1752, 0.0419)),
    "query-free, diff set, same net": ((21.53, 9.27, 21.45, 11.51, 11.98), (0.9121, 0.4652, 0.9145, 0.1723, 0.0102)),
    "query-free, same set, diff net": ((12.59, 8.05, 17.55, 12.46, 10.68), (0.6430, 0.3790, 0.6344, 0.2714, 0.0247)),
    "query-free, diff set, diff net": ((17.86, 8.03, 13.06, 11.30, 11.47), (0.6952, 0.3226, 0.1553, 0.0467, 0.0793)),
}  # fmt: skip


def paper_value(arch: str, setting_words: str, point: str) -> tuple[float, float] | None:
    """(PSNR, SSIM) of the paper's Tables 3, 4, 6 for this architecture, setting and split point, or None."""
    row = _PAPER_ROWS.get(setting_words)
    if row is None or arch not in _PAPER_POINTS or point not in _PAPER_POINTS[arch]:
        return None
    offset = 0 if arch == "lenet-split" else len(_PAPER_POINTS["lenet-split"])
    i = offset + _PAPER_POINTS[arch].index(point)
    return row[0][i], row[1][i]


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
            words = setting(entry.access, params)
            paper = paper_value(target["spec"]["arch"], words, res["split_point"])
            per_sample = sc.get("per_sample") or {}
            spread = {}
            for key, _, _ in SCORES:
                _, low, high = t_interval(per_sample.get(key) or [], CONFIDENCE)
                spread[f"{key}_low"], spread[f"{key}_high"] = low, high
            row: dict[str, Any] = {
                **{k: names[k] for k in ("run", "group", "dataset", "target", "defense", "technique")},
                "technique_name": run["name"],
                "access": entry.access, "setting": words,
                "data": params.get("data"), "structure": params.get("structure"),
                "split_point": res["split_point"], "depth": points.index(res["split_point"]),
                "psnr": sc["psnr"], "ssim": sc["ssim"], "acc1": sc["acc1"], "reference_acc1": sc["reference_acc1"],
                **spread, "paper_psnr": paper[0] if paper else None, "paper_ssim": paper[1] if paper else None,
                "lambda_tv": res.get("lambda_tv"),
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


def _cell(row, key: str, digits: int) -> str:
    """``mean [low, high]`` and ``(paper x)`` where the paper has a value."""
    text = _fmt(row[key], digits)
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    if text != "missing" and low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    paper = row.get(f"paper_{key}")
    if paper is not None and not (isinstance(paper, float) and math.isnan(paper)):
        text += f" (paper {paper:.{digits}f})"
    return text


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
        "on the reconstructions (its accuracy on the originals in the heading). Each cell: the mean over "
        f"victims [its {CONFIDENCE:.0%} Student's t interval over victims], and the paper's value (Tables 3, 4 "
        "and 6) for the same architecture, knowledge setting and split point where it gives one.",
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
            f"{first['reference_acc1']:.3f}."
            + (
                f" Paper values: {PAPER_DATASET[first['target_arch']]} (the paper's data set and training budget, "
                "not this run's)."
                if first["target_arch"] in PAPER_DATASET
                else ""
            ),
            "",
        ]
        for key, label, digits in SCORES:  # one table per score, the paper's PSNR and SSIM blocks
            header = ["technique", "setting", *points]
            lines += [f"{label}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for technique, rows in g.groupby("technique", sort=False):
                by_point = rows.set_index("split_point")
                cells = [technique, rows.iloc[0]["setting"]]
                cells += [_cell(by_point.loc[p], key, digits) if p in by_point.index else "—" for p in points]
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
