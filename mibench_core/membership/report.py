"""Membership-inference tables and figures, from the evaluation artifacts and the attack table only.

* ``membership.parquet``: one row per (attack run, scenario): the run's
  labels (dataset, target, defense, attack, output processing), every
  scenario field (``scenario``, ``scenario.*``: requested and achieved),
  every metric (:mod:`mibench_core.membership.metrics`; missing ones null
  with the reason in ``missing_reasons``), the artifact ids, queries, wall
  times, the target's natural accuracy, and every spec field flattened
  (``mia.params.*``, ``target.*``, ``dataset.*``);
* ``membership.md``: per target, every attack on the natural scenario, then
  the membership advantage of every attack in every scenario;
* a ROC figure per target (natural scenario, log-log axes) and a heat map
  of membership advantage (scenario x attack) per target;
* the **defense table across both threats** (:func:`defense_threats`): per
  target model (the undefended one first), natural accuracy, model-inversion
  Acc@1 of GMI and of the strongest black-box inversion attack (from
  ``attacks.parquet``), and membership TPR at 0.1 % FPR (members found,
  Clopper-Pearson interval) and AUC of one membership attack on the natural
  scenario; Parquet, Markdown, LaTeX
  and a figure. The membership attack of that table is fixed in the config
  (``membership.defense_attack``, a run label; default ``lira-online``), not
  chosen by the TPR the table reports.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mibench_core import registry, store  # noqa: E402
from mibench_core.membership.metrics import FPR_LEVELS, fpr_key, low_fpr_keys  # noqa: E402
from mibench_core.report.aggregate import flatten  # noqa: E402
from mibench_core.report.perspectives import (  # noqa: E402
    _fmt,
    _savefig,
    _write_text,
    absent_figure,
    markdown,
    strength,
)

METRICS = ["auc", *(fpr_key(a) for a in FPR_LEVELS), "advantage", "balanced_accuracy", "precision", "recall", "f1",
           "fpr", "fnr", "accuracy"]  # fmt: skip
LOW_FPR = fpr_key(0.001)
LOW_FPR_EXTRA = [k for a in FPR_LEVELS for k in low_fpr_keys(a) if k != fpr_key(a)]
DEFENSE_ATTACK = "lira-online"  # the defense table's membership attack unless the config names another
NATURAL = "ES00"


_MANIFESTS: dict[Path, dict] = {}


def _cached(folder: Path) -> dict:
    if folder not in _MANIFESTS:
        _MANIFESTS[folder] = store.read_manifest(folder)
    return _MANIFESTS[folder]


def collect(eval_dirs: list[str], labels: dict[str, str]) -> list[dict]:
    """Rows of the table; ``labels``: run id -> ``dataset.target.defense.attack`` from the config."""
    rows = []
    for d in eval_dirs:
        d = Path(d)
        results = d.parent.parent
        ev = store.read_manifest(d)
        payload = store.read_json(d / "metrics.json")
        scen = store.read_manifest(results / "scenarios" / ev["inputs"]["scenarios"])
        mias = {}
        for role, mid in ev["inputs"].items():
            if role.startswith("mia"):
                mias[mid] = store.read_manifest(results / "mia" / mid)
        for r in payload["rows"]:
            m = mias[r["mia_id"]]
            target = _cached(results / "models" / m["inputs"]["target"])
            cand = _cached(results / "mia_inputs" / m["inputs"]["candidates"])
            data = _cached(results / "data" / cand["inputs"]["data"])
            label = labels[m["id"]]
            ds, tgt, dfn, atk = label.split(".", 3)
            entry = registry.REGISTRIES["mia"].get(m["name"])
            row = {
                "run": label, "dataset": ds, "target": tgt, "defense": dfn, "attack": atk,
                "attack_name": m["name"], "output_defense": (m["spec"].get("output") or {}).get("name", "none"),
                "access": entry.access if entry else None, "scenario": r["scenario"],
                **{k: v for k, v in r.items() if k.startswith("scenario.")},
                **{k: r.get(k) for k in (*METRICS, *LOW_FPR_EXTRA, "tp", "fp", "fn", "tn")},
                "missing_reasons": json.dumps(r.get("missing", {}), sort_keys=True),
                "data_id": data["id"], "target_id": target["id"], "mia_id": m["id"], "scenario_id": scen["id"],
                "eval_id": ev["id"], "queries": m["results"].get("queries"),
                "n_offline": m["results"].get("n_offline"), "n_online": m["results"].get("n_online"),
                "mia_wall_s": m["wall_time_s"], "eval_wall_s": ev["wall_time_s"],
                "target_test_acc": target["results"].get("test_acc"),
                "target_train_acc": target["results"].get("train_acc"),
                "device": m["device"],
            }  # fmt: skip
            for k, v in (m["results"] or {}).items():
                if isinstance(v, (int, float, str, bool)) and k not in ("queries", "n_offline", "n_online"):
                    row[f"mia.results.{k}"] = v
            flatten("target_defense", target["results"].get("defense", {}), row)
            flatten("mia", {k: v for k, v in m["spec"].items() if k != "pool"}, row)
            flatten("pool", m["spec"].get("pool", {}), row)
            flatten("target", target["spec"], row)
            flatten("dataset", data["spec"], row)
            for k, v in m["versions"].items():
                row[f"version.{k}"] = v
            rows.append(row)
    order = {sid: i for i, sid in enumerate(scenario_order({r["scenario"] for r in rows}))}
    rows.sort(key=lambda r: (r["run"], order[r["scenario"]]))
    add_selection_baseline(rows)
    return rows


SELECTION = "selection-independent"  # the baseline an attack's advantage is read against


def add_selection_baseline(rows: list[dict]) -> None:
    """``selection_advantage``: the selection baseline's advantage on the same target, output processing and
    scenario; ``advantage_over_selection``: the row's advantage minus it (None without the baseline)."""
    base = {
        (r["dataset"], r["target"], r["defense"], r["output_defense"], r["scenario"]): r.get("advantage")
        for r in rows
        if r["attack_name"] == SELECTION
    }
    for r in rows:
        b = base.get((r["dataset"], r["target"], r["defense"], r["output_defense"], r["scenario"]))
        a = r.get("advantage")
        r["selection_advantage"] = b
        r["advantage_over_selection"] = None if a is None or b is None else a - b


