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
from mibench_core.split.contract import AttackerData, SplitContext
from mibench_core.split.inverse_net import build_decoder
from mibench_core.split.oracle import FeatureOracle
from mibench_core.split.query_free import train_shadow
from mibench_core.split.rmle import rmle_invert, select_lambda, tv_loss

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
            assert build_decoder(arch, point, (channels, side, side))(h).shape == x.shape, point


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


def _layers(decoder: nn.Module) -> list[tuple]:
    out = []
    for m in decoder.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            out.append((type(m).__name__, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0]))
        elif isinstance(m, nn.Linear):
            out.append(("Linear", m.in_features, m.out_features))
    return out


def test_inverse_network_decoders_are_the_authors_at_their_split_points():
    # net.py of zechenghe/Inverse_Collaborative_Inference: LeNetDecoderconv1, LeNetDecoderReLU2 (28 px MNIST),
    # CIFAR10CNNDecoderconv1 (the second class of that name), CIFAR10CNNDecoderReLU22, CIFAR10CNNDecoderReLU32
    assert _layers(build_decoder("lenet-split", "conv1", (1, 28, 28))) == [("Conv2d", 8, 1, 5, 1, 4)]
    relu2 = [("ConvTranspose2d", 16, 8, 5, 1, 0), ("ConvTranspose2d", 8, 1, 5, 2, 0)]
    assert _layers(build_decoder("lenet-split", "ReLU2", (1, 28, 28))) == relu2
    assert _layers(build_decoder("cifar-cnn-split", "conv11", (3, 32, 32))) == [("ConvTranspose2d", 64, 3, 3, 1, 1)]
    up = [("ConvTranspose2d", 128, 64, 3, 2, 1), ("ConvTranspose2d", 64, 3, 3, 1, 1)]
    assert _layers(build_decoder("cifar-cnn-split", "ReLU22", (3, 32, 32))) == up
    assert _layers(build_decoder("cifar-cnn-split", "ReLU32", (3, 32, 32))) == [("ConvTranspose2d", 128, 128, 3, 2, 1),
                                                                               *up[:1], up[1]]  # fmt: skip
    # ReLU between layers, none at the end, as in the authors' decoders
    mods = list(build_decoder("lenet-split", "ReLU2", (1, 28, 28)).stages)
    assert [type(m).__name__ for m in mods] == ["ConvTranspose2d", "ReLU", "ConvTranspose2d"]
    # the authors' output_padding (1, 1) on 28 px MNIST: ReLU2 features 16x8x8 back to 1x28x28
    assert build_decoder("lenet-split", "ReLU2", (1, 28, 28))(torch.zeros(1, 16, 8, 8)).shape == (1, 1, 28, 28)


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


def test_tv_is_the_authors_squared_form_not_the_papers_isotropic_one():
    ramp = torch.arange(16.0).view(1, 1, 4, 4) / 16
    assert tv_loss(2 * ramp).item() == pytest.approx(4 * tv_loss(ramp).item())  # beta = 2: quadratic in scale
    assert "isotropic" in tv_loss.__doc__ and "beta = 1" in tv_loss.__doc__


def test_lambda_selection_prefers_no_tv_for_an_invertible_edge_and_tv_for_a_lossy_one():
    torch.manual_seed(0)
    own = (torch.rand(4, 1, 1, 1) * 2 - 1).expand(4, 1, 12, 12).clone()  # flat images: TV is their prior
    grid = [0.0, 1.0, 100.0]
    lam, scores = select_lambda(nn.Identity(), own, grid, iterations=600, lr=0.01)
    assert lam == 0.0 and set(scores) == {"0.0", "1.0", "100.0"} and scores["0.0"] > 40
    mask = (torch.rand(1, 1, 12, 12) < 0.5).float()  # an edge that drops half the pixels

    class Masked(nn.Module):
        def forward(self, x):
            return x * mask

    lam, scores = select_lambda(Masked(), own, grid, iterations=600, lr=0.01)
    assert lam > 0 and scores[repr(lam)] > scores["0.0"] + 3
    assert select_lambda(Masked(), own, [7.0], iterations=1, lr=0.01) == (7.0, {})  # one value: fixed


