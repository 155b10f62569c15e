"""The membership section: validation (errors name the key) and the nodes it plans."""

import copy
from pathlib import Path

import pytest
import yaml

from mibench_core.config import ConfigError, validate
from mibench_core.plan import build

REPO = Path(__file__).resolve().parent.parent


def base() -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    smoke = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    for k, v in smoke.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


def kinds(plan) -> dict[str, list]:
    out: dict[str, list] = {}
    for n in plan.nodes.values():
        out.setdefault(n.kind, []).append(n)
    return out


def test_smoke_plans_every_attack_with_its_references():
    plan = build(validate(base()))
    k = kinds(plan)
    assert len(k["mia"]) == 18 and len(k["scenario"]) == 1 and len(k["mia_eval"]) == 1  # 16 + 2 selection baselines
    assert {"selection-random", "selection-independent"} <= {n.name for n in k["mia"]}
    modes = sorted(n.spec["mode"] for n in k["shadow"])
    assert modes == ["offline", "offline", "online", "online"]
    by_name = {n.name: n for n in k["mia"]}
    assert all(r.startswith("offline") for r in by_name["lira-offline"].inputs if r not in ("target", "candidates"))
    assert {r for r in by_name["lira-online"].inputs if r.startswith("online")} == {"online0", "online1"}
    # attack jobs get candidates (and set-dependent ones scenario sets) without membership, never the scenarios
    cands = {n.name: plan.nodes[n.inputs["candidates"]] for n in k["mia"]}
    assert cands["blindmi-diff"].spec["sets"] and not cands["loss-threshold"].spec["sets"]
    assert "scenarios" in cands["blindmi-diff"].inputs and "scenarios" not in cands["loss-threshold"].inputs
    assert all(not {"data", "scenarios"} & set(n.inputs) for n in k["mia"])
    assert "offline0" not in by_name["blindmi-diff"].inputs
    ev = k["mia_eval"][0]
    assert {ev.inputs[r] for r in ev.inputs if r.startswith("mia")} == {n.id for n in k["mia"]}
    target = next(n for n in plan.nodes.values() if n.kind == "model" and n.spec["role"] == "target")
    shadow = k["shadow"][0]
    for key in ("arch", "arch_params", "train", "defense"):
        assert shadow.spec[key] == target.spec[key]  # the shadow imitates the target
    assert len({n.spec["pool"]["seed"] for n in k["mia"] + k["shadow"]}) == 1  # one pool per dataset


def test_no_online_references_without_an_online_attack_and_none_when_disabled():
    cfg = base()
    cfg["membership"]["attacks"] = [{"name": "loss-threshold"}, {"name": "lira-offline"}]
    k = kinds(build(validate(cfg)))
    assert {n.spec["mode"] for n in k["shadow"]} == {"offline"} and len(k["mia"]) == 4  # with the baselines
    cfg["membership"]["selection_baselines"] = False
    assert len(kinds(build(validate(cfg)))["mia"]) == 2
    cfg["membership"]["enabled"] = False
    assert "mia" not in kinds(build(validate(cfg)))
    del cfg["membership"]
    assert "shadow" not in kinds(build(validate(cfg)))


def test_changing_an_attack_parameter_reruns_that_attack_and_the_evaluation_only():
    cfg = base()
    a = build(validate(cfg))
    cfg2 = copy.deepcopy(cfg)
    cfg2["membership"]["attacks"][1] = {"name": "loss-threshold", "rule": "shadow-fit"}
    b = build(validate(cfg2))
    changed = {n.label for n in a.nodes.values()} - {n.label for n in b.nodes.values()}
    ids_a, ids_b = {n.label: n.id for n in a.nodes.values()}, {n.label: n.id for n in b.nodes.values()}
    assert not changed
    diff = {label for label in ids_a if ids_a[label] != ids_b[label]}
    assert diff == {"sklearn-digits.mcnn.none.loss-threshold", "sklearn-digits.mcnn.none.membership"}