def write_table(eval_dirs: list[str], out: str, labels: dict[str, str]) -> None:
    import pandas as pd

    df = pd.DataFrame(collect(eval_dirs, labels))
    with store.atomic_path(out) as tmp:
        df.to_parquet(tmp, index=False)


def _load(parquet: str):
    import pandas as pd

    return pd.read_parquet(parquet)


def markdown_report(parquet: str, out: str) -> None:
    df = _load(parquet)
    lines = ["# Membership inference", ""]
    if len(df) == 0:
        _write_text(out, "\n".join(lines + ["No membership-inference runs in this configuration.", ""]))
        return
    lines += [
        "Scores and decisions of every attack on every scenario (`results/tables/membership.parquet` has every",
        "column). Natural scenario `ES00`: a random balanced set of candidate members and non-members.",
        "TPR at a FPR level: the largest TPR at a FPR strictly below the level, then the members found and the",
        "95 % Clopper-Pearson interval; where the non-members are too few for the level to allow a false",
        "positive the column reads `TPR at 0 FP`.",
        "",
    ]
    nat = df[df["scenario"] == NATURAL] if (df["scenario"] == NATURAL).any() else df
    nat = nat.copy()
    low_cols = []
    for a in FPR_LEVELS:
        key = fpr_key(a)
        col = f"TPR@{a * 100:g}%FPR (TP) [95% CI]"
        if f"{key}_max_fp" in nat.columns and len(nat) and (nat[f"{key}_max_fp"].fillna(1) == 0).all():
            col = f"TPR at 0 FP (TP) [95% CI] (level {a * 100:g}% unreachable)"
        nat[col] = [low_fpr_cell(r, key) for _, r in nat.iterrows()]
        low_cols.append(col)
    cols = ["attack", "access", "queries", "auc", *low_cols, *METRICS[1 + len(FPR_LEVELS) :]]
    for (ds, tgt, dfn), grp in nat.groupby(["dataset", "target", "defense"], sort=True):
        acc = grp["target_test_acc"].iloc[0]
        tr = grp["target_train_acc"].iloc[0]
        note = f"Target test accuracy {_fmt(acc)}, training accuracy {_fmt(tr)}."
        block = markdown(grp.sort_values(LOW_FPR, ascending=False), cols, f"{ds} / {tgt} / {dfn}", note)
        lines += ["#" + block, ""]
    lines += ["## Membership advantage by scenario", ""]
    scen_cols = ["scenario", "scenario.distribution", "scenario.level", "scenario.differential", "scenario.ratio",
                 "scenario.distance_mean", "scenario.differential_achieved", "scenario.ratio_value",
                 "scenario.n_members", "scenario.n_nonmembers", "scenario.selection"]  # fmt: skip
    for (ds, tgt, dfn), grp in df.groupby(["dataset", "target", "defense"], sort=True):
        piv = grp.pivot_table(index="scenario", columns="attack", values="advantage", aggfunc="first")
        info = grp.drop_duplicates("scenario").set_index("scenario")[scen_cols[1:]]
        table = info.join(piv)
        table = table.loc[scenario_order(table.index)].reset_index()
        lines += ["#" + markdown(table, list(table.columns), f"{ds} / {tgt} / {dfn}: advantage"), ""]
    if "advantage_over_selection" in df.columns and df["advantage_over_selection"].notna().any():
        lines += ["## Advantage over the selection baseline", "",
                  f"Each attack's advantage minus `{SELECTION}`'s in the same scenario: the privacy risk score of an",
                  "independently trained model (an offline reference, never trained on a candidate), membership-",
                  "independent, so what it gains is what the scenario's selection produces by itself.", ""]  # fmt: skip
        for (ds, tgt, dfn), grp in df.groupby(["dataset", "target", "defense"], sort=True):
            g = grp[grp["output_defense"] == "none"]
            piv = g.pivot_table(index="scenario", columns="attack", values="advantage_over_selection",
                                aggfunc="first")  # fmt: skip
            sel = g.drop_duplicates("scenario").set_index("scenario")[["selection_advantage"]]
            table = sel.join(piv)
            table = table.loc[scenario_order(table.index)].reset_index()
            lines += ["#" + markdown(table, list(table.columns), f"{ds} / {tgt} / {dfn}: advantage over selection"),
                      ""]  # fmt: skip
    missing = {}
    for _, row in df.iterrows():
        for k, v in json.loads(row["missing_reasons"]).items():
            missing.setdefault(f"{k}: {v}", 0)
            missing[f"{k}: {v}"] += 1
    if missing:
        lines += ["## Missing values", ""] + [f"- `{k}` ({n} rows)" for k, n in sorted(missing.items())] + [""]
    _write_text(out, "\n".join(lines))