def test_rmle_with_its_defaults_inverts_a_lenet_conv1():
    # LeNet's conv1 (8 filters 5x5, no padding) keeps the image: the TV weight the attacker picks on its own
    # images must not hold the victims far below what the features carry (a fixed weight of 1 gave ~22 dB)
    from mibench_core.split import rmle

    torch.manual_seed(0)
    f1 = build("lenet-split", {}, 5, 1, 16).split("conv1")[0].eval()
    smooth = torch.nn.functional.avg_pool2d(torch.rand(10, 1, 18, 18), 3, 1) * 2 - 1
    own, victims = smooth[:6], smooth[6:]

    class Own:
        def read(self, source):
            assert source == "public"
            return ((own + 1) * 127.5).round().to(torch.uint8), None

    ctx = SplitContext(f1(victims).detach(), (1, 16, 16), 5, "conv1", torch.device("cpu"),
                       torch.Generator().manual_seed(0), Own(), f1=f1)  # fmt: skip
    params = {k: v for k, v in registry.get("split_attack", "rmle").defaults.items()}
    params.update(iterations=1500, lr=0.01)
    result = rmle.run_attack(ctx, **params)
    assert result.info["lambda_tv"] < 1.0 and set(result.info["lambda_selection_psnr"]) == {
        repr(v) for v in params["lambda_tv_grid"]}  # fmt: skip
    assert psnr((result.images + 1) / 2, (victims + 1) / 2).mean().item() > 30


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
        self.lin = nn.Conv2d(1, 8, 5)  # LeNet's conv1
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
    feats = torch.randn(3, 8, 12, 12)
    ctx = SplitContext(feats, (1, 16, 16), 2, "conv1", torch.device("cpu"), torch.Generator().manual_seed(0),
                       AttackerData(data_dir), oracle=oracle, arch="lenet-split")  # fmt: skip
    result = inverse_net.run_attack(ctx, data=source, samples=10, epochs=1, batch_size=4, lr=1e-3, adam_eps=1e-3,
                                    amsgrad=True, halve_lr_every=10, query_budget=None)  # fmt: skip
    queried = torch.cat(f1.seen)
    assert oracle.queries == len(queried) == 10
    assert result.info["attacker_samples"] == 10 and result.images.shape == (3, 1, 16, 16)
    if value is not None:
        assert torch.equal(queried, to_model_range(torch.full((10, 1, 16, 16), value, dtype=torch.uint8)))
    else:  # standard Gaussian noise in the model's range (the paper's Section 5.1), beyond [-1, 1]
        assert abs(queried.mean().item()) < 0.1 and abs(queried.std().item() - 1) < 0.1
        assert (queried.abs() > 1).float().mean().item() == pytest.approx(0.3173, abs=0.03)  # P(|z| > 1)


def test_attacker_images_refuses_unlabelled_sources_where_labels_are_needed(tmp_path):
    ctx = SplitContext(torch.zeros(1), (1, 16, 16), 2, "conv1", torch.device("cpu"), torch.Generator(),
                       AttackerData(_fake_data(tmp_path)))  # fmt: skip
    x, y = ctx.attacker_images("heldout", None, labelled=True)
    assert len(x) == 12 and y.tolist() == [1] * 12
    with pytest.raises(ValueError, match="no labels"):
        ctx.attacker_images("public", None, labelled=True)
    with pytest.raises(ValueError, match="number of samples"):
        ctx.attacker_images("noise", None)


