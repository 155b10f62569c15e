"""Attackers cannot touch private data: the plan's wiring, clear errors, and the per-sample path.

Priors and attacks are the attacker's jobs. They get the public view of the
data, the target (or its oracle) and, for a per-sample attack, the target's
answers on its victims; the data artifact and the victims artifact are read
only by trusted jobs (models, metrics, the views themselves).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from mibench_core import registry, store
from mibench_core.attacks.contract import AttackContext, VictimAnswers
from mibench_core.cli import _load_config
from mibench_core.data.views import PrivateDataError, PublicData, load_public, select_victims
from mibench_core.plan import ATTACKER_KINDS, PRIVATE_KINDS, Node, build

REPO = Path(__file__).resolve().parent.parent
CONFIGS = [[], ["config/smoke.yaml"], ["config/paper-celeba64.yaml"], ["config/defenses.yaml"],
           ["config/investigations.yaml"]]  # fmt: skip


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


@pytest.mark.parametrize("configs", CONFIGS, ids=lambda c: c[0].split("/")[-1] if c else "default")
def test_no_attacker_side_job_is_given_a_private_file(configs):
    plan = build(_load_config([str(REPO / c) for c in configs], preflight=False))
    private = [n for n in plan.nodes.values() if n.kind in PRIVATE_KINDS]
    private_dirs = {n.directory(plan.results_dir) for n in private}
    private_files = {plan.path(n.id) for n in private}
    attacker_side = [n for n in plan.nodes.values() if n.kind in ATTACKER_KINDS and n.kind not in ("mia", "shadow")]
    assert attacker_side and private
    for node in attacker_side:
        kinds = {role: plan.nodes[i].kind for role, i in node.inputs.items()}
        assert not set(kinds.values()) & set(PRIVATE_KINDS), (node.label, kinds)
        assert plan.nodes[node.inputs["data"]].kind == "public", node.label
        assert not set(plan.input_files(node.id)) & private_files, node.label
        job = json.loads(json.dumps(node.job(plan)))
        for text in _strings(job):
            assert not any(text.startswith(d) for d in private_dirs), (node.label, text)
            assert not any(n.id in text for n in private), (node.label, text)
        per_sample = node.kind == "attack" and registry.get("attack", node.name).victims
        assert ("answers" in node.inputs) == per_sample, node.label
    # the trusted side still reads what it scores against
    for node in plan.of_kind("metric"):
        assert plan.nodes[node.inputs["data"]].kind == "data"
        attack = plan.nodes[node.inputs["attack"]]
        if "answers" in attack.inputs:
            assert node.inputs["victims"] == plan.nodes[attack.inputs["answers"]].inputs["victims"]


MEMBERSHIP_CONFIGS = sorted(
    str(p.relative_to(REPO))
    for p in (REPO / "config").glob("*.yaml")
    if ((yaml.safe_load(p.read_text()) or {}).get("membership") or {}).get("enabled", True)
    and "membership" in (yaml.safe_load(p.read_text()) or {})
)


def test_every_membership_config_is_walked():
    assert {"config/membership.yaml", "config/smoke.yaml", "config/membership-tabular.yaml"} <= set(MEMBERSHIP_CONFIGS)


@pytest.mark.parametrize("config", MEMBERSHIP_CONFIGS)
def test_no_membership_attack_job_is_given_membership_or_private_data(config):
    plan = build(_load_config([str(REPO / config)], preflight=False))
    mias = plan.of_kind("mia")
    assert mias, config
    private = [n for n in plan.nodes.values() if n.kind in PRIVATE_KINDS]
    private_dirs = {n.directory(plan.results_dir) for n in private}
    private_files = {plan.path(n.id) for n in private}
    assert {"data", "scenario"} <= {n.kind for n in private}
    for node in mias + plan.of_kind("shadow"):  # attacks and the attacker's reference models
        kinds = {role: plan.nodes[i].kind for role, i in node.inputs.items()}
        assert not set(kinds.values()) & set(PRIVATE_KINDS), (node.label, kinds)
        assert kinds["candidates"] == "mia_input", node.label
        assert node.kind == "shadow" or kinds["target"] == "model", node.label
        assert not set(plan.input_files(node.id)) & private_files, node.label
        job = json.loads(json.dumps(node.job(plan)))
        for text in _strings(job):
            assert not any(text.startswith(d) for d in private_dirs), (node.label, text)
    # the evaluation alone reads membership
    readers = {n.kind for n in plan.nodes.values() for i in n.inputs.values() if plan.nodes[i].kind == "scenario"}
    assert "mia_eval" in readers and readers <= {"mia_eval", "mia_input"}  # mia_input drops the membership


def test_the_plan_refuses_to_give_a_membership_attack_the_scenarios():
    plan = build(_load_config([str(REPO / "config/smoke.yaml")], preflight=False))
    scen = plan.of_kind("scenario")[0]
    mia = plan.of_kind("mia")[0]
    node = Node("mia", mia.name, "x", mia.spec, {**mia.inputs, "scenarios": scen.id}, mia.files)
    with pytest.raises(ValueError, match=r"would read private artifacts \{'scenarios': 'scenario'\}"):
        plan.add(node)


def test_the_plan_refuses_to_give_an_attack_private_data():
    plan = build(_load_config([str(REPO / "config/smoke.yaml")], preflight=False))
    data_id = next(n.id for n in plan.of_kind("data"))
    attack = plan.of_kind("attack")[0]
    node = Node("attack", attack.name, "x", attack.spec, {**attack.inputs, "data": data_id}, attack.files)
    with pytest.raises(ValueError, match=r"would read private artifacts \{'data': 'data'\}"):
        plan.add(node)


def test_views_keep_the_seeds_of_what_reads_them():
    """The public view shares its data artifact's semantic hash; answers add nothing to an attack's."""
    plan = build(_load_config([str(REPO / "config/smoke.yaml")], preflight=False))
    public = plan.of_kind("public")[0]
    assert public.semantic == plan.nodes[public.inputs["data"]].semantic and public.id != public.inputs["data"]
    attack = next(n for n in plan.of_kind("attack") if "answers" in n.inputs)
    assert attack.derived == ("answers",)


# --- clear errors for code that reaches for private data ---------------------------------------


def test_the_old_context_api_names_what_to_use_instead(tmp_path):
    store.save_tensors(tmp_path / "public.safetensors", {"public_x": torch.zeros(3, 1, 8, 8, dtype=torch.uint8)})
    ctx = AttackContext(3, 1, 8, [0, 1, 2], torch.device("cpu"), torch.Generator(), public_dir=str(tmp_path))
    assert ctx.public_images().shape == (3, 1, 8, 8)
    for reach in (lambda: ctx.private_sample_indices(2), lambda: ctx.victim_outputs(torch.arange(2)),
                  lambda: ctx.data_dir):  # fmt: skip
        with pytest.raises(PrivateDataError, match=r"ctx\.public_images\(\).*ctx\.victims"):
            reach()
    public = load_public(tmp_path)
    assert isinstance(public, PublicData) and set(public) == {"public_x"}
    with pytest.raises(PrivateDataError, match=r"'private_train_x' is not in the public view.*\['public_x'\]"):
        public["private_train_x"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from whitebox_tiny import build_data, build_target, public_view

    root = tmp_path_factory.mktemp("private")
    data = build_data(root)
    return root, data, build_target(root, data), public_view(data)


def test_an_attack_reaching_for_private_data_fails_through_the_stage(tiny, monkeypatch):
    from whitebox_tiny import run_attack_job

    from mibench_core.attacks import deepinversion

    root, data, target, _ = tiny

    def nosy(ctx, **params):
        return ctx.private_sample_indices(2)

    monkeypatch.setattr(deepinversion, "run_attack", nosy)
    with pytest.raises(PrivateDataError, match="attacks never see private data"):
        run_attack_job(root / "nosy", "deepinversion", data, target)
    assert not (root / "nosy" / "attack-deepinversion" / "manifest.json").exists()


def test_a_prior_reaching_for_private_data_fails_clearly(tiny, monkeypatch):
    from whitebox_tiny import build_prior

    from mibench_core.priors import lomma_students

    root, data, target, _ = tiny
    real_start = lomma_students.start

    def nosy_start(job):  # the students scoring themselves on private_test, as they once did
        run = real_start(job)
        run.data["private_test_x"]
        return run

    monkeypatch.setattr(lomma_students, "start", nosy_start)
    with pytest.raises(PrivateDataError, match=r"'private_test_x' is not in the public view.*\['public_x'\]"):
        build_prior(root / "nosy", "lomma-students", data, target, epochs=1, n_students=1, widths=[4])
    # a job handed the data artifact where its public view belongs is told so
    with pytest.raises(PrivateDataError, match="is not a public view"):
        load_public(data)


# --- the per-sample path: victims, answers, attack, metrics ------------------------------------


def _run(kind: str, name: str, spec: dict, out: Path, inputs: dict, seed: int = 3) -> dict:
    from whitebox_tiny import job

    from mibench_core.cli import run_job

    return run_job(job(kind, name, spec, out, inputs, seed=seed))


@pytest.mark.parametrize(
    "access,top_k,output",
    [("top-k", 2, None), ("top-k", None, {"name": "rounding", "params": {"decimals": 1}}), ("label", None, None)],
)
def test_answers_are_the_oracles_answers_on_the_victims_and_count_queries(tiny, access, top_k, output):
    from mibench_core.attacks.blackbox import make_postprocess
    from mibench_core.attacks.oracle import Oracle
    from mibench_core.data.common import to_model_range
    from mibench_core.models.train import load_classifier

    root, data, target, _ = tiny
    vdir = root / "victims"
    if not (vdir / "manifest.json").exists():
        _run("victims", "victims", {"per_class": 3}, vdir, {"data": data})
    victims = store.load_tensors(vdir / "victims.safetensors")
    tensors = store.load_tensors(data / "data.safetensors")
    # the seeded draw: per_class private training samples of every class, with their own classes
    expected, labels = select_victims(tensors["private_train_y"], [0, 1, 2], 3, torch.Generator().manual_seed(3))
    assert torch.equal(victims["private_index"], expected) and torch.equal(victims["labels"], labels)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert torch.equal(tensors["private_train_y"][victims["private_index"]], victims["labels"])

    spec = {"access": access, "top_k": top_k, **({"output": output} if output else {})}
    adir = root / f"answers-{access}-{top_k}-{bool(output)}"
    manifest = _run("answers", "answers", spec, adir, {"victims": vdir, "data": data, "target": target})
    answers = VictimAnswers.load(adir)
    oracle = Oracle(
        load_classifier(target, "cpu"), access, top_k=(top_k or 3) if access == "top-k" else None,
        postprocess=make_postprocess(output),
    )  # fmt: skip
    direct = oracle(to_model_range(tensors["private_train_x"][victims["private_index"]]))
    assert torch.equal(answers.outputs, direct)
    assert answers.queries.tolist() == [1] * 9 and manifest["results"]["queries"] == 9
    assert answers.victims_id == "victims-test" and len(answers) == 9
    assert torch.equal(answers.classes(), direct if access == "label" else direct.argmax(1))


def test_learning_inversion_and_its_metrics_end_to_end(tiny):
    from whitebox_tiny import run_attack_job

    from mibench_core.attacks.common import load_reconstructions
    from mibench_core.models.train import load_classifier

    root, data, target, public = tiny
    vdir, adir = root / "e2e-victims", root / "e2e-answers"
    _run("victims", "victims", {"per_class": 2}, vdir, {"data": data})
    _run("answers", "answers", {"access": "top-k", "top_k": None}, adir, {"victims": vdir, "data": data,
                                                                          "target": target})  # fmt: skip
    out, manifest = run_attack_job(
        root / "e2e", "learning-inversion", data, target, answers=adir, per_class=2, ngf=4, epochs=1,
        public_samples=40,
    )  # fmt: skip
    recon = load_reconstructions(out)
    answers = VictimAnswers.load(adir)
    assert recon["images"].shape == (6, 1, 16, 16) and "private_index" not in recon
    assert recon["victim"].tolist() == list(range(6)) and torch.equal(recon["labels"], answers.classes())
    res = manifest["results"]
    assert res["queries"] == 40 + 6 and res["queries_victims"] == 6 and res["victims_id"] == "victims-test"
    assert recon["queries"].sum().item() == pytest.approx(46)

    spec = {"metrics": [{"name": n, "label": n, "params": registry.get("metric", n).defaults}
                        for n in ("accuracy", "psnr_ssim")]}  # fmt: skip
    mdir = root / "e2e-metrics"
    inputs = {"attack": out, "evaluation": target, "target": target, "data": data, "victims": vdir}
    from mibench_core.metrics.common import join_victims

    with pytest.raises(ValueError, match="inverted the answers on victims 'victims-test', not on 'other'"):
        join_victims(dict(recon), str(out), {"id": "other", "dir": str(vdir)})  # victims of another draw
    metrics = _run("metric", "metrics", spec, mdir, inputs)["results"]
    assert metrics["notes"]["psnr_ssim_mode"].startswith("per-sample")
    # Acc@1 against each victim's own class (from the victims artifact), not the class its answer named
    victims = store.load_tensors(vdir / "victims.safetensors")
    with torch.no_grad():
        pred = load_classifier(target, "cpu")(recon["images"]).argmax(1)
    assert metrics["overall"]["acc1"] == pytest.approx((pred == victims["labels"]).double().mean().item())


def test_lomma_students_score_themselves_on_held_out_public_images(tiny):
    from whitebox_tiny import build_prior

    from mibench_core.priors.common import public_subset
    from mibench_core.priors.lomma_students import HELDOUT_FRACTION, split_public

    root, data, target, public = tiny
    out = build_prior(root / "students", "lomma-students", data, target, epochs=1, n_students=2, widths=[4])
    res = store.read_manifest(out)["results"]
    n_public = store.read_manifest(public)["results"]["size"]
    assert res["heldout_public"] == round(HELDOUT_FRACTION * n_public) > 0
    assert res["distilled_on"] == n_public - res["heldout_public"]
    for row in res["history"]:
        assert "private_test_acc" not in row and 0 <= row["agreement_with_target_on_heldout_public"] <= 1
    # with max_public below the public size the distilled images are public_subset's (same draw)
    x = torch.arange(50).view(50, 1, 1, 1)
    train, held = split_public(x, 20, 0.1, torch.Generator().manual_seed(5))
    assert torch.equal(train, public_subset(x, 20, torch.Generator().manual_seed(5))) and len(held) == 5
    assert not set(train.flatten().tolist()) & set(held.flatten().tolist())
