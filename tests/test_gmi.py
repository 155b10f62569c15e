"""GMI prior and attack: losses and update rule on hand-computed values, and a tiny run."""

import math

import torch
from torch import nn

from mibench_core.attacks.contract import AttackContext
from mibench_core.attacks.gmi import gmi_loss, nesterov_step, run_attack
from mibench_core.priors.gmi_gan import Critic, GANPrior, Generator, gradient_penalty


def test_gmi_loss_by_hand():
    score = torch.tensor([0.5, -1.0])
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1])
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    ce1 = math.log(2)
    expected = torch.tensor([-0.5 + 100 * ce0, 1.0 + 100 * ce1])
    assert torch.allclose(gmi_loss(score, logits, labels, 100.0), expected)


def test_nesterov_step_matches_authors_update():
    z, v, g = torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([2.0])
    z_new, v_new = nesterov_step(z, v, g, lr=0.1, momentum=0.9)
    # v' = 0.9*0.5 - 0.1*2 = 0.25 ; z' = 1 - 0.9*0.5 + 1.9*0.25 = 1.025
    assert torch.allclose(v_new, torch.tensor([0.25])) and torch.allclose(z_new, torch.tensor([1.025]))


def test_gradient_penalty_of_a_linear_critic_is_exact():
    class Linear(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.full((1, 1, 2, 2), 0.25))

        def forward(self, x):
            return (x * self.w).flatten(1).sum(1)

    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    gp = gradient_penalty(Linear(), real, fake)
    assert torch.allclose(gp, torch.tensor((0.5 - 1.0) ** 2))  # ||w|| = 0.5


def test_generator_and_critic_shapes():
    for res in (8, 16, 32, 64):
        G, D = Generator(10, 4, 1, res).eval(), Critic(4, 1, res)
        x = G(torch.randn(3, 10))
        assert x.shape == (3, 1, res, res) and x.abs().max() <= 1
        assert D(x).shape == (3,)


class ToyTarget(nn.Module):
    """Class = which half of the image is brighter; features are the half means."""

    feat_dim = 2

    def features(self, x):
        h = x.shape[-1] // 2
        return torch.stack([x[..., :h].mean((1, 2, 3)), x[..., h:].mean((1, 2, 3))], 1)

    def head(self, f):
        return 10 * f

    def forward(self, x):
        return self.head(self.features(x))


def test_gmi_run_reaches_the_target_classes_and_keeps_best_restart():
    torch.manual_seed(0)
    G, D = Generator(8, 4, 1, 8).eval(), Critic(4, 1, 8).eval()
    for net in (G, D):
        net.requires_grad_(False)
    ctx = AttackContext(2, 1, 8, [0, 1], torch.device("cpu"), torch.Generator().manual_seed(0), target=ToyTarget(),
                        prior=GANPrior(G, D, 8))  # fmt: skip
    res = run_attack(ctx, per_class=3, iterations=60, lr=0.05, momentum=0.9, lambda_iden=100.0, clip_z=1.0,
                     restarts=2, reference_batch=6)  # fmt: skip
    assert res.images.shape == (6, 1, 8, 8) and res.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert res.info["target_success"] == 1.0
    assert res.extras["latents"].abs().max() <= 1.0 + 1e-6
    assert sum(res.info["restart_chosen_counts"]) == 6
    # kept restart has the best target logit among restarts: recompute from the returned latents
    with torch.no_grad():
        logits = ToyTarget()(G(res.extras["latents"]))
    assert torch.allclose(logits.gather(1, res.labels[:, None]).squeeze(1), res.extras["target_logit"], atol=1e-5)
