"""Defenses: losses against hand-computed values, HSIC properties, freezing,
DP-SGD accounting, PGD projection, output processing, rebuild on load."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from mibench_core import registry, store
from mibench_core.config import validate
from mibench_core.defenses import adversarial, bido, label_smoothing, mid, output
from mibench_core.defenses.adversarial import pgd
from mibench_core.defenses.transfer import blocks_in_order, freeze_early_layers, layers_in_order, rotate_batch
from mibench_core.models.classifiers import MCNN
from mibench_core.models.train import load_classifier, train_classifier

REPO = Path(__file__).resolve().parent.parent

TRAIN = {
    "epochs": 1, "batch_size": 16, "optimizer": "adam", "lr": 1e-3, "momentum": 0.9,
    "weight_decay": 0.0, "augment": False, "select_best_on_val": True,
}  # fmt: skip


def tiny_tensors(n=32, classes=3, res=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randint(0, 256, (n, 1, res, res), generator=g, dtype=torch.uint8)
    x[:, :, : res // 2] = (y[:, None, None] * 100).to(torch.uint8)[:, :, None]  # learnable signal
    return {
        "private_train_x": x, "private_train_y": y, "private_val_x": x[:8], "private_val_y": y[:8],
        "private_test_x": x[:8], "private_test_y": y[:8], "public_x": x.flip(0),
    }  # fmt: skip


def make_defense(name, **params):
    entry = registry.get("defense", name)
    return registry.load(entry)(**{**entry.defaults, **params})


def benchmark_defenses() -> dict[str, dict]:
    """The validated ``defenses`` entries of config/defenses.yaml (merged over config/config.yaml), by label."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for key, val in yaml.safe_load((REPO / "config" / "defenses.yaml").read_text()).items():
        cfg[key] = {**cfg[key], **val} if isinstance(val, dict) and isinstance(cfg.get(key), dict) else val
    return {d.get("label", d["name"]): d for d in validate(cfg)["defenses"]}


def save_target(tmp_path, name, params, model):
    """A target artifact's weights for ``model``, and the manifest it would have (trained with ``name``)."""
    store.save_tensors(tmp_path / "model.safetensors", model.state_dict())
    manifest = {
        "spec": {"arch": "mcnn", "arch_params": {"width": 4}, "defense": {"name": name, "params": params}},
        "results": {"num_classes": 3, "channels": 1, "resolution": 8},
    }
    return manifest


# --- MID ---------------------------------------------------------------------


def test_vib_kl_matches_closed_form_and_torch_distributions():
    mu = torch.tensor([[0.5, -1.0], [0.0, 0.0]])
    sigma = torch.tensor([[1.0, 0.5], [1.0, 1.0]])
    # hand: 0.5 * [(0.25 + 1 - 1 - 0) + (1 + 0.25 - 1 - log 0.25)] for row 0, 0 for row 1
    expected0 = 0.5 * (0.25 + (1.25 - 1 - math.log(0.25)))
    kl = mid.gaussian_kl(mu, sigma)
    assert kl[0].item() == pytest.approx(expected0, rel=1e-6)
    assert kl[1].item() == pytest.approx(0.0, abs=1e-7)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, sigma), torch.distributions.Normal(torch.zeros_like(mu), 1.0)
    ).sum(1)
    assert torch.allclose(kl, ref, atol=1e-6)


def test_mid_sigma_is_softplus_shifted_and_the_mean_deployment_serves_fc_mu():
    model = make_defense("mid", inference="mean").prepare(MCNN(3, 1, 8, width=4))
    x = torch.randn(5, 1, 8, 8)
    mu, sigma = model.stats(x)
    st = model.st_layer(model.base.features(x))
    assert torch.allclose(sigma, F.softplus(st[:, model.k :] - 5.0))
    model.eval()
    mu, _ = model.stats(x)
    assert torch.equal(model(x), model.fc(mu))
    assert torch.equal(model(x), model(x))  # deterministic at test time


def test_mid_sampled_deployment_draws_the_bottleneck_at_every_call_in_eval_mode():
    model = make_defense("mid").prepare(MCNN(3, 1, 8, width=4)).eval()
    x = torch.randn(5, 1, 8, 8)
    mu, sigma = model.stats(x)
    torch.manual_seed(7)
    out = model(x)
    torch.manual_seed(7)
    assert torch.allclose(out, model.fc(mu + sigma * torch.randn_like(sigma)))
    assert not torch.equal(model(x), model(x))


