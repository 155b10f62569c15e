"""LOKT's target-assisted ACGAN (T-ACGAN) prior (Nho et al., "Label-Only Model
Inversion Attacks via Knowledge Transfer", NeurIPS 2023).

A conditional generator G(z, y) and a discriminator D with two heads on a
shared trunk: an adversarial head and a class head C (K outputs, one per
target class). The target is used only through its *hard labels*:

* the public images are pseudo-labelled by the target once (label queries);
* every generated batch is labelled by the target (label queries);
* D: hinge adversarial loss on public vs generated images +
  CE(C(x_pub), T-label) + CE(C(G(z, y)), T-label of G(z, y));
* G: -adv(G(z, y)) + ``lambda_cls`` * CE(C(G(z, y)), y).

So G learns to produce images the target labels y, and C∘D learns to
imitate the target's decisions; both later stand in for the target in a
white-box attack (mibench_core.attacks.lokt).

Threat model by construction: this module builds a label-only
:class:`~mibench_core.attacks.oracle.Oracle` from the target artifact in
:func:`train_prior`; :func:`train_tacgan`, which does the training, receives
only that oracle, never the model. Queries are recorded in the manifest
(``queries``) and added to the attack's count. The prior sees what the
attacker sees: in a run with output processing (rounding, top-k, noise,
label-only answers) its oracle applies the same processing (the plan makes
one prior per target and output defense and puts the defense in the spec,
key ``output``; registry ``access: label``).

Architectures: G is the GMI/DCGAN generator whose input is z concatenated
with one-hot(y); D is the GMI critic trunk with spectral normalisation
(stabilises the hinge loss) and the two linear heads. Optimiser: Adam
lr 2e-4, betas (0, 0.9), ``n_dis`` 5 D steps per G step (the SNGAN settings
of the PLG-MI code base LOKT builds on, as we read it); ``lambda_cls`` 1.
The CPU default trains far fewer steps than the paper and caps the public
images (``public_samples``; None: all), since each one costs a label query.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from mibench_core.data.common import to_model_range
from mibench_core.priors.common import (
    SamplesLatents,
    Training,
    descend,
    image_shape,
    load_gan,
    n_blocks,
    public_subset,
    start,
)
from mibench_core.priors.gmi_gan import Generator

METHODS = [
    {
        "name": "lokt-tacgan",
        "kind": "prior",
        "call": "train_prior",
        "description": "LOKT T-ACGAN (Nho et al. 2023): conditional GAN + class head, trained with the target's "
        "hard labels",
        "defaults": {
            "z_dim": 128,
            "dim": 64,
            "steps": 10000,
            "batch_size": 64,
            "n_dis": 5,
            "lr": 0.0002,
            "beta1": 0.0,
            "beta2": 0.9,
            "lambda_cls": 1.0,
            "public_samples": None,
        },
        "bounds": {
            "z_dim": "[1, inf)",
            "dim": "[1, inf)",
            "steps": "[1, inf)",
            "batch_size": "[1, inf)",
            "n_dis": "[1, inf)",
            "lr": "(0, inf)",
            "beta1": "[0, 1)",
            "beta2": "[0, 1)",
            "lambda_cls": "[0, inf)",
            "public_samples": "[1, inf)",
        },
        "needs_target": True,
        "access": "label",
    }
]

log = logging.getLogger("mibench.prior")


class ConditionalGenerator(nn.Module):
    """G(z, y): the DCGAN generator on [z, one-hot(y)]."""

    def __init__(self, z_dim: int, num_classes: int, dim: int, channels: int, resolution: int):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.net = Generator(z_dim + num_classes, dim, channels, resolution)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1))


class ACDiscriminator(nn.Module):
    """Shared convolutional trunk, an adversarial head and a class head."""

    def __init__(self, num_classes: int, dim: int, channels: int, resolution: int):
        super().__init__()
        n_down = n_blocks(resolution)
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(channels, dim, 5, 2, 2)), nn.LeakyReLU(0.2)]
        c = dim
        for _ in range(n_down - 1):
            layers += [spectral_norm(nn.Conv2d(c, 2 * c, 5, 2, 2)), nn.LeakyReLU(0.2)]
            c *= 2
        layers += [nn.Flatten()]
        self.trunk = nn.Sequential(*layers)
        feat = c * 16
        self.adv = spectral_norm(nn.Linear(feat, 1))
        self.cls = nn.Linear(feat, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.adv(h).view(-1), self.cls(h)


@dataclass
class TACGANPrior(SamplesLatents):
    generator: ConditionalGenerator
    discriminator: ACDiscriminator
    z_dim: int
    num_classes: int
    queries: int  # label queries spent training this prior


def networks(p: dict, shape: dict) -> tuple[ConditionalGenerator, ACDiscriminator]:
    """(G, D) for the spec's parameters and the data's ``channels``, ``resolution`` and ``num_classes``."""
    return (
        ConditionalGenerator(p["z_dim"], shape["num_classes"], p["dim"], shape["channels"], shape["resolution"]),
        ACDiscriminator(shape["num_classes"], p["dim"], shape["channels"], shape["resolution"]),
    )


def train_tacgan(
    public: torch.Tensor, oracle, params: dict, device: torch.device, gen: torch.Generator
) -> tuple[ConditionalGenerator, ACDiscriminator, list[dict]]:
    """Train T-ACGAN from public uint8 images and a label-only oracle (never the model)."""
    if getattr(oracle, "access", None) != "label":
        raise TypeError("T-ACGAN is trained through a label-only oracle")
    run, p, K = Training(device, gen, params), params, oracle.num_classes
    G, D = (net.to(device) for net in networks(p, image_shape(public, K)))
    opt_g, opt_d = run.adam(G), run.adam(D)
    with torch.no_grad():
        pub_y = torch.cat([oracle(to_model_range(public[i : i + 512]).to(device)) for i in range(0, len(public), 512)])
    bs = p["batch_size"]
    real_batch = run.real_batches(public, pub_y)

    def d_step():
        real, real_y = real_batch()
        z, y = run.labelled_latents(bs, K)
        with torch.no_grad():
            fake = G(z, y)
            fake_y = oracle(fake)  # the target's hard labels of generated images
        adv_r, cls_r = D(real)
        adv_f, cls_f = D(fake)
        loss_adv = F.relu(1 - adv_r).mean() + F.relu(1 + adv_f).mean()
        loss_cls = F.cross_entropy(cls_r, real_y) + F.cross_entropy(cls_f, fake_y)
        loss_d = loss_adv + loss_cls
        descend(opt_d, loss_d)
        return {"loss_d": loss_d, "cls_agreement_fake": (cls_f.argmax(1) == fake_y).float().mean()}

    def g_step():
        z, y = run.labelled_latents(bs, K)
        adv, cls = D(G(z, y))
        loss_g = -adv.mean() + p["lambda_cls"] * F.cross_entropy(cls, y)
        descend(opt_g, loss_g)
        return {"loss_g": loss_g}

    history = run.alternate(p["n_dis"], d_step, g_step, "lokt-tacgan")
    G.eval()
    D.eval()
    return G, D, history


def train_prior(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.attacks.blackbox import make_postprocess
    from mibench_core.attacks.oracle import build_oracle

    run = start(job)
    p, device = run.params, run.device
    public = public_subset(run.data["public_x"], p["public_samples"], run.gen)
    # The target is reachable only through this label-only oracle, which applies the run's output
    # processing (spec key ``output``) as the attack's oracle does, with its noise on its own stream.
    postprocess = make_postprocess(job["spec"].get("output"), gen=torch.Generator().manual_seed(job["seed"] + 1))
    oracle = build_oracle(run.target_dir, "label", device, postprocess=postprocess)
    G, D, history = train_tacgan(public, oracle, p, device, run.gen)
    K, rows = oracle.num_classes, 8
    with torch.no_grad():
        y = torch.arange(K).repeat_interleave(rows).to(device)
        samples = G(run.latents(len(y)), y)
    results = {"z_dim": p["z_dim"], **image_shape(public, K), "queries": oracle.queries, "history": history}
    return run.finish(G, D, samples, results, nrow=rows)


def load(prior_dir: str | Path, device="cpu") -> TACGANPrior:
    G, D, p, res = load_gan(prior_dir, networks, device)
    return TACGANPrior(G, D, p["z_dim"], res["num_classes"], res["queries"])