@pytest.fixture
def reads(monkeypatch):
    """The tensor names read from any safetensors file while the test runs."""
    import safetensors

    seen: list[str] = []
    real_open, real_load = safetensors.safe_open, store.load_tensors

    class Recording:
        def __init__(self, *args, **kwargs):
            self.f = real_open(*args, **kwargs)

        def __enter__(self):
            self.inner = self.f.__enter__()
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def keys(self):
            return self.inner.keys()

        def get_tensor(self, name):
            seen.append(name)
            return self.inner.get_tensor(name)

    def load(path, *args, **kwargs):
        out = real_load(path, *args, **kwargs)
        seen.extend(out)
        return out

    monkeypatch.setattr(safetensors, "safe_open", Recording)
    monkeypatch.setattr(store, "load_tensors", load)
    return seen


@pytest.mark.parametrize("technique", ["rmle", "query-free"])
def test_white_box_and_query_free_techniques_never_read_the_victims(tmp_path, reads, technique):
    from mibench_core.split import query_free, rmle

    data_dir = _fake_data(tmp_path)
    model = build("lenet-split", {}, 2, 1, 16).eval()
    f1, f2 = model.split("conv1")
    victims = f1(torch.rand(3, 1, 16, 16) * 2 - 1).detach()
    ctx = SplitContext(victims, (1, 16, 16), 2, "conv1", torch.device("cpu"), torch.Generator().manual_seed(0),
                       AttackerData(data_dir))  # fmt: skip
    params = dict(registry.get("split_attack", technique).defaults, iterations=3, lr=0.01)
    if technique == "rmle":
        ctx.f1 = f1
        result = rmle.run_attack(ctx, **params)
    else:
        ctx.f2 = f2
        ctx.shadow_f1 = lambda structure: build("lenet-split", {}, 2, 1, 16).split("conv1")[0]
        params.update(data="heldout", epochs=1)
        result = query_free.run_attack(ctx, **params)
    assert result.images.shape == (3, 1, 16, 16)
    assert reads and not any(name.startswith("private_test") for name in reads), reads
    assert set(reads) <= {"private_train_x", "private_train_y", "private_val_x", "private_val_y", "public_x"}
    # nothing the technique holds keeps tensors of the file
    assert not any(isinstance(v, dict) for v in vars(ctx).values())
    assert not hasattr(ctx.data, "__dict__") and repr(ctx.data) == "AttackerData(train, heldout, public)"
    with pytest.raises(ValueError, match="no attacker split 'test'"):
        ctx.data.read("test")


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
    # the paper's Tables 3 and 6 (MNIST LeNet) where they have the setting and point; none for fc1
    assert df["paper_psnr"].tolist()[::2] == [39.69, 8.03] and df["paper_ssim"].tolist()[::2] == [0.9969, 0.3226]
    assert math.isnan(df["paper_psnr"].iloc[1])
    for d, (_, row) in zip(runs, df.iterrows()):  # a 95% t interval over the 6 victims, from their own scores
        from scipy import stats as sps

        vals = torch.tensor(scores[d.name]["per_sample"]["psnr"], dtype=torch.float64)
        half = sps.t.ppf(0.975, 5) * vals.std().item() / math.sqrt(6)
        assert row["psnr_low"] == pytest.approx(vals.mean().item() - half)
        assert row["psnr_high"] == pytest.approx(vals.mean().item() + half)
    md = tmp_path / "split.md"
    report.markdown_table(str(table), str(md))
    text = md.read_text()
    for score in ("PSNR (dB):", "SSIM:", "Acc@1:"):
        assert f"{score}\n\n| technique | setting | conv1 | ReLU2 | fc1 |\n" in text, score
    assert "| inverse-net-noise | black-box, queries: random noise | — | — |" in text  # fc1 only
    r = df.iloc[0]
    assert f"| rmle | white-box | {r['psnr']:.2f} [{r['psnr_low']:.2f}, {r['psnr_high']:.2f}] (paper 39.69) |" in text
    assert f"{r['ssim']:.4f} [{r['ssim_low']:.4f}, {r['ssim_high']:.4f}] (paper 0.9969)" in text
    assert "Paper values: MNIST" in text
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
    (lambda s: s["attacks"][0].update(lr={"fc9": 1.0}), "attacks[0].lr.fc9", "split point"),
    (lambda s: s["attacks"][0].update(lr={"fc1": "big"}), "attacks[0].lr.fc1", "number"),
    (lambda s: s["attacks"][0].update(lambda_tv_grid=[]), "attacks[0].lambda_tv_grid", "non-empty"),
    (lambda s: s["attacks"][0].update(lambda_tv_grid=[1, -1]), "attacks[0].lambda_tv_grid", ">= 0"),
    (lambda s: s["attacks"][0].update(select_data="noise"), "attacks[0].select_data", "own images"),
    (lambda s: s["attacks"][0].update(lambda_tv=1.0), "attacks[0].lambda_tv", "valid: "),
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
    lr = {n.label.rsplit(".", 1)[1]: n.spec["params"]["lr"] for n in base.of_kind("split") if n.name == "rmle"}
    assert lr == {"conv1": 0.01, "ReLU2": 0.01, "pool2": 0.01, "fc1": 0.01}
    raw["split_inference"]["attacks"][0]["lr"] = {"fc1": 7}
    changed = build(_validate(raw))
    before = {n.label: n.id for n in base.nodes.values()}
    after = {n.label: n.id for n in changed.nodes.values()}
    differ = sorted(label for label in before if before[label] != after[label])
    assert differ == ["fashion-mnist.lenet.none.rmle.fc1", "fashion-mnist.lenet.none.split-metrics"]
    raw["split_inference"]["attacks"][0]["lr"] = 3  # one value everywhere
    assert {n.spec["params"]["lr"] for n in build(_validate(raw)).of_kind("split") if n.name == "rmle"} == {3}


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
    lr = {n.spec["split_point"]: n.spec["params"]["lr"] for n in cifar if n.name == "rmle"}
    assert lr == {"conv11": 0.01, "ReLU22": 0.01, "ReLU32": 0.01, "fc1": 0.001}
    grids = {tuple(n.spec["params"]["lambda_tv_grid"]) for n in splits if n.name in ("rmle", "query-free")}
    assert grids == {(0.0, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)}  # every authors' value, and 0


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


