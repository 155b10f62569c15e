"""The membership stages end to end, in process, on tiny data: shadows -> scenarios -> attacks -> evaluation ->
tables and figures; and what a label-only attack can see of the target."""

import json

import numpy as np
import pandas as pd
import pytest

from mibench_core import registry, store
from mibench_core.cli import run_job
from mibench_core.config import validate
from mibench_core.membership import report
from tests.test_membership_plan import base

ATTACKS = [
    {"name": "loss-threshold"},
    {"name": "label-only", "samples": 20},
    {"name": "blindmi-diff"},
    {"name": "lira-online", "fix_variance": True},
    {"name": "rmia-offline", "population_samples": 30},
    {"name": "rmia-online", "population_samples": 30},
    {"name": "shapley", "samples": 20},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("membership")
    cfg = base()
    cfg["results_dir"] = str(root / "results")
    cfg["datasets"][0]["resolution"] = 8
    cfg["targets"][0] = {"arch": "mcnn", "arch_params": {"width": 4}, "train": {"epochs": 2, "batch_size": 32}}
    cfg["output_defenses"] = [{"name": "label_only", "defenses": ["none"]}]
    cfg["membership"]["attacks"] = ATTACKS
    from mibench_core.plan import build

    plan = build(validate(cfg))
    ev = next(n for n in plan.nodes.values() if n.kind == "mia_eval")
    done = set()

    def run(nid):
        if nid in done:
            return
        for dep in plan.nodes[nid].inputs.values():
            run(dep)
        run_job(plan.nodes[nid].job(plan))
        done.add(nid)

    run(ev.id)
    return plan, ev, root


def test_every_attack_run_is_evaluated_on_every_scenario(tiny):
    plan, ev, root = tiny
    out = store.read_json(plan.path(ev.id))
    scen_dir = plan.nodes[plan.nodes[ev.id].inputs["scenarios"]].directory(plan.results_dir)
    scenarios = store.read_manifest(scen_dir)["results"]["scenarios"]
    runs = [r for r in ev.inputs if r.startswith("mia")]
    # each attack and the two selection baselines once as is and once under label-only output processing
    assert len(runs) == 2 * (len(ATTACKS) + 2)
    assert len(scenarios) == 5 and len(out["rows"]) == len(runs) * 5  # natural + 2 distributions x ratios 0, 0.2
    for row in out["rows"]:
        for key in ("auc", "tpr_at_0.1pct_fpr", "advantage", "precision", "recall", "f1", "fpr", "fnr"):
            v = row[key]
            assert (v is None and key in row["missing"]) or (v is not None and -1 <= v <= 1), (row["mia_id"], key)
    assert len(out["roc"]) == len(runs)
    for mid in (plan.nodes[ev.id].inputs[r] for r in runs):
        m = store.read_manifest(plan.nodes[mid].directory(plan.results_dir))
        if plan.nodes[mid].name.startswith("selection-"):
            assert m["results"]["queries"] == 0  # a selection baseline never asks the target
        else:
            assert m["results"]["queries"] >= m["results"]["n_candidates"]  # every candidate queried at least once


def test_report_tables_and_figures(tiny, tmp_path):
    plan, ev, root = tiny
    out = tmp_path / "membership.parquet"
    labels = {n.id: n.label for n in plan.of_kind("mia")}
    report.write_table([plan.nodes[ev.id].directory(plan.results_dir)], str(out), labels)
    df = pd.read_parquet(out)
    assert set(df["attack_name"]) == {a["name"] for a in ATTACKS} | {"selection-random", "selection-independent"}
    # the selection baseline in every scenario's rows, and every attack's advantage over it beside its own
    for (sid, _out), g in df.groupby(["scenario", "output_defense"]):
        assert {"selection-random", "selection-independent"} <= set(g["attack_name"]), sid
        base = g[g["attack_name"] == "selection-independent"]["advantage"].iloc[0]
        for _, r in g.iterrows():
            assert r["selection_advantage"] == pytest.approx(base)
            assert r["advantage_over_selection"] == pytest.approx(r["advantage"] - base)
    assert set(df["output_defense"]) == {"none", "label_only"}
    for col in (
        "scenario",
        "scenario.distribution",
        "scenario.ratio_value",
        "auc",
        "tpr_at_1pct_fpr",
        "queries",
        "mia_wall_s",
        "mia_id",
        "target_id",
        "mia.params.samples",
        "target.train.epochs",
        "target_test_acc",
    ):
        assert col in df.columns, col
    report.markdown_report(str(out), str(tmp_path / "m.md"))
    text = (tmp_path / "m.md").read_text()
    assert "ES00" in text and "Advantage over the selection baseline" in text and "[95% CI]" in text
    report.roc_figure(plan.nodes[ev.id].directory(plan.results_dir), str(tmp_path / "roc.png"), "t", labels)
    report.heatmap(str(out), ev.label.rsplit(".", 1)[0], str(tmp_path / "heat.png"))
    attacks = pd.DataFrame([
        {"dataset": "sklearn-digits", "target": "mcnn", "defense": "none", "attack": "gmi", "attack_name": "gmi",
         "acc1": 0.5, "output_defense": "none"},
        {"dataset": "sklearn-digits", "target": "mcnn", "defense": "none", "attack": "rlb-mi",
         "attack_name": "rlb-mi", "acc1": 0.3, "output_defense": "none"},
    ])  # fmt: skip
    attacks.to_parquet(tmp_path / "attacks.parquet")
    paths = [str(tmp_path / f) for f in ("threats.parquet", "threats.md", "threats.tex", "threats.png")]
    report.defense_threats(str(tmp_path / "attacks.parquet"), str(out), *paths)
    rows = pd.read_parquet(paths[0])
    assert rows.loc[0, "inversion_gmi_acc1"] == 0.5 and rows.loc[0, "inversion_bb_acc1"] == 0.3
    assert rows.loc[0, "mia_attack"] == "lira-online"  # the config's default, fixed before any number is seen
    nat = df[(df["scenario"] == "ES00") & (df["output_defense"] == "none")]
    lira = nat[nat["attack"] == "lira-online"].iloc[0]
    assert (
        rows.loc[0, "mia_auc"] == pytest.approx(lira["auc"]) and rows.loc[0, "mia_tp"] == lira["tpr_at_0.1pct_fpr_tp"]
    )
    # another attack reporting a higher TPR does not change the attack the table reports
    boosted = df.copy()
    boosted.loc[boosted["attack_name"] == "rmia-online", ["tpr_at_0.1pct_fpr", "auc"]] = 1.0
    boosted.to_parquet(tmp_path / "boosted.parquet")
    again = report.threat_rows(str(tmp_path / "attacks.parquet"), str(tmp_path / "boosted.parquet"))
    assert again[0]["mia_attack"] == "lira-online" and again[0]["mia_auc"] == pytest.approx(lira["auc"])
    assert "(95% CI)" in open(paths[1]).read()
    for p in (paths[3], str(tmp_path / "roc.png"), str(tmp_path / "heat.png")):
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "GMI Acc@1" in open(paths[1]).read() and "\\begin{tabular}" in open(paths[2]).read()


def test_label_only_attacks_get_labels_and_nothing_else(tiny, monkeypatch):
    plan, ev, root = tiny
    node = next(n for n in plan.nodes.values() if n.kind == "mia" and n.name == "label-only" and "output" not in n.spec)
    seen = {}

    def spy(ctx, **params):
        seen["ctx"] = ctx
        seen["answers"] = ctx.target_answers(0)
        seen["direct"] = ctx.oracle(ctx.candidates_x[:3].float().div(127.5).sub(1))
        raise RuntimeError("stop")

    entry = registry.get("mia", "label-only")
    module = __import__(entry.module, fromlist=[entry.call])
    monkeypatch.setattr(module, entry.call, spy)
    job = node.job(plan)
    job["outdir"] = str(root / "spy")
    with pytest.raises(RuntimeError, match="stop"):
        run_job(job)
    ctx = seen["ctx"]
    assert ctx.access == "label" and ctx.oracle.access == "label"
    assert seen["answers"].dtype == np.int64 and seen["answers"].ndim == 1  # labels, no probability vector
    assert seen["direct"].dtype.is_floating_point is False and seen["direct"].shape == (3,)
    assert not any(hasattr(ctx.oracle, a) for a in ("model", "target", "net", "_model"))
    assert not hasattr(ctx, "target") and not hasattr(ctx, "cand_member")  # neither the model nor membership


def test_runs_record_their_access_level(tiny):
    plan, ev, root = tiny
    for n in plan.nodes.values():
        if n.kind == "mia":
            m = store.read_manifest(n.directory(plan.results_dir))
            assert m["results"]["access"] == registry.get("mia", n.name).access
            if not n.name.startswith("selection-"):  # the baselines never ask the target
                assert json.loads(json.dumps(m["results"]))["queries"] > 0


def test_scenarios_are_listed_by_number():
    ids = ["ES10", "ES100", "ES02", "ES00", "ES9", "custom", "ES101", "ES11"]
    assert report.scenario_order(ids) == ["ES00", "ES02", "ES9", "ES10", "ES11", "ES100", "ES101", "custom"]


def test_defense_threats_table_states_the_whole_dp_guarantee(tmp_path):
    guarantee = "(eps=1.87, delta=1e-05), rdp accountant, q=0.01266, 395 steps"
    base = {"dataset": "fm", "target": "mcnn", "output_defense": "none", "scenario": report.NATURAL,
            "target_test_acc": 0.8, "target_train_acc": 0.85, "attack": "loss-threshold",
            "attack_name": "loss-threshold", "auc": 0.55, report.LOW_FPR: 0.01}  # fmt: skip
    mem = pd.DataFrame([
        {**base, "defense": "none", "target.defense.name": "none"},
        {**base, "defense": "dp", "target.defense.name": "dp-sgd", "target_defense.epsilon": 1.87,
         "target_defense.guarantee": guarantee},
    ])  # fmt: skip
    mem.to_parquet(tmp_path / "m.parquet")
    pd.DataFrame([{"dataset": "fm", "target": "mcnn", "defense": "dp", "attack": "gmi", "attack_name": "gmi",
                   "acc1": 0.5, "output_defense": "none"}]).to_parquet(tmp_path / "a.parquet")  # fmt: skip
    paths = [str(tmp_path / f) for f in ("t.parquet", "t.md", "t.tex", "t.png")]
    report.defense_threats(str(tmp_path / "a.parquet"), str(tmp_path / "m.parquet"), *paths)
    text = open(paths[1]).read()
    assert "| DP guarantee |" in text and f"| {guarantee} |" in text
    assert text.count("| n/a |") == 1  # the undefended row has no guarantee to state


def test_reference_space_scenarios_never_read_the_attacked_target(tiny, tmp_path):
    plan, ev, root = tiny
    node = plan.nodes[plan.nodes[ev.id].inputs["scenarios"]]
    job = node.job(plan)
    job["spec"] = {**job["spec"], "scenarios": {**job["spec"]["scenarios"], "space": "reference"}}
    job["inputs"]["target"] = {**job["inputs"]["target"], "dir": str(tmp_path / "no-target-here")}
    job["outdir"] = str(tmp_path / "scen")
    from mibench_core.membership import scenarios

    (tmp_path / "scen").mkdir()
    _, info, _ = scenarios.run(job)
    sel = {r["id"]: r["selection"] for r in info["scenarios"]}
    assert sel["ES00"] == "none (random)" and {v for k, v in sel.items() if k != "ES00"} == {"reference model"}
    seed_info = store.read_manifest(node.directory(plan.results_dir))["results"]["scenarios"]
    assert {r["selection"] for r in seed_info if r["id"] != "ES00"} == {"seed"}
