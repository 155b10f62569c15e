"""White-box attacks: each loss on hand-checked values, a behaviour
check of the shared optimisation loops on a toy problem, and a tiny smoke of
every attack through the real attack stage."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mibench_core import store
from mibench_core.attacks import deepinversion, kedmi, lomma, plgmi, secretgen, vmi
from mibench_core.attacks.common import load_reconstructions
from mibench_core.attacks.contract import AttackContext
from mibench_core.models.train import load_classifier
from mibench_core.priors import kedmi_gan

# ------------------------------------------------------------------ losses on hand values


def test_kedmi_loss_hand_value():
    d_logits = torch.zeros(1, 2)  # softplus(log 2) - log 2 = log 3 - log 2
    logits = torch.zeros(1, 4)  # CE = log 4
    got = kedmi.kedmi_loss(kedmi_gan.prior_term(d_logits), logits, torch.tensor([2]), lambda_iden=100.0)
    assert got.item() == pytest.approx(math.log(3) - math.log(2) + 100 * math.log(4), rel=1e-6)


def test_reparameterize_hand_value():
    z = kedmi.reparameterize(torch.tensor([1.0]), torch.tensor([math.log(4.0)]), torch.tensor([0.5]))
    assert z.item() == pytest.approx(1.0 + 2.0 * 0.5)


def test_plgmi_loss_sums_max_margin_over_views():
    v1 = torch.tensor([[1.0, 3.0, 2.0]])  # y=1: -3 + 2 = -1
    v2 = torch.tensor([[4.0, 0.0, 1.0]])  # y=1: -0 + 4 = 4
    assert plgmi.plgmi_loss([v1, v2], torch.tensor([1])).tolist() == pytest.approx([3.0])


def test_lomma_logit_loss_and_feature_regulariser():
    logits = torch.tensor([[1.0, 5.0], [2.0, -1.0]])
    assert lomma.logit_loss(logits, torch.tensor([1, 0])).tolist() == [-5.0, -2.0]
    feats = torch.tensor([[1.0, 3.0]])
    assert lomma.feature_reg(feats, torch.tensor([0.0, 1.0])).item() == pytest.approx((1 + 4) / 2)


class _Linear(nn.Module):
    """features = x flattened; head = fixed matrix."""

    def __init__(self, w):
        super().__init__()
        self.fc = nn.Linear(w.shape[1], w.shape[0], bias=False)
        self.fc.weight.data = w

    def features(self, x):
        return x.flatten(1)

    def head(self, f):
        return self.fc(f)

    def forward(self, x):
        return self.head(self.features(x))


def test_lomma_identity_averages_target_and_students_then_adds_regulariser():
    x = torch.tensor([[1.0, 2.0]])
    target = _Linear(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # logits [1, 2]
    student = _Linear(torch.tensor([[0.0, 0.0], [3.0, 0.0]]))  # logits [0, 3]
    mu = torch.tensor([0.0, 0.0])  # reg = (1 + 4) / 2
    got = lomma.lomma_identity(target, [student], x, torch.tensor([1]), mu, lam_reg=2.0)
    assert got.item() == pytest.approx((-2.0 - 3.0) / 2 + 2.0 * 2.5)


def test_vmi_kl_hand_value_and_against_torch_distributions():
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    got = vmi.gaussian_kl_to_standard(mu, logvar)
    assert got.item() == pytest.approx(0.5 * (2 - math.log(2)), rel=1e-6)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    assert got.item() == pytest.approx(torch.distributions.kl_divergence(q, p).sum().item(), rel=1e-6)
    loss = vmi.vmi_loss(torch.zeros(1, 2), torch.tensor([0]), mu, logvar, kl_weight=0.5)
    assert loss.item() == pytest.approx(math.log(2) + 0.25 * (2 - math.log(2)), rel=1e-6)


def test_total_variation_hand_value():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    # horizontal [-1, -1], vertical [-2, -2], diagonals 2 - 1 and 0 - 3
    assert deepinversion.total_variation(x).item() == pytest.approx(math.sqrt(2) + math.sqrt(8) + 1 + 3)


def test_bn_statistics_loss_hand_value():
    bn = nn.BatchNorm1d(1)
    bn.running_mean.fill_(0.0)
    bn.running_var.fill_(1.0)
    inputs = torch.tensor([[1.0], [3.0]])  # mean 2, biased var 1
    assert deepinversion.bn_statistics_loss(inputs, bn).item() == pytest.approx(0.0 + 2.0)


def test_bn_hooks_collect_one_loss_per_layer_and_fail_clearly_without_batchnorm():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Conv2d(2, 2, 3), nn.BatchNorm2d(2)).eval()
    hooks = deepinversion.BNStatisticsHooks(model)
    model(torch.randn(3, 1, 8, 8))
    assert len(hooks.losses) == 2 and hooks.loss().item() > 0 and hooks.losses == []
    hooks.close()
    with pytest.raises(ValueError, match="BatchNorm"):
        deepinversion.BNStatisticsHooks(nn.Sequential(nn.Conv2d(1, 2, 3)))


def test_secretgen_selects_latents_labelled_y_by_confidence():
    probs = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.45, 0.55], [0.8, 0.2]])
    idx, labels = secretgen.select_latents(probs, [0, 1], per_class=3)
    assert idx[:3].tolist() == [0, 4, 2]  # labelled 0, by p_0
    # class 1: the two labelled 1 by p_1, then the best remaining p_1 (0.3 -> index 2)
    assert idx[3:].tolist() == [1, 3, 2] and labels.tolist() == [0, 0, 0, 1, 1, 1]


# ------------------------------------------------------------------ behaviour on a toy problem


def _toy_ctx(z_dim=4):
    """G reshapes z into a 1x2x2 image; T is linear with class c favouring +direction c."""
    w = torch.tensor([[3.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]])
    G = lambda z: z.view(-1, 1, 2, 2)  # noqa: E731
    prior = SimpleNamespace(generator=G, z_dim=z_dim, sample_z=lambda n, gen=None: torch.randn(n, z_dim, generator=gen))
    return AttackContext(3, 1, 2, [0, 1, 2], torch.device("cpu"), torch.Generator().manual_seed(0), _Linear(w), prior)


def test_distributional_search_moves_each_class_mean_towards_its_class():
    ctx = _toy_ctx()
    loss_fn = lambda x, y: nn.functional.cross_entropy(ctx.target(x), y, reduction="none")  # noqa: E731
    images, labels, z, info = kedmi.optimise_distribution(
        ctx, loss_fn, per_class=20, iterations=150, lr=0.05, samples_per_step=4, desc="toy"
    )
    acc = (ctx.target(images).argmax(1) == labels).float().mean().item()
    assert acc > 0.9 and labels.tolist() == [c for c in range(3) for _ in range(20)]


def test_vmi_kl_weight_keeps_q_closer_to_the_prior():
    ctx = _toy_ctx()
    free = vmi.run_attack(ctx, per_class=50, iterations=150, lr=0.05, kl_weight=0.0, samples_per_step=4)
    ctx = _toy_ctx()
    tied = vmi.run_attack(ctx, per_class=50, iterations=150, lr=0.05, kl_weight=5.0, samples_per_step=4)
    assert tied.extras["latents"].norm(dim=1).mean() < free.extras["latents"].norm(dim=1).mean()


# ------------------------------------------------------------------ smoke through the attack stage


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from whitebox_tiny import build_data, build_prior, build_target

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("wb-attacks")
    data = build_data(root)
    target = build_target(root, data)
    priors = {
        "gmi-gan": build_prior(root, "gmi-gan", data, None, dim=8, steps=2, batch_size=16),
        "kedmi-gan": build_prior(root, "kedmi-gan", data, target, dim=8, steps=2, batch_size=16),
        "plgmi-gan": build_prior(root, "plgmi-gan", data, target, dim=8, steps=2, batch_size=16, top_n=8),
        "lomma-students": build_prior(root, "lomma-students", data, target, epochs=1, n_students=2, widths=[4]),
    }
    return root, data, target, priors


@pytest.mark.parametrize(
    "name,prior,aux,params",
    [
        ("kedmi", "kedmi-gan", (), {"iterations": 3}),
        ("plgmi", "plgmi-gan", (), {"iterations": 3}),
        ("lomma-gmi", "gmi-gan", ("lomma-students",), {"iterations": 3, "restarts": 2}),
        ("lomma-kedmi", "kedmi-gan", ("lomma-students",), {"iterations": 3}),
        ("vmi", "gmi-gan", (), {"iterations": 3}),
        ("vmi", "kedmi-gan", (), {"iterations": 3}),
        ("deepinversion", None, (), {"iterations": 3}),
        ("secretgen", "gmi-gan", (), {"iterations": 3, "candidates": 40}),
    ],
)
def test_attack_smoke_through_the_stage(tiny, name, prior, aux, params):
    from whitebox_tiny import run_attack_job

    root, data, target, priors = tiny
    out, manifest = run_attack_job(
        root / f"{name}-{prior}", name, data, target, priors.get(prior), [priors[a] for a in aux], per_class=2, **params
    )
    recon = load_reconstructions(out)
    assert recon["images"].shape == (6, 1, 16, 16)
    assert recon["labels"].tolist() == [0, 0, 1, 1, 2, 2]
    assert recon["images"].abs().max() <= 1.0 and torch.isfinite(recon["images"]).all()
    # the recorded diagnostics are the target's view of the saved reconstructions
    with torch.no_grad():
        logits = load_classifier(target, "cpu")(recon["images"])
    hit = (logits.argmax(1) == recon["labels"]).float().mean().item()
    assert manifest["results"]["target_success"] == pytest.approx(hit, abs=1e-6)
    confidence = logits.softmax(1).gather(1, recon["labels"][:, None]).squeeze(1)
    assert torch.allclose(recon["target_confidence"], confidence, atol=1e-5)
    assert store.verify(out) == []


def test_deepinversion_fails_clearly_on_a_target_without_batchnorm():
    ctx = _toy_ctx()  # a linear target: no BatchNorm
    with pytest.raises(ValueError, match="DeepInversion needs a target with BatchNorm"):
        deepinversion.run_attack(
            ctx, per_class=1, iterations=1, lr=0.1, tv_weight=0.0, l2_weight=0.0, bn_weight=1.0, jitter=0
        )


def test_an_attack_that_returns_non_finite_images_fails_and_saves_nothing(tiny, monkeypatch):
    from whitebox_tiny import run_attack_job

    from mibench_core.attacks import vmi

    real = vmi.run_attack

    def diverged(ctx, **kw):
        result = real(ctx, **kw)
        result.images[1] = float("nan")
        return result

    monkeypatch.setattr(vmi, "run_attack", diverged)
    root, data, target, priors = tiny
    with pytest.raises(RuntimeError, match="1 of 6 reconstructions are not finite"):
        run_attack_job(root / "vmi-nan", "vmi", data, target, priors["gmi-gan"], [], per_class=2, iterations=2)
    assert not (root / "vmi-nan" / "recon.safetensors").exists()


# ------------------------------------------------------------------ KEDMI's realness on trained-size batches


def test_minibatch_features_depend_on_the_batch_a_sample_is_scored_in():
    torch.manual_seed(0)
    D = kedmi_gan.KDiscriminator(num_classes=3, dim=4, channels=1, resolution=16).eval()
    x = torch.randn(64, 1, 16, 16)
    alone, in_batch = kedmi_gan.prior_term(D(x[:5])[1]), kedmi_gan.prior_term(D(x)[1])[:5]
    assert not torch.allclose(alone, in_batch, atol=1e-4)


class _SpyDiscriminator(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.sizes = inner, []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.inner(x)


def test_kedmi_prior_scores_realness_in_chunks_of_about_its_training_batch():
    D = _SpyDiscriminator(kedmi_gan.KDiscriminator(num_classes=3, dim=4, channels=1, resolution=8).eval())
    prior = kedmi_gan.KEDMIPrior(None, D, 8, 3, batch_size=64)
    x = torch.randn(1000, 1, 8, 8)
    for n, sizes in [(10, [10]), (65, [65]), (130, [65, 65]), (1000, [63] * 8 + [62] * 8)]:
        D.sizes.clear()
        got = prior.prior_loss(x[:n])
        assert D.sizes == sizes and got.shape == (n,)
    # the first chunk scored alone gives the same values: nothing leaks between chunks
    D.sizes.clear()
    assert torch.allclose(prior.prior_loss(x[:130])[:65], prior.prior_loss(x[:65]), atol=1e-6)


@pytest.mark.parametrize("name,aux", [("kedmi", ()), ("lomma-kedmi", ("lomma-students",))])
def test_kedmi_attacks_score_the_prior_on_batches_of_the_trained_size(tiny, monkeypatch, name, aux):
    # the tiny KEDMI prior trained on batches of 16; 3 classes: ceil(16 / 3) = 6 latents a class a step
    from whitebox_tiny import public_view

    from mibench_core.models.train import load_classifier
    from mibench_core.priors import load_prior

    root, data, target, priors = tiny
    prior = load_prior(priors["kedmi-gan"])
    assert prior.batch_size == 16
    spy = _SpyDiscriminator(prior.discriminator)
    prior.discriminator = spy
    ctx = AttackContext(3, 1, 16, [0, 1, 2], torch.device("cpu"), torch.Generator().manual_seed(0),
                        load_classifier(target), prior, str(public_view(data)),
                        [load_prior(priors[a]) for a in aux])  # fmt: skip
    if name == "kedmi":
        res = kedmi.run_attack(ctx, per_class=2, iterations=3, lr=0.02, lambda_iden=100.0, samples_per_step=1)
    else:
        res = lomma.run_kedmi(ctx, 2, 3, 0.02, 100.0, 1, 1.0, 50)
    assert spy.sizes == [18, 18, 18]  # one realness batch of 6 x 3 latents per step
    assert res.info["latents_per_step"] == 18 and res.images.shape == (6, 1, 16, 16)