def _defenses_tiny(split=None) -> dict:
    from mibench_core.cli import _merge

    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    _merge(raw, yaml.safe_load((REPO / "tests" / "configs" / "defenses_tiny.yaml").read_text()))
    if split is not None:
        raw["split_inference"] = split
    return raw


def test_defenses_tiny_plans_without_the_split_track_its_images_cannot_feed():
    from mibench_core.config import checked
    from mibench_core.plan import build as build_plan

    plan = build_plan(checked(_defenses_tiny()))
    assert not plan.of_kind("split") and plan.of_kind("model")
    # with the default's split track (LeNet on the 8x8 and 16x16 digits), it fails before any job
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["split_inference"]
    with pytest.raises(ConfigError) as exc:
        checked(_defenses_tiny(default))
    msg = str(exc.value)
    assert "config key 'split_inference.targets[0]'" in msg and "'digits8' (1x8x8 images)" in msg
    assert "at least 16x16" in msg and "digits16" not in msg


def test_preflight_builds_every_split_network_at_the_track_resolution():
    from mibench_core.split.shapes import problems

    cfg = _validate(_cfg())
    assert problems(cfg) == []
    # 17 px: conv1 and pool1 leave 6 px, which the decoder's stride-2 layer cannot take back to an odd 17;
    # ReLU2 is the default's first point behind pool1
    cfg["split_inference"]["datasets"][0]["resolution"] = 17
    found = problems(cfg)
    assert len(found) == 1 and "'split_inference.targets[0]'" in found[0] and "split point 'ReLU2'" in found[0]