def low_fpr_cell(row, key: str) -> str:
    """``0.036 (29) [0.024, 0.052]``: the TPR at a FPR level, the members found, the Clopper-Pearson interval."""
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "missing"
    tp, lo, hi = row.get(f"{key}_tp"), row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if tp is None or (isinstance(tp, float) and math.isnan(tp)):
        return f"{v:.4f}"
    return f"{v:.4f} ({int(tp)}) [{lo:.4f}, {hi:.4f}]"


def roc_figure(eval_dir: str, out: str, label: str, labels: dict[str, str]) -> None:
    """Log-log ROC curves of one target's runs (``label``: ``dataset.target.defense``; ``labels``: run id ->
    label, from the config)."""
    payload = store.read_json(Path(eval_dir) / "metrics.json")
    curves = {labels[mid]: c for mid, c in payload["roc"].items()}
    title = f"Membership ROC, {label}"
    if not curves:
        absent_figure(out, title, "no attack has members and non-members in the natural scenario")
        return
    fig, ax = plt.subplots(figsize=(6.5, 6))
    floor = 1e-4
    for name, c in sorted(curves.items(), key=lambda kv: -(kv[1]["auc"] or 0)):
        fpr = [max(v, floor) for v in c["fpr"]]
        tpr = [max(v, floor) for v in c["tpr"]]
        ax.step(fpr, tpr, where="post", label=f"{name.split('.', 3)[-1]} (AUC {c['auc']:.3f})", linewidth=1.2)
    ax.plot([floor, 1], [floor, 1], "k--", linewidth=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{title} ({next(iter(curves.values()))['scenario']})", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    _savefig(fig, out)


def scenario_order(ids) -> list[str]:
    """Scenario ids in the generator's order: ``ES00`` (natural), ``ES01``, ..., ``ES09``, ``ES10``, ...,
    ``ES100`` (by number, not as strings); ids without a number last, as strings."""

    def key(sid: str):
        digits = "".join(ch for ch in str(sid) if ch.isdigit())
        return (0, int(digits), str(sid)) if digits else (1, 0, str(sid))

    return sorted(ids, key=key)


def heatmap(parquet: str, label: str, out: str) -> None:
    """Membership advantage, scenario x attack, for one target (``label`` = ``dataset.target.defense``)."""
    df = _load(parquet)
    ds, tgt, dfn = label.split(".", 2)
    sub = df[(df["dataset"] == ds) & (df["target"] == tgt) & (df["defense"] == dfn)]
    title = f"Membership advantage by scenario, {label}"
    if len(sub) == 0:
        absent_figure(out, title, "no membership-inference rows for this target")
        return
    piv = sub.pivot_table(index="scenario", columns="attack", values="advantage", aggfunc="first")
    piv = piv.loc[scenario_order(piv.index)]
    desc = sub.drop_duplicates("scenario").set_index("scenario")
    names = []
    for sid in piv.index:
        r = desc.loc[sid]
        if r["scenario.distribution"] == "natural":
            names.append(f"{sid} natural")
        else:
            names.append(f"{sid} {str(r['scenario.distribution'])[:4]} L{_fmt(r['scenario.level'])} "
                         f"D{_fmt(r['scenario.differential'])} R{_fmt(r['scenario.ratio'])}")  # fmt: skip
    h = max(3.0, 0.22 * len(piv) + 1.5)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(piv.columns) + 3), h))
    vmax = max(0.05, float(abs(piv.fillna(0).to_numpy()).max()))
    im = ax.imshow(piv.to_numpy(dtype=float), aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_xticks(range(len(piv.columns)), piv.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(piv)), names, fontsize=6)
    fig.colorbar(im, ax=ax, label="membership advantage (TPR - FPR)")
    ax.set_title(title, fontsize=10)
    _savefig(fig, out)