def test_mid_paper_setting_is_attacked_through_the_sampled_bottleneck(tmp_path, monkeypatch):
    from mibench_core.attacks.oracle import build_oracle

    entries = benchmark_defenses()
    paper, strict = entries["mid-3e-3"], entries["mid-1e-2-mean"]
    assert paper["params"]["inference"] == "sampled" and strict["params"]["inference"] == "mean"
    for entry, stochastic in ((paper, True), (strict, False)):
        d = tmp_path / entry["label"]
        d.mkdir()
        torch.manual_seed(0)
        net = make_defense("mid", **entry["params"]).prepare(MCNN(3, 1, 8, width=4))
        with torch.no_grad():
            net.st_layer.bias[net.k :] = 8.0  # sigma = softplus(3) ~ 3: the noise is visible in the answers
        manifest = save_target(d, "mid", entry["params"], net)
        monkeypatch.setattr(store, "read_manifest", lambda _d, m=manifest: m)
        x = torch.randn(4, 1, 8, 8)
        oracle = build_oracle(d, "probabilities")  # black-box attacks
        assert torch.equal(oracle(x), oracle(x)) is not stochastic
        white = load_classifier(d)  # white-box attacks: the gradient goes through the draw too
        grads = []
        for _ in range(2):
            xi = x.clone().requires_grad_(True)
            F.cross_entropy(white(xi), torch.tensor([0, 1, 2, 0])).backward()
            grads.append(xi.grad)
        assert torch.equal(grads[0], grads[1]) is not stochastic


# --- BiDO ----------------------------------------------------------------------


def test_biased_hsic_is_near_zero_for_independent_and_maximal_for_identical_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g)
    y = torch.randn(200, 3, generator=g)
    kx, ky = bido.gaussian_kernel(x, 1.0), bido.gaussian_kernel(y, 1.0)
    h_xx, h_xy = bido.hsic(kx, kx).item(), bido.hsic(kx, ky).item()
    assert h_xy < 0.05 * h_xx
    # Cauchy-Schwarz in the RKHS: HSIC(X, Y) <= sqrt(HSIC(X, X) HSIC(Y, Y)), equality for Y = X
    assert h_xy <= math.sqrt(h_xx * bido.hsic(ky, ky).item())
    partly = bido.gaussian_kernel(x + 0.5 * y, 1.0)
    assert h_xy < bido.hsic(kx, partly).item() < h_xx


def test_biased_hsic_matches_explicit_double_sum():
    g = torch.Generator().manual_seed(1)
    kx = bido.gaussian_kernel(torch.randn(6, 2, generator=g), 5.0)
    ky = bido.linear_kernel(F.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).float())
    m = 6
    h = torch.eye(m) - torch.ones(m, m) / m
    assert bido.hsic(kx, ky).item() == pytest.approx((torch.trace(kx @ h @ ky @ h) / (m - 1) ** 2).item(), rel=1e-5)


def test_normalised_hsic_and_coco_rank_identical_above_independent():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), torch.randn(64, 4, generator=g)
    # BiDO's bandwidth (sigma 5, scaled by the dimension); with a narrow kernel the
    # normalised HSIC saturates near the rank m - 1 for any inputs
    kx, ky = bido.gaussian_kernel(x, 5.0), bido.gaussian_kernel(y, 5.0)
    assert bido.hsic_normalized(kx, kx).item() > 3 * bido.hsic_normalized(kx, ky).item()
    assert bido.coco(kx, kx).item() > 1.3 * bido.coco(kx, ky).item()


def test_coco_centres_both_sides_like_the_authors_code():
    g = torch.Generator().manual_seed(2)
    m = 12
    kx = bido.gaussian_kernel(torch.randn(m, 5, generator=g), 5.0)
    ky = bido.linear_kernel(F.one_hot(torch.arange(m) % 3, 3).float())
    h = torch.eye(m) - torch.ones(m, m) / m
    expected = torch.sqrt(torch.linalg.norm((h @ kx @ h) @ (h @ ky @ h))) / m  # coco_normalized_cca
    assert bido.coco(kx, ky).item() == pytest.approx(expected.item(), rel=1e-5)
    one_sided = torch.sqrt(torch.linalg.norm((kx @ h) @ (ky @ h))) / m
    assert abs(bido.coco(kx, ky).item() - one_sided.item()) > 1e-4 * one_sided.item()


