"""Split inference (He, Zhang, Lee 2019): split models, techniques, oracle, scores, config and plan."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from mibench_core import registry, store
from mibench_core.config import ConfigError, validate
from mibench_core.metrics.pixel import psnr
from mibench_core.models.classifiers import build
from mibench_core.split.contract import SplitContext
from mibench_core.split.inverse_net import build_decoder
from mibench_core.split.oracle import FeatureOracle
from mibench_core.split.query_free import train_shadow
from mibench_core.split.rmle import rmle_invert, tv_loss

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "config" / "smoke.yaml"


# --- the split models --------------------------------------------------------------------------------


@pytest.mark.parametrize("arch,channels,side", [("lenet-split", 1, 16), ("lenet-split", 1, 28),
                                                ("lenet-split", 1, 32), ("cifar-cnn-split", 3, 32)])  # fmt: skip
def test_every_split_point_composes_back_to_the_model_and_its_alternative_matches_f1s_shape(arch, channels, side):
    torch.manual_seed(0)
    model = build(arch, {}, 5, channels, side).eval()
    assert model.split_points == registry.get("arch", arch).split_points
    x = torch.rand(3, channels, side, side) * 2 - 1
    with torch.no_grad():
        full = model(x)
        for point in model.split_points:
            f1, f2 = model.split(point)
            h = f1(x)
            assert list(f1.named_children())[-1][0] == point
            assert torch.allclose(f2(h), full, atol=1e-6), point
            alt = model.alternative_f1(point)
            assert alt(x).shape == h.shape, point
            assert not any(p is q for p in alt.parameters() for q in model.parameters())
            assert build_decoder(tuple(h.shape[1:]), (channels, side, side))(h).shape == x.shape, point


def test_paper_alternative_structures():
    lenet = build("lenet-split", {}, 10, 1, 28)
    convs = [m for m in lenet.alternative_f1("conv1").modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 8, (3, 3)), (8, 8, (3, 3))]
    assert sum(isinstance(m, nn.Conv2d) for m in lenet.alternative_f1("ReLU2").modules()) == 4
    cifar = build("cifar-cnn-split", {}, 10, 3, 32)
    convs = [m for m in cifar.alternative_f1("conv11").modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(3, 16, (3, 3)), (16, 64, (3, 3))]
    convs = [m for m in cifar.alternative_f1("ReLU22").modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(3, 64, (5, 5)), (64, 128, (5, 5))]


def test_unknown_split_point_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid: conv1, ReLU1"):
        build("lenet-split", {}, 5, 1, 32).split("conv3")


# --- TV and rMLE ---------------------------------------------------------------------------------------


def test_tv_loss_on_hand_computed_images():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    # vertical differences 2, 2 (squared mean 4); horizontal 1, 1 (squared mean 1)
    assert tv_loss(x).tolist() == [5.0]
    two = torch.cat([x, torch.zeros_like(x)], dim=1)  # a flat second channel halves both means
    assert tv_loss(two).tolist() == [2.5]
    y = torch.tensor([[[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]]])  # checkerboard: every diff is 1
    assert tv_loss(torch.cat([y, torch.full_like(y, 0.3)])).tolist() == [2.0, 0.0]


def test_rmle_recovers_the_input_of_an_identity_f1():
    torch.manual_seed(0)
    x0 = torch.rand(4, 1, 12, 12) * 2 - 1
    recon, loss = rmle_invert(nn.Identity(), x0, (1, 12, 12), iterations=1500, lr=0.01, lambda_tv=0.0)
    assert psnr((recon + 1) / 2, (x0 + 1) / 2).min().item() > 40
    assert loss.max().item() < 1e-4


def test_rmle_optimises_the_images_only():
    torch.manual_seed(0)
    f1 = build("lenet-split", {}, 5, 1, 16).split("ReLU2")[0]
    before = {k: v.clone() for k, v in f1.state_dict().items()}
    h0 = f1(torch.rand(2, 1, 16, 16)).detach()
    recon, _ = rmle_invert(f1, h0, (1, 16, 16), iterations=5, lr=0.01, lambda_tv=1.0)
    assert recon.shape == (2, 1, 16, 16) and recon.abs().max() <= 1
    assert all(torch.equal(before[k], v) for k, v in f1.state_dict().items())


# --- the attacker's data and the oracle -----------------------------------------------------------------


def _fake_data(tmp_path: Path) -> Path:
    """A data artifact whose splits are told apart by their pixel values."""

    def imgs(n, value):
        return torch.full((n, 1, 16, 16), value, dtype=torch.uint8)

    tensors = {
        "private_train_x": imgs(30, 10), "private_train_y": torch.zeros(30, dtype=torch.int64),
        "private_val_x": imgs(12, 20), "private_val_y": torch.ones(12, dtype=torch.int64),
        "private_test_x": imgs(8, 40), "private_test_y": torch.zeros(8, dtype=torch.int64),
        "public_x": imgs(20, 30),
    }  # fmt: skip
    store.save_tensors(tmp_path / "data.safetensors", tensors)
    return tmp_path


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Conv2d(1, 2, 3)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.lin(x)


@pytest.mark.parametrize("source,value", [("train", 10), ("heldout", 20), ("public", 30), ("noise", None)])
def test_inverse_network_queries_f1_on_the_intended_data(tmp_path, source, value):
    from mibench_core.data.common import to_model_range
    from mibench_core.split import inverse_net

    data_dir = _fake_data(tmp_path)
    f1 = Recorder()
    oracle = FeatureOracle(f1)
    feats = torch.randn(3, 2, 14, 14)
    ctx = SplitContext(feats, (1, 16, 16), 2, "conv1", torch.device("cpu"), torch.Generator().manual_seed(0),
                       str(data_dir), oracle=oracle)  # fmt: skip
    result = inverse_net.run_attack(ctx, data=source, samples=10, epochs=1, batch_size=4, lr=1e-3, adam_eps=1e-3,
                                    amsgrad=True, halve_lr_every=10, query_budget=None)  # fmt: skip
    queried = torch.cat(f1.seen)
    assert oracle.queries == len(queried) == 10
    assert result.info["attacker_samples"] == 10 and result.images.shape == (3, 1, 16, 16)
    if value is not None:
        assert torch.equal(queried, to_model_range(torch.full((10, 1, 16, 16), value, dtype=torch.uint8)))
    else:  # uniform noise in [0, 1] pixels: none of the data's constant images
        assert queried.min() >= -1 and queried.max() <= 1 and queried.std() > 0.5
        assert abs(queried.mean().item()) < 0.1


def test_attacker_images_refuses_unlabelled_sources_where_labels_are_needed(tmp_path):
    ctx = SplitContext(torch.zeros(1), (1, 16, 16), 2, "conv1", torch.device("cpu"), torch.Generator(),
                       str(_fake_data(tmp_path)))  # fmt: skip
    x, y = ctx.attacker_images("heldout", None, labelled=True)
    assert len(x) == 12 and y.tolist() == [1] * 12
    with pytest.raises(ValueError, match="no labels"):
        ctx.attacker_images("public", None, labelled=True)
    with pytest.raises(ValueError, match="number of samples"):
        ctx.attacker_images("noise", None)


def test_feature_oracle_counts_detaches_and_enforces_its_budget():
    from mibench_core.attacks.oracle import QueryBudgetExceeded

    oracle = FeatureOracle(nn.Conv2d(1, 2, 3), budget=5)
    out = oracle(torch.rand(3, 1, 8, 8, requires_grad=True))
    assert oracle.queries == 3 and not out.requires_grad and out.grad_fn is None
    with pytest.raises(QueryBudgetExceeded):
        oracle(torch.rand(3, 1, 8, 8))
    assert oracle.queries == 3
    assert not any(isinstance(v, nn.Module) for v in vars(oracle).values())


# --- the query-free shadow model ------------------------------------------------------------------------


def test_shadow_training_leaves_f2_frozen():
    torch.manual_seed(0)
    model = build("lenet-split", {}, 3, 1, 16)
    f1, f2 = model.split("ReLU2")
    before = {k: v.clone() for k, v in f2.state_dict().items()}
    shadow = model.alternative_f1("ReLU2")
    shadow_before = [p.clone() for p in shadow.parameters()]
    x, y = torch.rand(40, 1, 16, 16) * 2 - 1, torch.randint(0, 3, (40,))
    history = train_shadow(shadow, f2, x, y, epochs=2, batch_size=8, lr=1e-2, adam_eps=1e-3, amsgrad=True,
                           halve_lr_every=1, gen=torch.Generator().manual_seed(0), device="cpu")  # fmt: skip
    assert len(history) == 2 and all(math.isfinite(h) for h in history)
    after = f2.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(a, b) for a, b in zip(shadow_before, shadow.parameters()))


# --- the stage, the scores and the report, end to end on tiny data ---------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.whitebox_tiny import build_data, build_target

    root = tmp_path_factory.mktemp("split")
    data_dir = build_data(root)
    return root, data_dir, build_target(root, data_dir, arch="lenet-split", arch_params={})


def _split_job(root, data_dir, target_dir, name, point, **params):
    from mibench_core.cli import run_job
    from mibench_core.split.settings import resolve
    from tests.whitebox_tiny import job

    entry = registry.get("split_attack", name)
    quick = {"epochs": 1, "iterations": 10} if name == "query-free" else {}
    merged = {k: resolve(v, "lenet-split", point) for k, v in {**entry.defaults, **quick, **params}.items()}
    spec = {"params": merged, "split_point": point, "victims": {"count": 6, "seed": 0}}
    out = root / f"split-{name}-{point}-{params.get('data', '')}-{params.get('structure', '')}"
    j = job("split", name, spec, out, {"target": target_dir, "data": data_dir})
    technique = "-".join([name] + [str(params[k]) for k in ("data", "structure") if k in params])
    j["id"], j["label"] = out.name, f"digits.lenet.none.{technique}.{point}"
    run_job(j)
    return out


def test_stage_runs_each_access_level_and_scores_against_the_victims(tiny, tmp_path):
    from mibench_core.cli import run_job
    from mibench_core.split import report
    from tests.whitebox_tiny import build_target, job

    root, data_dir, target_dir = tiny
    runs = [
        _split_job(root, data_dir, target_dir, "rmle", "conv1", iterations=30),
        _split_job(root, data_dir, target_dir, "inverse-net", "fc1", data="noise", samples=64, epochs=1),
        _split_job(root, data_dir, target_dir, "query-free", "ReLU2", data="heldout", structure="alternative"),
    ]
    manifests = [store.read_manifest(d) for d in runs]
    recons = [store.load_tensors(d / "recon.safetensors") for d in runs]
    assert all(torch.equal(r["victim_index"], recons[0]["victim_index"]) for r in recons)  # same victims
    assert manifests[0]["results"]["queries"] is None and manifests[1]["results"]["queries"] == 64
    assert manifests[2]["results"]["structure"] == "alternative"
    data = store.load_tensors(data_dir / "data.safetensors")
    assert torch.equal(recons[0]["labels"], data["private_test_y"][recons[0]["victim_index"]])

    evaluation = build_target(root, data_dir, arch="evalcnn", arch_params={"width": 4, "dropout": 0.0})
    inputs = {"data": data_dir, "evaluation": evaluation, "target": target_dir}
    inputs.update({f"split{i:03d}": d for i, d in enumerate(runs)})
    j = job("split-metric", "split-metrics", {}, root / "scores", inputs)
    j["label"] = "digits.lenet.none.split-metrics"
    for i, d in enumerate(runs):
        j["inputs"][f"split{i:03d}"]["id"] = d.name
    run_job(j)
    scores = store.read_json(root / "scores" / "metrics.json")["runs"]
    for d, recon in zip(runs, recons):
        s = scores[d.name]
        originals = data["private_test_x"][recon["victim_index"]].double() / 255
        expected = psnr(((recon["images"] + 1) / 2).clamp(0, 1), originals).mean().item()
        assert s["psnr"] == pytest.approx(expected) and 0 <= s["ssim"] <= 1 and 0 <= s["acc1"] <= 1
        assert len(s["per_sample"]["psnr"]) == 6 and 0 <= s["reference_acc1"] <= 1

    # the report reads the artifacts laid out as the plan places them
    results = tmp_path / "results"
    links = {f"split/{d.name}": d for d in runs}
    links.update({"models/target-test": target_dir, "models/evaluation-test": evaluation,
                  "split_metrics/scores": root / "scores"})  # fmt: skip
    for rel, d in links.items():
        (results / rel).parent.mkdir(parents=True, exist_ok=True)
        (results / rel).symlink_to(d)
    table = tmp_path / "split.parquet"
    report.write_table([str(results / "split_metrics" / "scores")], str(table))
    import pandas as pd

    df = pd.read_parquet(table)
    assert list(df["technique"]) == ["rmle", "inverse-net-noise", "query-free-heldout-alternative"]
    assert list(df["setting"]) == ["white-box", "black-box, queries: random noise",
                                   "query-free, diff set, diff net"]  # fmt: skip
    assert list(df["depth"]) == [0, 6, 4] and df["psnr"].notna().all()
    md = tmp_path / "split.md"
    report.markdown_table(str(table), str(md))
    text = md.read_text()
    for score in ("PSNR (dB):", "SSIM:", "Acc@1:"):
        assert f"{score}\n\n| technique | setting | conv1 | ReLU2 | fc1 |\n" in text, score
    assert "| inverse-net-noise | black-box, queries: random noise | — | — |" in text  # fc1 only
    report.depth_figure(str(table), str(tmp_path / "depth.png"))
    report.reconstruction_grid([str(runs[0])], str(data_dir), str(table), str(tmp_path / "grid.png"), "digits.x.y")
    # the plan's labels win over the ones the artifacts were built under (a relabel reruns no artifact)
    relabel = {d.name: dict(report._labels_from_manifests(store.read_manifest(root / "scores"),
                                                          store.read_manifest(d)), technique=f"t{i}")
               for i, d in enumerate(runs)}  # fmt: skip
    report.write_table([str(results / "split_metrics" / "scores")], str(table), relabel)
    assert list(pd.read_parquet(table)["technique"]) == ["t0", "t1", "t2"]
    assert (tmp_path / "depth.png").stat().st_size > 0 and (tmp_path / "grid.png").stat().st_size > 0


# --- config and plan ------------------------------------------------------------------------------------


def _cfg(**split) -> dict:
    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    raw["split_inference"].update(split)
    return raw


def _validate(raw):
    return validate(copy.deepcopy(raw))


def test_split_points_are_checked_and_canonicalised():
    raw = _cfg()
    raw["split_inference"]["targets"][0]["split_points"] = ["fc1", "relu2", "CONV1"]
    assert _validate(raw)["split_inference"]["targets"][0]["split_points"] == ["conv1", "ReLU2", "fc1"]
    raw["split_inference"]["targets"][0]["split_points"] = ["conv1", "conv3"]
    with pytest.raises(ConfigError, match=r"targets\[0\].split_points\[1\]'.*no split point 'conv3'; valid: conv1, "
                                          r"ReLU1, pool1, conv2, ReLU2, pool2, fc1, fc1act, fc2, fc2act"):  # fmt: skip
        _validate(raw)


@pytest.mark.parametrize("mutate,key,words", [
    (lambda s: s["targets"][0].update(arch="mcnn"), "targets[0].arch", "not a split architecture"),
    (lambda s: s["attacks"].append({"name": "query-free", "data": "public"}), "attacks[3].data", "labels"),
    (lambda s: s["attacks"].append({"name": "inverse-net", "data": "noise"}), "attacks[3].samples", "noise"),
    (lambda s: s["attacks"].append({"name": "query-free", "structure": "deeper"}), "attacks[3].structure", "same"),
    (lambda s: s["attacks"][0].update(lambda_tv={"fc9": 1.0}), "attacks[0].lambda_tv.fc9", "split point"),
    (lambda s: s["attacks"][0].update(lambda_tv={"fc1": "big"}), "attacks[0].lambda_tv.fc1", "number"),
    (lambda s: s["attacks"][0].update(iters=3), "attacks[0].iters", "valid: "),
    (lambda s: s["attacks"].append({"name": "rmle"}), "attacks[3].label", "also used"),
    (lambda s: s.update(defenses=["dp"]), "defenses[0]", "no defense labelled 'dp'"),
    (lambda s: s.update(attacks=[]), "split_inference.attacks", "no technique"),
    (lambda s: s["targets"][0].update(label="mcnn"), "targets[0].label", "top-level target"),
    (lambda s: s["targets"][0].update(datasets=["mnist"]), "targets[0].datasets[0]", "no dataset labelled"),
])  # fmt: skip
def test_invalid_split_config_fails_naming_the_key(mutate, key, words):
    raw = _cfg()
    mutate(raw["split_inference"])
    with pytest.raises(ConfigError) as exc:
        _validate(raw)
    assert f"'split_inference.{key}" in str(exc.value) or f"'{key}" in str(exc.value), str(exc.value)
    assert words in str(exc.value)


def test_mid_is_refused_with_its_reason():
    raw = _cfg(defenses=["mid"])
    raw["defenses"] = [{"name": "none"}, {"name": "mid"}]
    with pytest.raises(ConfigError, match="does not apply to split inference: MID wraps"):
        _validate(raw)


def test_per_split_point_parameters_resolve_per_node():
    from mibench_core.plan import build

    raw = _cfg()
    base = build(_validate(raw))
    lam = {n.label.rsplit(".", 1)[1]: n.spec["params"]["lambda_tv"] for n in base.of_kind("split") if n.name == "rmle"}
    assert lam == {"conv1": 1.0, "ReLU2": 1.0, "pool2": 1.0, "fc1": 1.0}
    raw["split_inference"]["attacks"][0]["lambda_tv"] = {"fc1": 7}
    changed = build(_validate(raw))
    before = {n.label: n.id for n in base.nodes.values()}
    after = {n.label: n.id for n in changed.nodes.values()}
    differ = sorted(label for label in before if before[label] != after[label])
    assert differ == ["fashion-mnist.lenet.none.rmle.fc1", "fashion-mnist.lenet.none.split-metrics"]
    raw["split_inference"]["attacks"][0]["lambda_tv"] = 3  # one value everywhere
    assert {n.spec["params"]["lambda_tv"] for n in build(_validate(raw)).of_kind("split") if n.name == "rmle"} == {3}


def test_default_plan_shares_data_and_evaluation_with_the_main_track():
    from mibench_core.plan import build
    from mibench_core.split.plan import final_targets, groups

    plan = build(_validate(_cfg()))
    assert len(plan.of_kind("data")) == 1
    evaluation = [n for n in plan.of_kind("model") if n.spec["role"] == "evaluation"]
    assert len(evaluation) == 1
    (group,) = groups(plan)
    assert group.label == "fashion-mnist.lenet.none" and group.points == ["conv1", "ReLU2", "pool2", "fc1"]
    assert len(group.runs) == 12 and len(plan.of_kind("split")) == 12
    metric = plan.nodes[group.metric_id]
    assert metric.inputs["evaluation"] == evaluation[0].id
    assert all(plan.nodes[i].spec["victims"] == {"count": 32, "seed": 0} for i in group.runs.values())
    assert f"{plan.config['output']['reports']}/figures/split/fashion-mnist.lenet.none/fc1.png" in final_targets(
        plan, plan.config["output"]["tables"], plan.config["output"]["reports"]
    )


def test_track_off_plans_nothing():
    from mibench_core.plan import build

    plan = build(_validate(_cfg(targets=[])))
    assert not plan.of_kind("split") and not plan.of_kind("split-metric")


def test_full_sweep_and_cifar_overlay_plan():
    from mibench_core.cli import _merge
    from mibench_core.plan import build

    raw = _cfg()
    for name in ("split.yaml", "split-cifar10.yaml"):
        _merge(raw, yaml.safe_load((REPO / "config" / name).read_text()))
    plan = build(_validate(raw))
    splits = plan.of_kind("split")
    assert len(splits) == 8 * 10 + 8 * 4
    cifar = [n for n in splits if n.label.startswith("cifar10.")]
    assert {n.spec["split_point"] for n in cifar} == {"conv11", "ReLU22", "ReLU32", "fc1"}
    lam = {n.spec["split_point"]: n.spec["params"]["lambda_tv"] for n in cifar if n.name == "rmle"}
    assert lam == {"conv11": 0.0, "ReLU22": 10.0, "ReLU32": 1000.0, "fc1": 10000.0}


def test_preflight_refuses_a_missing_split_dataset_root(tmp_path):
    from mibench_core.cli import _merge
    from mibench_core.preflight import problems

    raw = _cfg()
    for name in ("split.yaml", "split-cifar10.yaml"):
        _merge(raw, yaml.safe_load((REPO / "config" / name).read_text()))
    found = problems(_validate(raw), tmp_path)
    assert found == ["config key 'split_inference.datasets[1].root': dataset 'cifar10': no such folder data/cifar10"]


def test_split_targets_are_trained_once_per_listed_defense():
    from mibench_core.plan import build
    from mibench_core.split.plan import groups

    raw = _cfg(defenses=["none", "dp-sgd"])
    raw["defenses"] = [{"name": "none"}, {"name": "dp-sgd", "noise_multiplier": 0.5}]
    plan = build(_validate(raw))
    assert [g.label for g in groups(plan)] == ["fashion-mnist.lenet.none", "fashion-mnist.lenet.dp-sgd"]
    lenets = [n for n in plan.of_kind("model") if n.spec["arch"] == "lenet-split"]
    assert [n.spec["defense"]["name"] for n in lenets] == ["none", "dp-sgd"]
    assert lenets[1].spec["defense"]["params"]["noise_multiplier"] == 0.5
