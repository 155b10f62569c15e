"""Replicates in the plan: varied stages get new ids, everything else is shared; validation names the key."""

import copy
from pathlib import Path

import pytest
import yaml

from mibench_core.config import ConfigError, validate
from mibench_core.plan import build

REPO = Path(__file__).resolve().parent.parent


def raw() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def plan_with(**extra):
    c = raw()
    c.update(extra)
    return build(validate(c))


def split_ids(p):
    """The split-inference track's nodes and its targets (the track is not replicated)."""
    split = {n.id for n in p.nodes.values() if n.kind in ("split", "split-metric")}
    return split | {p.nodes[i].inputs["target"] for i in split}


def ids(p, kind, role=None):
    nodes = [n for n in p.nodes.values() if n.kind == kind and (role is None or n.spec.get("role") == role)]
    return {n.id for n in nodes} - split_ids(p)


def test_replicate_artifacts_differ_in_id_and_share_the_unvaried_ones():
    plain = plan_with()
    rep = plan_with(replicates={"seeds": [0, 1, 2]})
    # data and the evaluation model never vary: the plain run's artifacts
    assert ids(rep, "data") == ids(plain, "data") and len(ids(rep, "data")) == 1
    assert ids(rep, "model", "evaluation") == ids(plain, "model", "evaluation")
    for kind, role in (("model", "target"), ("prior", None), ("attack", None), ("metric", None)):
        assert len(ids(rep, kind, role)) == 3 * len(ids(plain, kind, role)), kind
        # seed 0 is the config's seed: that replicate is the plain run, the other two are new
        assert ids(plain, kind, role) <= ids(rep, kind, role), kind
    assert split_ids(rep) == split_ids(plain) and split_ids(plain)  # shared with the plain run
    assert len(rep.runs) == 3 * len(plain.runs) and len({r.label for r in rep.runs}) == len(rep.runs)
    gmi = [r for r in rep.runs if r.attack == "gmi"]
    assert [r.label for r in gmi] == [f"fashion-mnist.mcnn.none.gmi.seed{s}" for s in (0, 1, 2)]
    assert [r.replicate_seed for r in gmi] == [0, 1, 2]
    seeds = {rep.nodes[r.attack_id].seed for r in gmi}
    assert len(seeds) == 3  # different random streams


def test_only_the_varied_stages_carry_the_seed_and_downstream_differs_through_inputs():
    plain = plan_with()
    rep = plan_with(replicates={"seeds": [0, 1], "vary": ["attack"]})
    # targets and priors are the plain run's, shared by both replicates
    assert ids(rep, "model") == ids(plain, "model") and ids(rep, "prior") == ids(plain, "prior")
    for n in rep.nodes.values():
        assert ("replicate" in n.spec) == (n.kind == "attack" and n.label.endswith(".seed1")), n.label
    rep_t = plan_with(replicates={"seeds": [0, 1], "vary": ["target"]})
    kinds_with_key = {n.kind for n in rep_t.nodes.values() if "replicate" in n.spec}
    assert kinds_with_key == {"model"}
    attacks = [n for n in rep_t.nodes.values() if n.kind == "attack"]
    assert len(attacks) == 2 * len(plain.runs) and all(n.label.endswith((".seed0", ".seed1")) for n in attacks)
    # the GMI GAN does not see the target: shared; KEDMI's GAN is trained with it: one per replicate
    priors = {n.label for n in rep_t.nodes.values() if n.kind == "prior"}
    assert "fashion-mnist.gmi-gan" in priors and "fashion-mnist.kedmi-gan.mcnn.none.seed1" in priors


def test_the_replicate_of_the_config_seed_is_the_plain_run():
    plain, rep = plan_with(), plan_with(replicates={"seeds": [0, 1, 2]})
    assert set(plain.nodes) <= set(rep.nodes)  # a finished plain run is replicate 0, nothing of it reruns
    by_id = {r.attack_id: r for r in rep.runs}
    assert all(by_id[r.attack_id].replicate_seed == 0 for r in plain.runs)
    assert all("replicate" not in rep.nodes[r.attack_id].spec for r in rep.runs if r.replicate_seed == 0)
    # with another config seed no replicate is the plain run of seed 0, and seed 1's is
    plain1 = plan_with(seed=1)
    rep1 = plan_with(seed=1, replicates={"seeds": [0, 1]})
    assert set(plain1.nodes) <= set(rep1.nodes) and not ids(plain, "attack") & ids(rep1, "attack")


def test_a_run_no_replicate_changes_runs_once():
    rep = plan_with(replicates={"seeds": [0, 1], "vary": ["prior"]})
    deepinv = [r for r in rep.runs if r.attack == "deepinversion"]  # no prior: nothing of it varies
    assert [(r.label, r.replicate_seed) for r in deepinv] == [("fashion-mnist.mcnn.none.deepinversion", None)]
    assert len([r for r in rep.runs if r.attack == "gmi"]) == 2


def test_without_replicates_no_spec_has_a_seed():
    assert all("replicate" not in n.spec for n in plan_with().nodes.values())
    assert all(r.replicate_seed is None for r in plan_with().runs)


def test_interval_settings_enter_the_metrics_ids_but_not_their_seeds():
    a = plan_with()
    b = plan_with(statistics={"bootstrap": 200})
    assert ids(a, "attack") == ids(b, "attack") and ids(a, "metric") != ids(b, "metric")
    seeds = {r.label: a.nodes[r.metric_ids[0]].seed for r in a.runs}
    assert seeds == {r.label: b.nodes[r.metric_ids[0]].seed for r in b.runs}
    # ranking settings are the report's: no artifact changes
    assert set(a.nodes) == set(plan_with(statistics={"min_seeds": 5, "alpha": 0.01}).nodes)


@pytest.mark.parametrize(
    "replicates, message",
    [
        ({"seeds": [0, 0]}, "replicates.seeds"),
        ({"seeds": []}, "replicates.seeds"),
        ({"vary": ["attack"]}, "'seeds' is a required property"),
        ({"seeds": [1], "vary": ["data"]}, "replicates.vary[0]': 'data' never varies"),
        ({"seeds": [1], "vary": ["attack", "evaluation"]}, "replicates.vary[1]': 'evaluation' never varies"),
        ({"seeds": [1], "vary": ["prior", "prior"]}, "replicates.vary"),
        ({"seeds": [-1]}, "replicates.seeds[0]"),
    ],
)
def test_bad_replicates_are_errors_naming_the_key(replicates, message):
    c = raw()
    c["replicates"] = replicates
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(c)


def test_rank_by_names_a_declared_value_with_a_direction():
    c = raw()
    c["statistics"] = {"rank_by": ["acc1", "density"]}
    with pytest.raises(ConfigError, match=r"statistics.rank_by\[1\]'.*no direction"):
        validate(c)
    c["statistics"] = {"rank_by": ["accx"]}
    with pytest.raises(ConfigError, match=r"statistics.rank_by\[0\]'.*no metric reports 'accx'"):
        validate(c)
    c["statistics"] = {"rank_by": ["acc1.strict"]}  # a labelled copy of a metric entry
    assert validate(copy.deepcopy(c))["statistics"]["rank_by"] == ["acc1.strict"]
