"""Plan and config side of the defenses: scoped defense entries and output
processing attached to black-box attack runs only."""

import copy
from pathlib import Path

import pytest
import yaml

from mibench_core import registry
from mibench_core.config import ConfigError, validate
from mibench_core.plan import build

REPO = Path(__file__).resolve().parent.parent


def smoke():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg.update(yaml.safe_load((REPO / "config" / "smoke.yaml").read_text()))
    return cfg


@pytest.fixture
def blackbox(monkeypatch):
    entry = registry.Entry(
        "fake-bb", "attack", "mibench_core.attacks.gmi", "run_attack", "test double", defaults={"queries": 10},
        access="label",
    )  # fmt: skip
    monkeypatch.setitem(registry.REGISTRIES["attack"], "fake-bb", entry)
    return entry


def test_output_defenses_apply_only_to_non_white_box_attacks(blackbox):
    cfg = smoke()
    cfg["attacks"] = [*[a for a in cfg["attacks"] if a["name"] == "gmi"], {"name": "fake-bb"}]
    cfg["output_defenses"] = [{"name": "topk", "k": 1}, {"name": "label_only"}, {"name": "rounding", "label": "r1",
                                                                                  "decimals": 1}]  # fmt: skip
    plan = build(validate(cfg))
    labels = sorted(r.attack for r in plan.runs)
    assert labels == ["fake-bb", "fake-bb_label_only", "fake-bb_r1", "fake-bb_topk1", "gmi"]
    specs = {r.attack: plan.nodes[r.attack_id].spec for r in plan.runs}
    assert "output" not in specs["gmi"] and "output" not in specs["fake-bb"]
    assert specs["fake-bb_topk1"]["output"] == {"name": "topk", "params": {"k": 1}}
    assert specs["fake-bb_r1"]["output"] == {"name": "rounding", "params": {"decimals": 1}}
    # every variant attacks the same trained target
    assert len({plan.nodes[r.attack_id].inputs["target"] for r in plan.runs}) == 1
    assert {r.output_defense for r in plan.runs} == {None, "topk1", "label_only", "r1"}
    # the white-box run keeps the id it has without output processing
    base = build(validate({**smoke(), "attacks": cfg["attacks"]}))
    gmi_ids = {r.attack_id for p in (plan, base) for r in p.runs if r.attack == "gmi"}
    assert len(gmi_ids) == 1


def test_a_prior_that_queries_the_target_sees_the_runs_output_processing():
    cfg = smoke()
    cfg["attacks"] = [a for a in cfg["attacks"] if a["name"] in ("lokt", "brep-mi", "kedmi")]
    cfg["output_defenses"] = [{"name": "topk", "k": 1}, {"name": "rounding", "label": "r1", "decimals": 1}]
    plan = build(validate(cfg))
    prior_of = {r.attack: plan.nodes[plan.nodes[r.attack_id].inputs["prior"]] for r in plan.runs}
    lokt = {k: v for k, v in prior_of.items() if k.startswith("lokt")}
    assert sorted(lokt) == ["lokt", "lokt_r1", "lokt_topk1"]
    assert len({n.id for n in lokt.values()}) == 3  # one T-ACGAN per target and output defense
    assert "output" not in lokt["lokt"].spec
    assert lokt["lokt_topk1"].spec["output"] == {"name": "topk", "params": {"k": 1}}
    assert lokt["lokt_r1"].spec["output"] == {"name": "rounding", "params": {"decimals": 1}}
    assert lokt["lokt_r1"].label.endswith("lokt-tacgan.mcnn.none_r1")
    assert lokt["lokt_r1"].job(plan)["spec"]["output"] == {"name": "rounding", "params": {"decimals": 1}}
    assert {n.inputs["target"] for n in lokt.values()} == {plan.nodes[r.attack_id].inputs["target"] for r in plan.runs}
    assert registry.get("prior", "lokt-tacgan").access == "label"
    # priors that never query the target (gmi-gan) keep one artifact for every run
    assert len({prior_of[a].id for a in ("brep-mi", "brep-mi_topk1", "brep-mi_r1")}) == 1
    # without output processing, the prior keeps the id it has today
    base = build(validate({**smoke(), "attacks": cfg["attacks"]}))
    base_lokt = [plan.nodes[r.attack_id].inputs["prior"] for r in base.runs if r.attack == "lokt"]
    assert base_lokt == [lokt["lokt"].id]


