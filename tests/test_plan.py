"""Content ids: what changes when, and that planning needs no torch."""

import copy
import subprocess
import sys
from pathlib import Path

import yaml

from mibench_core import plan as plan_mod
from mibench_core.config import validate
from mibench_core.plan import build

REPO = Path(__file__).resolve().parent.parent


def cfg() -> dict:
    return validate(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))


def ids_by_kind(p) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for n in p.nodes.values():
        out.setdefault(n.kind, set()).add(n.id)
    return out


def test_ids_are_stable_and_readable():
    a, b = build(cfg()), build(cfg())
    assert list(a.nodes) == list(b.nodes)
    for nid, node in a.nodes.items():
        assert nid.startswith(node.name + "-") and len(nid.split("-")[-1]) == plan_mod.HASH_LEN


def run_ids(p) -> dict[str, tuple[str, str]]:
    return {r.label: (r.attack_id, r.metric_ids[0]) for r in p.runs}


def test_attack_hyperparameter_change_recomputes_attack_and_metrics_only():
    base_plan = build(cfg())
    base = ids_by_kind(base_plan)
    c = cfg()
    assert c["attacks"][0]["name"] == "gmi"
    c["attacks"][0]["params"]["lr"] = 0.01
    new_plan = build(c)
    new = ids_by_kind(new_plan)
    for kind in ("data", "model", "prior"):
        assert new[kind] == base[kind]
    before, after = run_ids(base_plan), run_ids(new_plan)
    for label in before:
        changed = label.endswith(".gmi")
        assert (before[label][0] != after[label][0]) == changed, label
        assert (before[label][1] != after[label][1]) == changed, label


def test_equivalent_numbers_hash_the_same():
    c = cfg()
    c["attacks"][0]["params"]["lambda_iden"] = 100  # int instead of 100.0
    assert ids_by_kind(build(c)) == ids_by_kind(build(cfg()))


def test_editing_attack_code_recomputes_attacks_not_models(monkeypatch):
    base = ids_by_kind(build(cfg()))
    real = plan_mod.source_hash

    def edited(rel):
        return "edited" if rel == "attacks/gmi.py" else real(rel)

    before = run_ids(build(cfg()))
    monkeypatch.setattr(plan_mod, "source_hash", edited)
    new = ids_by_kind(build(cfg()))
    for kind in ("data", "model", "prior"):
        assert new[kind] == base[kind]
    after = run_ids(build(cfg()))
    assert before[next(k for k in before if k.endswith(".gmi"))] != after[next(k for k in after if k.endswith(".gmi"))]
    assert any(before[k] == after[k] for k in before)  # attacks in other modules keep their ids


def test_editing_training_code_recomputes_models_and_downstream_not_data(monkeypatch):
    base = ids_by_kind(build(cfg()))
    real = plan_mod.source_hash
    monkeypatch.setattr(plan_mod, "source_hash", lambda rel: "x" if rel == "models/train.py" else real(rel))
    new = ids_by_kind(build(cfg()))
    assert new["data"] == base["data"]
    gmi_gan = {i for i in base["prior"] if i.startswith("gmi-gan-")}
    assert gmi_gan <= new["prior"]  # the GMI GAN does not depend on the target
    assert new["model"].isdisjoint(base["model"])
    assert new["attack"].isdisjoint(base["attack"])


def test_seeds_ignore_code_fingerprints(monkeypatch):
    base = {n.name: n.seed for n in build(cfg()).nodes.values()}
    real = plan_mod.source_hash
    monkeypatch.setattr(plan_mod, "source_hash", lambda rel: "x" + real(rel))
    assert {n.name: n.seed for n in build(cfg()).nodes.values()} == base


def test_data_root_is_not_part_of_the_identity():
    c = cfg()
    c["datasets"][0]["root"] = "/somewhere/else"
    assert ids_by_kind(build(c)) == ids_by_kind(build(cfg()))


def test_evaluation_model_is_never_the_target():
    p = build(cfg())
    for run in p.runs:
        for mid in run.metric_ids:
            inputs = p.nodes[mid].inputs
            assert inputs["evaluation"] != inputs["target"]


def test_planning_imports_no_torch():
    code = (
        "import sys, yaml; sys.path.insert(0, {!r})\n"
        "from mibench_core.plan import from_config\n"
        "from_config(yaml.safe_load(open({!r})))\n"
        "assert 'torch' not in sys.modules, 'plan imported torch'\n"
    ).format(str(REPO), str(REPO / "config" / "config.yaml"))
    subprocess.run([sys.executable, "-c", code], check=True)


def test_job_description_round_trips_through_json():
    import json

    p = build(cfg())
    for node in p.nodes.values():
        job = json.loads(json.dumps(node.job(p)))
        assert job["id"] == node.id
        assert job["outdir"].endswith(node.id)
        for inp in job["inputs"].values():
            assert inp["id"] in p.nodes


def test_plan_does_not_share_mutable_state_with_config():
    c = cfg()
    snapshot = copy.deepcopy(c)
    build(c)
    assert c == snapshot


def test_providing_weights_recomputes_only_the_metrics(tmp_path, monkeypatch):
    from mibench_core.weights import KNOWN

    monkeypatch.setenv("MIBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    before = {n.label: n.id for n in build(cfg()).nodes.values()}
    (tmp_path / KNOWN["fid-inception"].filename).write_bytes(b"weights")
    after = {n.label: n.id for n in build(cfg()).nodes.values()}
    changed = {label for label in before if before[label] != after[label]}
    assert changed and all(label.endswith(".metrics") for label in changed)