def _gradient(defense, model, x, y):
    model.zero_grad()
    torch.manual_seed(1)  # the same bottleneck draw for both losses
    defense.start_epoch(4, 5)  # the last epoch of five: negative LS at its full factor
    loss, _ = defense.loss(model, x, y, 0.99)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


OFF = {"bido": {"a1": 0.0, "a2": 0.0}, "mid": {"beta": 0.0}, "negative-ls": {"alpha": 0.0}}


def test_each_regulariser_moves_the_gradient_at_its_configured_weight():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(128, 1, 32, 32, generator=g) * 2 - 1, torch.arange(128) % 5
    checked = []
    for label, entry in benchmark_defenses().items():
        if entry["name"] not in OFF:
            continue
        torch.manual_seed(0)
        on = make_defense(entry["name"], **entry["params"])
        off = make_defense(entry["name"], **{**entry["params"], **OFF[entry["name"]]})
        model = on.prepare(MCNN(5, 1, 32, width=16)).train()
        g_on, g_off = _gradient(on, model, x, y), _gradient(off, model, x, y)
        change = ((g_on - g_off).norm() / g_off.norm()).item()
        assert change > 0.01, f"{label}: the regulariser moves the gradient by {change:.2%} only"
        checked.append(label)
    assert {"bido-hsic", "bido-coco", "mid-3e-3", "ls-5e-2"} <= set(checked)


def test_bido_collects_every_activation_and_the_features():
    model = MCNN(3, 1, 8, width=4)
    logits, hidden = bido.hidden_outputs(model, torch.randn(4, 1, 8, 8))
    assert len(hidden) == 4 and hidden[-1].shape == (4, model.feat_dim)
    assert logits.shape == (4, 3)
    loss, _ = make_defense("bido").loss(model, torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]), 0.0)
    loss.backward()
    assert model.body[0].weight.grad is not None


# --- negative label smoothing -------------------------------------------------------


def test_label_smoothing_loss_hand_values():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    y = torch.tensor([0])
    nll, uniform = -math.log(0.5), -(math.log(0.5) + 2 * math.log(0.25)) / 3
    for a in (0.0, -0.05, 0.1):
        got = label_smoothing.label_smoothing_loss(logits, y, a).item()
        assert got == pytest.approx((1 - a) * nll + a * uniform, rel=1e-6)
    # a > 0 is torch's label smoothing
    assert label_smoothing.label_smoothing_loss(logits, y, 0.1).item() == pytest.approx(
        F.cross_entropy(logits, y, label_smoothing=0.1).item(), rel=1e-6
    )


def test_label_smoothing_schedule_is_the_authors_per_epoch_schedule():
    f = label_smoothing.smoothing_factor
    # the authors' 100 epochs: 0 before epoch 50, alpha * (e + 1 - 50) / 50 until 74, alpha from 75
    assert f(-0.1, 49, 100, 0.5, 0.25) == 0.0
    assert f(-0.1, 50, 100, 0.5, 0.25) == pytest.approx(-0.1 / 50)
    assert f(-0.1, 74, 100, 0.5, 0.25) == pytest.approx(-0.05)
    assert f(-0.1, 75, 100, 0.5, 0.25) == -0.1
    # five epochs: smoothing from epoch 3 (0-based), alpha / 2 there, the full factor at the last epoch
    assert label_smoothing.schedule_epochs(5, 0.5, 0.25) == (3, 4)
    assert [f(-0.1, e, 5, 0.5, 0.25) for e in range(5)] == pytest.approx([0, 0, 0, -0.05, -0.1])


def test_negative_ls_deploys_a_checkpoint_trained_with_full_smoothing(monkeypatch):
    from mibench_core.models import train as train_mod

    vals = iter([0.9, 0.8, 0.7, 0.6, 0.5])  # validation accuracy falls: plain selection keeps epoch 1
    monkeypatch.setattr(train_mod, "accuracy", lambda *a, **k: next(vals))
    defense = make_defense("negative-ls", alpha=-0.1)
    cfg = {**TRAIN, "epochs": 5}
    _, results = train_classifier(MCNN(3, 1, 8, width=4), defense, tiny_tensors(), cfg, "cpu", torch.Generator())
    res = defense.results(None, None, "cpu")
    assert results["selected_epoch"] == 5 and res["selected_epoch"] == 5
    assert res["selected_smoothing"] == -0.1
    assert res["smoothing_per_epoch"] == pytest.approx([0, 0, 0, -0.05, -0.1])