def test_output_defenses_can_be_scoped_to_some_target_defenses(blackbox):
    cfg = smoke()
    cfg["attacks"] = [{"name": "fake-bb"}]
    cfg["defenses"] = [{"name": "none"}, {"name": "mid", "label": "mid1", "beta": 0.01}]
    cfg["output_defenses"] = [{"name": "topk", "k": 1, "defenses": ["none"]}, {"name": "label_only"}]
    plan = build(validate(cfg))
    runs = sorted((r.defense, r.attack) for r in plan.runs)
    assert runs == [("mid1", "fake-bb"), ("mid1", "fake-bb_label_only"),
                    ("none", "fake-bb"), ("none", "fake-bb_label_only"), ("none", "fake-bb_topk1")]  # fmt: skip
    # the scope is not part of the attack spec: scoping does not change ids
    unscoped = build(validate({**cfg, "output_defenses": [{"name": "topk", "k": 1}]}))
    ids = {r.attack_id for p in (plan, unscoped) for r in p.runs if r.attack == "fake-bb_topk1" and r.defense == "none"}
    assert len(ids) == 1
    cfg["output_defenses"] = [{"name": "topk", "defenses": ["dp"]}]
    with pytest.raises(ConfigError, match=r"output_defenses\[0\].defenses.*configured: none, mid1"):
        validate(cfg)


def test_output_defense_names_and_params_are_validated():
    cfg = smoke()
    cfg["output_defenses"] = [{"name": "blur"}]
    with pytest.raises(ConfigError, match=r"output_defenses\[0\].name.*valid: label_only, noise"):
        validate(cfg)
    cfg["output_defenses"] = [{"name": "topk", "kk": 2}]
    with pytest.raises(ConfigError, match="no parameter 'kk'"):
        validate(cfg)


def test_defense_scopes_limit_which_targets_are_defended():
    cfg = smoke()
    cfg["targets"] = [cfg["targets"][0], {**copy.deepcopy(cfg["targets"][0]), "label": "short"}]
    cfg["targets"][1]["train"] = {"epochs": 1}
    cfg["defenses"] = [{"name": "none"}, {"name": "mid", "beta": 0.01, "targets": ["mcnn"]}]
    plan = build(validate(cfg))
    assert sorted({(r.target, r.defense) for r in plan.runs}) == [("mcnn", "mid"), ("mcnn", "none"), ("short", "none")]
    cfg["defenses"][1]["targets"] = ["nope"]
    with pytest.raises(ConfigError, match=r"defenses\[1\].targets.*no target labelled 'nope'"):
        validate(cfg)


def test_defense_strength_enters_the_target_id_but_not_the_evaluation_model():
    cfg = smoke()
    cfg["defenses"] = [
        {"name": "mid", "label": "mid-a", "beta": 0.003},
        {"name": "mid", "label": "mid-b", "beta": 0.01},
    ]
    plan = build(validate(cfg))
    targets = {r.defense: plan.nodes[r.attack_id].inputs["target"] for r in plan.runs}
    assert targets["mid-a"] != targets["mid-b"]
    evals = {n.id for n in plan.of_kind("model") if n.spec["role"] == "evaluation"}
    assert len(evals) == 1


@pytest.mark.parametrize("path", ["config/defenses.yaml", "tests/configs/defenses_tiny.yaml"])
def test_defense_configs_validate_and_plan(path):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg.update(yaml.safe_load((REPO / path).read_text()))
    plan = build(validate(cfg))
    names = {r.defense for r in plan.runs}
    assert len(names) >= 4 and "none" in names


def test_attack_stage_applies_the_output_processing_of_the_spec(tmp_path, monkeypatch):
    import torch
    from whitebox_tiny import write_answers

    from mibench_core import store
    from mibench_core.attacks import common, learning_inversion
    from mibench_core.models.classifiers import MCNN

    tdir, ddir = tmp_path / "target", tmp_path / "data"
    store.save_tensors(tdir / "model.safetensors", MCNN(3, 1, 8, width=4).state_dict())
    store.write_json(
        tdir / "manifest.json",
        {
            "spec": {"arch": "mcnn", "arch_params": {"width": 4}, "defense": {"name": "none", "params": {}}},
            "results": {"num_classes": 3, "channels": 1, "resolution": 8},
        },
    )
    store.save_tensors(ddir / "public.safetensors", {"public_x": torch.zeros(2, 1, 8, 8, dtype=torch.uint8)})
    adir = write_answers(tmp_path / "answers", torch.rand(2, 3), top_k=3)
    seen = []

    def fake_attack(ctx, **params):
        seen.append(ctx.oracle(torch.randn(4, 1, 8, 8)))
        return common.AttackResult(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), {"victim": torch.tensor([0, 1])})

    monkeypatch.setattr(learning_inversion, "run_attack", fake_attack)
    for i, output in enumerate((None, {"name": "label_only", "params": {}})):
        job = {
            "device": "cpu", "seed": 0, "name": "learning-inversion", "outdir": str(tmp_path / f"out{i}"),
            "spec": {"params": {"top_k": 3}, **({"output": output} if output else {})},
            "inputs": {"target": {"dir": str(tdir)}, "data": {"dir": str(ddir)}, "answers": {"dir": str(adir)}},
        }  # fmt: skip
        common.run(job)
    plain, processed = seen
    assert not set(plain.unique().tolist()) <= {0.0, 1.0}  # probabilities
    assert set(processed.unique().tolist()) <= {0.0, 1.0} and torch.equal(processed.sum(1), torch.ones(4))