# --- the defense table across both threats ------------------------------------------------------


def _black_box(name: str) -> bool:
    entry = registry.REGISTRIES["attack"].get(name)
    return entry is not None and entry.access != "white-box"


def threat_rows(attacks_parquet: str, membership_parquet: str, attack: str = DEFENSE_ATTACK) -> list[dict]:
    """One row per target model; the membership columns come from the run labelled ``attack`` (fixed in the
    config, never chosen on the evaluated data)."""
    import pandas as pd

    atk = pd.read_parquet(attacks_parquet)
    mem = _load(membership_parquet)
    if "output_defense" in atk.columns:
        atk = atk[atk["output_defense"].fillna("none") == "none"]
    mem = mem[(mem["output_defense"] == "none")]
    nat = mem[mem["scenario"] == NATURAL] if (mem["scenario"] == NATURAL).any() else mem
    rows = []
    for (ds, tgt, dfn), grp in nat.groupby(["dataset", "target", "defense"], sort=False):
        first = grp.iloc[0]
        row = {"dataset": ds, "target": tgt, "defense": dfn,
               "defense_name": first.get("target.defense.name", "none"), "strength": strength(first),
               "natural_acc": first["target_test_acc"], "train_acc": first["target_train_acc"]}  # fmt: skip
        eps = first.get("target_defense.epsilon")
        row["epsilon"] = None if eps is None or (isinstance(eps, float) and math.isnan(eps)) else float(eps)
        # the whole guarantee, (epsilon, delta) with accountant, sampling rate and steps, where the manifest has it
        guarantee = first.get("target_defense.guarantee")
        row["dp_guarantee"] = guarantee if isinstance(guarantee, str) else None
        a = atk[(atk["dataset"] == ds) & (atk["target"] == tgt) & (atk["defense"] == dfn)]
        gmi = a[a["attack_name"] == "gmi"]
        row["inversion_gmi_acc1"] = float(gmi["acc1"].max()) if len(gmi) else None
        bb = a[[_black_box(n) for n in a["attack_name"]]]
        bb = bb[bb["acc1"].notna()] if len(bb) else bb
        if len(bb):
            best = bb.sort_values("acc1", ascending=False).iloc[0]
            row["inversion_bb_acc1"], row["inversion_bb_attack"] = float(best["acc1"]), best["attack"]
        else:
            row["inversion_bb_acc1"], row["inversion_bb_attack"] = None, None
        chosen = grp[grp["attack"] == attack]
        row.update(mia_attack=attack, mia_tpr_at_0p1pct_fpr=None, mia_tp=None, mia_ci_low=None, mia_ci_high=None,
                   mia_max_fp=None, mia_auc=None)  # fmt: skip
        if len(chosen):
            r = chosen.iloc[0]

            def num(k, r=r):
                v = r.get(k)
                return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

            row.update(mia_tpr_at_0p1pct_fpr=num(LOW_FPR), mia_tp=num(f"{LOW_FPR}_tp"),
                       mia_ci_low=num(f"{LOW_FPR}_ci_low"), mia_ci_high=num(f"{LOW_FPR}_ci_high"),
                       mia_max_fp=num(f"{LOW_FPR}_max_fp"), mia_auc=num("auc"))  # fmt: skip
            if row["mia_tp"] is not None:
                row["mia_tp"] = int(row["mia_tp"])
        row["mia_ci"] = _ci(row)
        loss = grp[grp["attack_name"] == "loss-threshold"]
        row["loss_threshold_auc"] = float(loss["auc"].iloc[0]) if len(loss) else None
        rows.append(row)
    rows.sort(key=lambda r: (r["dataset"], r["target"], r["defense_name"] != "none", r["defense"]))
    return rows