def test_plain_training_records_the_selected_epoch(monkeypatch):
    from mibench_core.models import train as train_mod

    vals = iter([0.5, 0.9, 0.7])
    monkeypatch.setattr(train_mod, "accuracy", lambda *a, **k: next(vals))
    cfg = {**TRAIN, "epochs": 3}
    _, results = train_classifier(MCNN(3, 1, 8, width=4), make_defense("none"), tiny_tensors(), cfg, "cpu",
                                  torch.Generator())  # fmt: skip
    assert results["selected_epoch"] == 2


# --- TL ----------------------------------------------------------------------------


def test_freezing_really_freezes_through_a_training_step():
    torch.manual_seed(0)
    model = MCNN(3, 1, 8, width=4)
    frozen = freeze_early_layers(model, 0.5)
    assert frozen and "fc" not in frozen
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    loss = F.cross_entropy(model(torch.randn(8, 1, 8, 8)), torch.arange(8) % 3)
    loss.backward()
    opt.step()
    after = model.state_dict()
    for key in before:
        layer = key.rsplit(".", 1)[0]
        if layer in frozen:
            assert torch.equal(before[key], after[key]), key  # weights and BN running stats
    assert not torch.equal(before["fc.weight"], after["fc.weight"])


def frozen_share(model) -> float:
    return sum(p.numel() for p in model.parameters() if not p.requires_grad) / sum(
        p.numel() for p in model.parameters()
    )


def test_tl_freezes_whole_blocks_by_parameter_share():
    # MCNN width 16, 5 classes: conv1+bn1 448, conv2+bn2 12,896, conv3+bn3 18,624, fc 1,285 of 33,253
    total = 33253
    shares = {}
    for fraction in (0.5, 0.75, 0.0, 1.0):
        model = MCNN(5, 1, 32, width=16)
        frozen = freeze_early_layers(model, fraction)
        shares[fraction] = frozen_share(model)
        for block in blocks_in_order(model):  # a conv is never frozen without its BatchNorm, nor the reverse
            assert len({name in frozen for name, _ in block}) == 1, block
    assert shares[0.5] == pytest.approx((448 + 12896) / total)
    assert shares[0.75] == pytest.approx((448 + 12896 + 18624) / total)
    assert shares[0.0] == 0.0 and shares[1.0] == shares[0.75]
    assert [n for n, _ in layers_in_order(MCNN(5, 1, 32, width=16))][:2] == ["body.0", "body.1"]


def test_tl_benchmark_strengths_freeze_different_fractions_close_to_their_request():
    achieved = {}
    for label, entry in benchmark_defenses().items():
        if entry["name"] != "tl":
            continue
        model = MCNN(5, 1, 32, width=16)
        freeze_early_layers(model, entry["params"]["frozen_fraction"])
        achieved[label] = frozen_share(model)
        assert achieved[label] == pytest.approx(entry["params"]["frozen_fraction"], abs=0.05), label
    assert len(achieved) == 2 and len({round(v, 3) for v in achieved.values()}) == 2


def test_rotation_batch_rotates_by_the_label():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(6, 1, 1, 1)
    out, k = rotate_batch(x, torch.Generator().manual_seed(0))
    for img, r, rot in zip(x, k, out, strict=True):
        assert torch.equal(torch.rot90(img, int(r), dims=(1, 2)), rot)


def test_tl_training_keeps_frozen_layers_at_their_pretrained_values():
    tensors = tiny_tensors()
    defense = make_defense("tl", pretrain_epochs=1, frozen_fraction=0.5)
    model = MCNN(3, 1, 8, width=4)
    snapshot = {}
    orig = defense.pretrain

    def spy(*args):
        m = orig(*args)
        snapshot.update({k: v.clone() for k, v in m.state_dict().items()})
        return m

    defense.pretrain = spy
    model, _ = train_classifier(model, defense, tensors, TRAIN, torch.device("cpu"), torch.Generator().manual_seed(0))
    res = defense.results(model, tensors, "cpu")
    assert res["pretrain_task"] == "rotation" and 0 < res["frozen_param_fraction"] < 1
    assert res["frozen_fraction_requested"] == 0.5 and res["frozen_param_fraction"] == frozen_share(model)
    for name in res["frozen_layers"]:
        for key, val in model.state_dict().items():
            if key.rsplit(".", 1)[0] == name:
                assert torch.equal(val, snapshot[key]), key


