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

from mibench_core import store
from mibench_core.data.common import to_model_range
from mibench_core.priors.common import n_blocks
from mibench_core.runtime import pick_device, progress, seed_everything

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


class Critic(nn.Module):
    """WGAN-GP critic (GMI's DGWGAN): no BatchNorm, so the gradient penalty is per-sample."""

    def __init__(self, dim: int = 64, channels: int = 1, resolution: int = 32):
        super().__init__()
        n_down = n_blocks(resolution)
        layers: list[nn.Module] = [nn.Conv2d(channels, dim, 5, 2, 2), nn.LeakyReLU(0.2)]
        c = dim
        for _ in range(n_down - 1):
            layers += [nn.Conv2d(c, 2 * c, 5, 2, 2), nn.InstanceNorm2d(2 * c, affine=True), nn.LeakyReLU(0.2)]
            c *= 2
        layers += [nn.Conv2d(c, 1, 4)]
        self.net = nn.Sequential(*layers)

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
class GANPrior:
    generator: Generator
    critic: Critic
    z_dim: int

    def sample_z(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.z_dim, generator=gen)


def train_prior(job: dict) -> tuple[list[str], dict, str]:
    from torchvision.utils import save_image

    device = pick_device(job["device"])
    gen = seed_everything(job["seed"])
    p = job["spec"]["params"]
    data = store.load_tensors(Path(job["inputs"]["data"]["dir"]) / "data.safetensors")
    public = data["public_x"]
    channels, resolution = public.shape[1], public.shape[-1]
    G = Generator(p["z_dim"], p["dim"], channels, resolution).to(device)
    D = Critic(p["dim"], channels, resolution).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=p["lr"], betas=(p["beta1"], p["beta2"]))
    opt_d = torch.optim.Adam(D.parameters(), lr=p["lr"], betas=(p["beta1"], p["beta2"]))
    bs, n = p["batch_size"], len(public)
    history = []
    bar = progress(range(p["steps"]), desc="gmi-gan", unit="G-step")
    perm, cursor = torch.randperm(n, generator=gen), 0
    for step in bar:
        for _ in range(p["n_critic"]):
            if cursor + bs > n:
                perm, cursor = torch.randperm(n, generator=gen), 0
            real = to_model_range(public[perm[cursor : cursor + bs]]).to(device)
            cursor += bs
            z = torch.randn(bs, p["z_dim"], generator=gen).to(device)
            with torch.no_grad():
                fake = G(z)
            d_real, d_fake = D(real).mean(), D(fake).mean()
            gp = gradient_penalty(D, real, fake, gen)
            loss_d = d_fake - d_real + p["gp_weight"] * gp
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        z = torch.randn(bs, p["z_dim"], generator=gen).to(device)
        loss_g = -D(G(z)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if step % 50 == 0 or step == p["steps"] - 1:
            wd = (d_real - d_fake).item()
            history.append({"step": step, "loss_d": loss_d.item(), "loss_g": loss_g.item(), "wasserstein": wd})
            bar.set_postfix(wd=f"{wd:.3f}")
    G.eval()
    outdir = Path(job["outdir"])
    store.save_tensors(outdir / "generator.safetensors", G.state_dict())
    store.save_tensors(outdir / "discriminator.safetensors", D.state_dict())
    with torch.no_grad():
        samples = G(torch.randn(64, p["z_dim"], generator=gen).to(device)).cpu()
    with store.atomic_path(outdir / "samples.png") as tmp:
        save_image(samples.add(1).div(2), str(tmp), nrow=8, format="png")
    results = {"z_dim": p["z_dim"], "channels": channels, "resolution": resolution, "history": history}
    return ["generator.safetensors", "discriminator.safetensors", "samples.png"], results, str(device)


def load(prior_dir: str | Path, device="cpu") -> GANPrior:
    manifest = store.read_manifest(prior_dir)
    p, res = manifest["spec"]["params"], manifest["results"]
    G = Generator(p["z_dim"], p["dim"], res["channels"], res["resolution"])
    D = Critic(p["dim"], res["channels"], res["resolution"])
    G.load_state_dict(store.load_tensors(Path(prior_dir) / "generator.safetensors"))
    D.load_state_dict(store.load_tensors(Path(prior_dir) / "discriminator.safetensors"))
    for net in (G, D):
        net.to(device).eval()
        for q in net.parameters():
            q.requires_grad_(False)
    return GANPrior(G, D, p["z_dim"])