def test_changing_the_scenarios_reruns_scenarios_set_dependent_attacks_and_evaluation():
    cfg = base()
    a = build(validate(cfg))
    cfg["membership"]["scenarios"]["grid"]["ratios"] = [0.0, 0.4]
    b = build(validate(cfg))
    ids_a, ids_b = {n.label: n.id for n in a.nodes.values()}, {n.label: n.id for n in b.nodes.values()}
    diff = {label.rsplit(".", 1)[-1] for label in ids_a if ids_a[label] != ids_b[label]}
    assert diff == {"scenarios", "candidates+sets", "blindmi-diff", "shapley", "membership"}


def test_shadows_follow_the_defense_and_output_processing_adds_runs():
    cfg = base()
    cfg["defenses"] = [{"name": "none"}, {"name": "mid", "beta": 0.01}]
    cfg["output_defenses"] = [{"name": "rounding", "decimals": 1, "defenses": ["none"]}]
    cfg["membership"]["attacks"] = [{"name": "loss-threshold"}, {"name": "label-only"}]
    cfg["membership"]["selection_baselines"] = False
    k = kinds(build(validate(cfg)))
    assert len(k["mia_eval"]) == 2
    assert {n.spec["defense"]["name"] for n in k["shadow"]} == {"none", "mid"}
    labels = sorted(n.label.split(".", 2)[2] for n in k["mia"])
    assert labels == ["mid.label-only", "mid.loss-threshold", "none.label-only", "none.label-only_rounding1",
                      "none.loss-threshold", "none.loss-threshold_rounding1"]  # fmt: skip
    cfg["membership"]["shadows"]["defense"] = "none"
    cfg["membership"]["defenses"] = ["mid"]
    k = kinds(build(validate(cfg)))
    assert {n.spec["defense"]["name"] for n in k["shadow"]} == {"none"} and len(k["mia_eval"]) == 1


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda m: m["attacks"].append({"name": "lira-of"}), "membership.attacks[16].name"),
        (lambda m: m["attacks"].append({"name": "ppv", "noise": 1}), "membership.attacks[16]"),
        (lambda m: m["attacks"].append({"name": "ppv"}), "membership.attacks[16].label"),
        (lambda m: m["shadows"].update(online=1), "membership.shadows.online"),
        (lambda m: m["shadows"].update(offline=0), "membership.shadows.offline"),
        (lambda m: m["shadows"].update(augmentations=1), "membership.attacks[12].augmentations"),
        (lambda m: m["scenarios"]["grid"].pop("ratios"), "membership.scenarios.grid"),
        (lambda m: m["scenarios"]["grid"].update(levels=[2.9]), "membership.scenarios.grid.levels"),
        (lambda m: m["scenarios"].update(mode="relative"), "membership.scenarios.mode"),
        (lambda m: m.update(defenses=["dp"]), "membership.defenses"),
        (lambda m: m["pool"].update(members=1), "membership.pool.members"),
        (lambda m: m.update(attacks=[]), "membership.attacks"),
        (lambda m: m.update(defense_attack="best-of-four"), "membership.defense_attack"),
        (lambda m: m["scenarios"]["grid"].update(ratios=[0.2, 0.4]), "membership.scenarios.grid.ratios"),
    ],
)
def test_bad_membership_config_names_the_key(edit, key):
    cfg = base()
    edit(cfg["membership"])
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        validate(cfg)


def test_paper_defaults_are_merged_under_the_config():
    m = validate(base())["membership"]
    ppv = next(a for a in m["attacks"] if a["name"] == "ppv")
    assert ppv["params"] == {"noise_std": 0.02, "noise_samples": 8, "shadows": 1, "samples": 40, "min_fraction": 0.01}
    assert m["shadows"]["defense"] == "same" and m["scenarios"]["batch_size"] == 10
    assert m["defense_attack"] == "lira-online"  # the defense table's attack, fixed by the config


def test_every_config_in_the_repository_validates_with_its_membership_section():
    for path in ("config/membership.yaml", "config/defenses.yaml", "config/investigations.yaml"):
        cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        extra = yaml.safe_load((REPO / path).read_text())
        for k, v in extra.items():
            cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
        build(validate(cfg))
