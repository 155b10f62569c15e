"""GMI prior (Zhang et al., "The Secret Revealer", CVPR 2020).

DCGAN generator (z of dimension 100 -> linear to 4x4 -> stride-2 5x5
transposed convolutions with BatchNorm and ReLU -> tanh) and a WGAN-GP critic
(stride-2 5x5 convolutions, InstanceNorm with affine parameters, LeakyReLU
0.2, a final 4x4 convolution to one score), as in the authors' ``Generator``
and ``DGWGAN``. Trained on the public split with gradient penalty 10, 5
critic steps per generator step, Adam lr 2e-4, betas (0.5, 0.999).

Resolution: the paper's 64x64 nets have three intermediate up/down blocks;
we generalise to any power of two >= 8 (32x32 has two). ``dim`` (64 in the
paper) and the number of generator steps are config parameters; the CPU
default trains fewer steps than the paper and says so in config/README.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mibench_core.priors.common import SamplesLatents, descend, image_shape, load_gan, n_blocks, start

METHODS = [
    {
        "name": "gmi-gan",
        "kind": "prior",
        "call": "train_prior",
        "description": "GMI prior: DCGAN generator + WGAN-GP critic trained on the public split (Zhang et al. 2020)",
        "defaults": {
            "z_dim": 100,
            "dim": 64,
            "steps": 3000,
            "batch_size": 64,
            "n_critic": 5,
            "gp_weight": 10.0,
            "lr": 0.0002,
            "beta1": 0.5,
            "beta2": 0.999,
        },
        "bounds": {
            "z_dim": "[1, inf)",
            "dim": "[1, inf)",
            "steps": "[1, inf)",
            "batch_size": "[1, inf)",
            "n_critic": "[1, inf)",
            "gp_weight": "[0, inf)",
            "lr": "(0, inf)",
            "beta1": "[0, 1)",
            "beta2": "[0, 1)",
        },
    }
]

log = logging.getLogger("mibench.prior")


class Generator(nn.Module):
    def __init__(self, z_dim: int = 100, dim: int = 64, channels: int = 1, resolution: int = 32):
        super().__init__()
        n_up = n_blocks(resolution)
        c = dim * 2 ** (n_up - 1)
        self.z_dim = z_dim
        self.l1 = nn.Sequential(nn.Linear(z_dim, c * 16, bias=False), nn.BatchNorm1d(c * 16), nn.ReLU())
        self.c0 = c
        blocks: list[nn.Module] = []
        for _ in range(n_up - 1):
            blocks += [
                nn.ConvTranspose2d(c, c // 2, 5, 2, padding=2, output_padding=1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(),
            ]
            c //= 2
        blocks += [nn.ConvTranspose2d(c, channels, 5, 2, padding=2, output_padding=1), nn.Tanh()]
        self.l2 = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.l2(self.l1(z).view(len(z), self.c0, 4, 4))


def critic_trunk(dim: int, channels: int, resolution: int) -> tuple[list[nn.Module], int]:
    """GMI's critic convolutions: stride-2 5x5, InstanceNorm (affine) after the first, LeakyReLU 0.2,
    down to 4x4; returns (layers, channels of the last)."""
    n_down = n_blocks(resolution)
    layers: list[nn.Module] = [nn.Conv2d(channels, dim, 5, 2, 2), nn.LeakyReLU(0.2)]
    c = dim
    for _ in range(n_down - 1):
        layers += [nn.Conv2d(c, 2 * c, 5, 2, 2), nn.InstanceNorm2d(2 * c, affine=True), nn.LeakyReLU(0.2)]
        c *= 2
    return layers, c


class Critic(nn.Module):
    """WGAN-GP critic (GMI's DGWGAN): no BatchNorm, so the gradient penalty is per-sample."""

    def __init__(self, dim: int = 64, channels: int = 1, resolution: int = 32):
        super().__init__()
        layers, c = critic_trunk(dim, channels, resolution)
        self.net = nn.Sequential(*layers, nn.Conv2d(c, 1, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator | None = None
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates."""
    alpha = torch.rand(len(real), 1, 1, 1, generator=gen).to(real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


@dataclass
class GANPrior(SamplesLatents):
    generator: Generator
    critic: Critic
    z_dim: int


def networks(p: dict, shape: dict) -> tuple[Generator, Critic]:
    """(G, D) for the spec's parameters and the data's ``channels`` and ``resolution``."""
    return (
        Generator(p["z_dim"], p["dim"], shape["channels"], shape["resolution"]),
        Critic(p["dim"], shape["channels"], shape["resolution"]),
    )


def train_prior(job: dict) -> tuple[list[str], dict, str]:
    run = start(job)
    p = run.params
    public = run.data["public_x"]
    shape = image_shape(public)
    G, D = (net.to(run.device) for net in networks(p, shape))
    opt_g, opt_d = run.adam(G), run.adam(D)
    bs = p["batch_size"]
    real_batch = run.real_batches(public)

    def d_step():
        real, _ = real_batch()
        with torch.no_grad():
            fake = G(run.latents(bs))
        d_real, d_fake = D(real).mean(), D(fake).mean()
        loss_d = d_fake - d_real + p["gp_weight"] * gradient_penalty(D, real, fake, run.gen)
        descend(opt_d, loss_d)
        return {"loss_d": loss_d, "wasserstein": (d_real - d_fake).detach()}

    def g_step():
        loss_g = -D(G(run.latents(bs))).mean()
        descend(opt_g, loss_g)
        return {"loss_g": loss_g}

    history = run.alternate(p["n_critic"], d_step, g_step, "gmi-gan")
    G.eval()
    with torch.no_grad():
        samples = G(run.latents(64))
    return run.finish(G, D, samples, {"z_dim": p["z_dim"], **shape, "history": history})


def load(prior_dir: str | Path, device="cpu") -> GANPrior:
    G, D, p, _ = load_gan(prior_dir, networks, device)
    return GANPrior(G, D, p["z_dim"])