# --- DP-SGD ------------------------------------------------------------------------


def test_dp_sgd_reports_finite_epsilon_and_replaces_batchnorm():
    tensors = tiny_tensors()
    defense = make_defense("dp-sgd", noise_multiplier=1.0)
    model, results = train_classifier(
        MCNN(3, 1, 8, width=4), defense, tensors, TRAIN, torch.device("cpu"), torch.Generator().manual_seed(0)
    )
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    eps = defense.results(model, tensors, "cpu")["epsilon"]
    assert math.isfinite(eps) and eps > 0
    assert results["history"][0]["epsilon"] == pytest.approx(eps)
    assert all(not k.startswith("_module") for k in model.state_dict())


def test_dp_sgd_accounts_every_poisson_step_including_empty_batches():
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    from mibench_core.defenses.dpsgd import guarantee_line

    tensors = tiny_tensors(n=32)
    cfg = {**TRAIN, "epochs": 2, "batch_size": 1}  # expected batch 1: about a third of the batches are empty
    defense = make_defense("dp-sgd", noise_multiplier=1.0)
    train_classifier(MCNN(3, 1, 8, width=4), defense, tensors, cfg, "cpu", torch.Generator().manual_seed(0))
    res = defense.results(None, tensors, "cpu")
    assert res["sample_rate"] == 1 / 32 and res["steps"] == 64 and res["delta"] == 1e-5
    # an independent RDP computation from (q, sigma, steps, delta): Opacus' default orders
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    rdp = compute_rdp(q=1 / 32, noise_multiplier=1.0, steps=64, orders=orders)
    eps, _ = get_privacy_spent(orders=orders, rdp=rdp, delta=1e-5)
    assert res["epsilon"] == pytest.approx(eps, rel=1e-9)
    assert res["guarantee"] == guarantee_line(eps, 1e-5, "rdp", 1 / 32, 64)
    assert "delta=1e-05" in res["guarantee"] and "q=0.03125" in res["guarantee"] and "64 steps" in res["guarantee"]


def test_dp_control_is_the_same_groupnorm_model_without_clipping_or_noise():
    entries = benchmark_defenses()
    control, private = entries["dp-control"]["params"], entries["dp-sigma1"]["params"]
    assert control["private"] is False and private["private"] is True
    assert {k: v for k, v in control.items() if k != "private"} == {
        k: v for k, v in private.items() if k != "private"
    }  # the same architecture, optimizer and schedule: only the mechanism differs
    tensors = tiny_tensors()
    defense = make_defense("dp-sgd", **control)
    model, _ = train_classifier(MCNN(3, 1, 8, width=4), defense, tensors, TRAIN, "cpu", torch.Generator())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    res = defense.results(model, tensors, "cpu")
    assert "epsilon" not in res and res["guarantee"].startswith("none")


# --- adversarial training -------------------------------------------------------------


def test_pgd_stays_in_its_epsilon_ball_and_the_image_range():
    torch.manual_seed(0)
    model = MCNN(3, 1, 8, width=4).eval()
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    x[0] = 1.0  # saturated image: projection onto the range matters
    y = torch.arange(6) % 3
    eps = 2 * 8 / 255
    adv = pgd(model, x, y, eps, 2 * 2 / 255, 5)
    assert (adv - x).abs().max().item() <= eps + 1e-6
    assert adv.min() >= -1 and adv.max() <= 1
    assert (adv - x).abs().max().item() > 0.5 * eps  # it moved
    base = F.cross_entropy(model(x), y).item()
    assert F.cross_entropy(model(adv), y).item() >= base


class Threshold(torch.nn.Module):
    """Class 1 where the image's mean exceeds 50, class 0 otherwise."""

    def forward(self, x):
        big = (x.flatten(1).mean(1) > 50).float()
        return torch.stack([1 - big, big], dim=1)


def test_robust_accuracy_is_the_worst_case_over_restarts(monkeypatch):
    x, y = torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    calls = iter(range(10))

    def fake_pgd(model, x, y, eps, step_size, steps):
        out = x.clone()  # restart 0 finds nothing; restart 1 flips image 2
        if next(calls) == 1:
            out[2] = 100.0
        return out

    monkeypatch.setattr(adversarial, "pgd", fake_pgd)
    assert adversarial.robust_accuracy(Threshold(), x, y, 0.1, 0.01, 50, 2) == 0.75
    calls = iter(range(10))
    assert adversarial.robust_accuracy(Threshold(), x, y, 0.1, 0.01, 50, 1) == 1.0