COLUMNS = [
    ("defense", "defense"), ("strength", "strength"), ("natural_acc", "natural acc."),
    ("inversion_gmi_acc1", "GMI Acc@1"), ("inversion_bb_acc1", "best black-box Acc@1"),
    ("inversion_bb_attack", "(attack)"), ("mia_tpr_at_0p1pct_fpr", "MIA TPR@0.1%FPR"), ("mia_tp", "(TP)"),
    ("mia_ci", "(95% CI)"), ("mia_auc", "MIA AUC"),
    ("mia_attack", "(MIA attack)"), ("loss_threshold_auc", "loss-thr. AUC"), ("dp_guarantee", "DP guarantee"),
]  # fmt: skip


def _ci(r: dict) -> str | None:
    if r.get("mia_ci_low") is None:
        return None
    return f"[{r['mia_ci_low']:.4f}, {r['mia_ci_high']:.4f}]"


def _cell(v, missing: str = "missing") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return missing
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def defense_threats(attacks_parquet: str, membership_parquet: str, out_parquet: str, out_md: str, out_tex: str,
                    out_png: str, attack: str = DEFENSE_ATTACK) -> None:  # fmt: skip
    import pandas as pd

    rows = threat_rows(attacks_parquet, membership_parquet, attack)
    zero_fp = bool(rows) and all(r["mia_max_fp"] == 0 for r in rows)
    with store.atomic_path(out_parquet) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
    title = "Defenses against both threats: model inversion and membership inference"
    note = (
        "Per target model: natural test accuracy; model-inversion Acc@1 of GMI (white-box) and of the strongest "
        "black-box inversion attack (`attacks.parquet`, no output processing); membership TPR at FPR strictly "
        f"below 0.1 % with the members found and a 95 % Clopper-Pearson interval, and AUC, of `{attack}` (fixed in "
        "the config, `membership.defense_attack`) on the natural scenario (`membership.parquet`)"
        + (": with these non-member counts 0.1 % allows no false positive, so the column is the TPR at 0 FP" if zero_fp
           else "")
        + ". Higher = more leakage."
    )  # fmt: skip
    lines = [f"# {title}", "", note, ""]
    if not rows:
        lines.append("No target has membership-inference rows in this configuration.")
    else:
        for ds in sorted({r["dataset"] for r in rows}):
            for tgt in sorted({r["target"] for r in rows if r["dataset"] == ds}):
                sub = [r for r in rows if r["dataset"] == ds and r["target"] == tgt]
                lines += [f"## {ds} / {tgt}", "", "| " + " | ".join(h for _, h in COLUMNS) + " |",
                          "|" + "---|" * len(COLUMNS)]  # fmt: skip
                for r in sub:
                    miss = {"dp_guarantee": "n/a", "inversion_bb_attack": "-", "mia_attack": "-"}
                    lines.append("| " + " | ".join(_cell(r[k], miss.get(k, "missing")) for k, _ in COLUMNS) + " |")
                lines.append("")
    _write_text(out_md, "\n".join(lines) + "\n")
    tex = ["% " + title, "\\begin{tabular}{l" + "r" * (len(COLUMNS) - 1) + "}", "\\toprule",
           " & ".join(h.replace("%", "\\%").replace("@", "@") for _, h in COLUMNS) + " \\\\", "\\midrule"]  # fmt: skip
    for r in rows:
        cells = [_cell(r[k], "--").replace("_", "\\_").replace("%", "\\%") for k, _ in COLUMNS]
        tex.append(" & ".join(cells) + " \\\\")
    tex += ["\\bottomrule", "\\end{tabular}", ""]
    _write_text(out_tex, "\n".join(tex))
    if not rows:
        absent_figure(out_png, title, "no target has membership-inference rows")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = [f"{r['defense']}" if len({x['target'] for x in rows}) == 1 else f"{r['target']}/{r['defense']}"
             for r in rows]  # fmt: skip
    series = [("natural_acc", "natural accuracy"), ("inversion_gmi_acc1", "GMI Acc@1"),
              ("inversion_bb_acc1", "best black-box inversion Acc@1"), ("mia_auc", "membership AUC")]  # fmt: skip
    width = 0.8 / len(series)
    for j, (key, lab) in enumerate(series):
        vals = [r[key] if r[key] is not None else float("nan") for r in rows]
        ax1.bar([i + j * width for i in range(len(rows))], vals, width, label=lab)
    ax1.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], names, rotation=30, ha="right", fontsize=8)
    ax1.set_ylim(0, 1.05)
    ax1.legend(fontsize=7)
    ax1.set_title("utility and leakage per target model", fontsize=10)
    ax1.grid(alpha=0.3, axis="y")
    for r, n in zip(rows, names):
        x, y = r["inversion_gmi_acc1"], r["mia_tpr_at_0p1pct_fpr"]
        if x is None or y is None:
            continue
        ax2.scatter(x, y, s=40)
        ax2.annotate(n, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax2.set_xlabel("model inversion: GMI Acc@1")
    ax2.set_ylabel(f"membership inference: TPR at FPR < 0.1% ({attack})")
    ax2.set_title("the two threats on the same models", fontsize=10)
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _savefig(fig, out_png)
