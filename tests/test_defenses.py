"""Defenses: losses against hand-computed values, HSIC properties, freezing,
DP-SGD accounting, PGD projection, output processing, rebuild on load."""

import math

import pytest
import torch
import torch.nn.functional as F

from mibench_core import registry, store
from mibench_core.defenses import bido, label_smoothing, mid, output
from mibench_core.defenses.adversarial import pgd
from mibench_core.defenses.transfer import freeze_early_layers, layers_in_order, rotate_batch
from mibench_core.models.classifiers import MCNN
from mibench_core.models.train import load_classifier, train_classifier

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


def test_mid_sigma_is_softplus_shifted_and_test_time_uses_the_mean():
    model = make_defense("mid").prepare(MCNN(3, 1, 8, width=4))
    x = torch.randn(5, 1, 8, 8)
    mu, sigma = model.stats(x)
    st = model.st_layer(model.base.features(x))
    assert torch.allclose(sigma, F.softplus(st[:, model.k :] - 5.0))
    model.eval()
    mu, _ = model.stats(x)
    assert torch.equal(model(x), model.fc(mu))
    assert torch.equal(model(x), model(x))  # deterministic at test time


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


def test_label_smoothing_ramp():
    f = label_smoothing.smoothing_factor
    assert f(-0.05, 0.2, 0.5, 0.25) == 0.0
    assert f(-0.05, 0.625, 0.5, 0.25) == pytest.approx(-0.025)
    assert f(-0.05, 0.9, 0.5, 0.25) == pytest.approx(-0.05)


# --- TL ----------------------------------------------------------------------------


def test_freezing_really_freezes_through_a_training_step():
    torch.manual_seed(0)
    model = MCNN(3, 1, 8, width=4)
    frozen = freeze_early_layers(model, 0.5)
    layers = layers_in_order(model)
    assert len(frozen) == round(0.5 * len(layers)) and "fc" not in frozen
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
    assert torch.allclose(loaded(x), model(x), atol=1e-6)