def test_adversarial_training_reports_the_stronger_evaluation_attack():
    tensors = tiny_tensors()
    defense = make_defense("adv-training", eval_samples=8, eval_steps=10, eval_restarts=2)
    model, _ = train_classifier(MCNN(3, 1, 8, width=4), defense, tensors, TRAIN, "cpu", torch.Generator())
    torch.manual_seed(0)
    res = defense.results(model, tensors, "cpu")
    assert res["robust_eval_attack"].startswith("PGD L-inf, 10 steps, 2 random restarts")
    assert 0 <= res["robust_test_acc"] <= 1 and 0 <= res["robust_test_acc_train_attack"] <= 1
    assert (
        registry.get("defense", "adv-training").defaults["eval_steps"]
        > registry.get("defense", "adv-training").defaults["steps"]
    )


# --- output processing ------------------------------------------------------------------


def test_output_processing_functions():
    p = torch.tensor([[0.1, 0.6, 0.3], [0.2, 0.3, 0.5]])
    assert torch.equal(output.top_k(p, 1), torch.tensor([[0.0, 0.6, 0.0], [0.0, 0.0, 0.5]]))
    assert torch.equal(output.top_k(p, 2), torch.tensor([[0.0, 0.6, 0.3], [0.0, 0.3, 0.5]]))
    assert torch.equal(output.top_k(p, 5), p)
    assert torch.allclose(output.rounding(torch.tensor([[0.123, 0.877]]), 1), torch.tensor([[0.1, 0.9]]))
    assert torch.equal(output.label_only(p), torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    noisy = output.confidence_noise(p, 0.05, torch.Generator().manual_seed(0))
    assert torch.allclose(noisy.sum(1), torch.ones(2)) and (noisy >= 0).all()
    again = output.confidence_noise(p, 0.05, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again) and not torch.equal(noisy, p)
    assert torch.allclose(output.confidence_noise(p, 0.0), p / p.sum(1, keepdim=True))


def test_make_postprocess_dispatches_through_the_registry():
    from mibench_core.attacks.blackbox import make_postprocess

    p = torch.tensor([[0.1, 0.6, 0.3]])
    assert make_postprocess(None) is None and make_postprocess({"name": "none"}) is None
    assert torch.equal(make_postprocess({"name": "topk", "params": {"k": 1}})(p), output.top_k(p, 1))
    assert torch.equal(make_postprocess("label_only")(p), torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.equal(make_postprocess("rounding")(torch.tensor([[0.123, 0.877]])), torch.tensor([[0.12, 0.88]]))
    # the stochastic one receives the stream it is given, the others never see it
    noisy = make_postprocess({"name": "noise", "params": {"std": 0.05}}, gen=torch.Generator().manual_seed(3))(p)
    assert torch.equal(noisy, output.confidence_noise(p, 0.05, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="valid"):
        make_postprocess({"name": "blur"})
    with pytest.raises(ValueError, match="no parameter"):
        make_postprocess({"name": "topk", "params": {"kk": 1}})


# --- defended targets load through prepare, without retraining ------------------------------


@pytest.mark.parametrize("name", ["mid", "dp-sgd", "tl", "bido", "negative-ls", "adv-training"])
def test_load_classifier_rebuilds_defended_architecture(tmp_path, name, monkeypatch):
    model = make_defense(name).prepare(MCNN(3, 1, 8, width=4)).eval()
    store.save_tensors(tmp_path / "model.safetensors", model.state_dict())
    entry = registry.get("defense", name)
    manifest = {
        "spec": {"arch": "mcnn", "arch_params": {"width": 4}, "defense": {"name": name, "params": entry.defaults}},
        "results": {"num_classes": 3, "channels": 1, "resolution": 8},
    }
    monkeypatch.setattr(store, "read_manifest", lambda d: manifest)
    # pretraining or training inside load_classifier would fail loudly here
    monkeypatch.setattr(type(make_defense(name)), "pretrain", lambda *a: (_ for _ in ()).throw(AssertionError))
    loaded = load_classifier(tmp_path)
    x = torch.randn(2, 1, 8, 8)
    torch.manual_seed(0)  # MID's sampled deployment draws the same noise for both
    want = model(x)
    torch.manual_seed(0)
    assert torch.allclose(loaded(x), want, atol=1e-6)
