"""KEDMI inversion-specific GAN (Chen et al., "Knowledge-Enriched Distributional
Model Inversion Attacks", ICCV 2021).

The generator is GMI's DCGAN generator. The discriminator has K outputs, one
per *target* class, and is trained semi-supervised on the public split with
the target's soft pseudo-labels:

    L_D = softCE(D(x_pub), softmax(T(x_pub)))
          + 0.5 * [softplus(lse(D(x_pub))) - lse(D(x_pub)) + softplus(lse(D(G(z))))]

(the realness logit is the log-sum-exp of the K logits, Salimans et al. 2016).
The generator matches the mean intermediate discriminator features of real
and fake images and lowers the entropy of D's class prediction on fakes:

    L_G = || mean f_D(x_pub) - mean f_D(G(z)) ||_1 + 1e-4 * H(softmax(D(G(z))))

Adam lr 2e-4, betas (0.5, 0.999) and 5 discriminator steps per generator
step, like GMI (``n_dis``); entropy weight 1e-4. The discriminator follows the
authors' ``MinibatchDiscriminator``: strided convolutions, then a minibatch
discrimination layer, then a linear layer to K logits; the features that
are matched are the convolutional ones (before minibatch discrimination).
The prior is tied to the target whose pseudo-labels it learned
(``needs_target``), so its artifact id includes the target's. Because the
minibatch features depend on the batch, the attacks score realness on
batches of about this prior's training ``batch_size``
(:meth:`KEDMIPrior.prior_loss`).

Deviations: power-of-two resolutions >= 8 (32x32 grayscale by default,
one conv block fewer per halving from the paper's 64x64), as in
:mod:`mibench_core.priors.gmi_gan`; the minibatch-discrimination layer has 50
kernels of dimension 5; the number of generator steps is a config parameter
(the CPU default trains far fewer than the paper); ``max_public`` (null: all,
the paper) trains on a random subset of the public images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core.priors.common import SamplesLatents, descend, image_shape, load_gan, start
from mibench_core.priors.gmi_gan import Generator, critic_trunk

METHODS = [
    {
        "name": "kedmi-gan",
        "kind": "prior",
        "call": "train_prior",
        "description": "KEDMI inversion-specific GAN: K-way discriminator on the target's soft labels (Chen et al. "
        "2021)",
        "defaults": {
            "z_dim": 100,
            "dim": 64,
            "steps": 3000,
            "batch_size": 64,
            "n_dis": 5,
            "entropy_weight": 0.0001,
            "lr": 0.0002,
            "beta1": 0.5,
            "beta2": 0.999,
            "max_public": None,
        },
        "bounds": {
            "z_dim": "[1, inf)",
            "dim": "[1, inf)",
            "steps": "[1, inf)",
            "batch_size": "[1, inf)",
            "n_dis": "[1, inf)",
            "entropy_weight": "[0, inf)",
            "lr": "(0, inf)",
            "beta1": "[0, 1)",
            "beta2": "[0, 1)",
            "max_public": "[1, inf)",
        },
        "needs_target": True,
    }
]

log = logging.getLogger("mibench.prior")


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016: per-sample similarity to the rest of the batch, appended to the features."""

    def __init__(self, in_features: int, out_features: int = 50, kernel_dim: int = 5):
        super().__init__()
        self.out_features, self.kernel_dim = out_features, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, out_features * kernel_dim) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = (x @ self.T).view(-1, self.out_features, self.kernel_dim)
        dist = (m[:, None] - m[None]).abs().sum(3)  # [N, N, B]
        o = torch.exp(-dist).sum(1) - 1.0  # exclude self (exp(0) = 1)
        return torch.cat([x, o], 1)


class KDiscriminator(nn.Module):
    """K-way discriminator: ``forward(x) -> (features, logits[K])``."""

    def __init__(self, num_classes: int, dim: int = 64, channels: int = 1, resolution: int = 32):
        super().__init__()
        layers, c = critic_trunk(dim, channels, resolution)
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.feat_dim = c * 16
        self.mbd = MinibatchDiscrimination(self.feat_dim)
        self.fc = nn.Linear(self.feat_dim + self.mbd.out_features, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.conv(x)
        return feat, self.fc(self.mbd(feat))


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k p_k log softmax(logits)_k."""
    return -(target_probs * F.log_softmax(logits, 1)).sum(1).mean()


def semi_supervised_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * [softplus(lse(real)) - lse(real) + softplus(lse(fake))], batch means."""
    lse_r, lse_f = torch.logsumexp(logits_real, 1), torch.logsumexp(logits_fake, 1)
    return 0.5 * (F.softplus(lse_r).mean() - lse_r.mean() + F.softplus(lse_f).mean())


def discriminator_loss(
    logits_real: torch.Tensor, logits_fake: torch.Tensor, target_probs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(supervised soft-CE term on the target's pseudo-labels, semi-supervised GAN term)."""
    return soft_cross_entropy(logits_real, target_probs), semi_supervised_loss(logits_real, logits_fake)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of softmax(logits)."""
    return -(F.softmax(logits, 1) * F.log_softmax(logits, 1)).sum(1).mean()


def generator_loss(
    feat_real: torch.Tensor, feat_fake: torch.Tensor, logits_fake: torch.Tensor, entropy_weight: float
) -> torch.Tensor:
    """Feature matching (L1 of the mean features, averaged over dimensions) + weight * entropy."""
    return (feat_real.mean(0) - feat_fake.mean(0)).abs().mean() + entropy_weight * entropy(logits_fake)


def prior_term(logits: torch.Tensor) -> torch.Tensor:
    """Per-sample KEDMI prior loss softplus(lse(D(x))) - lse(D(x)) = -log sigmoid(lse(D(x)))."""
    lse = torch.logsumexp(logits, 1)
    return F.softplus(lse) - lse


@dataclass
class KEDMIPrior(SamplesLatents):
    generator: Generator
    discriminator: KDiscriminator
    z_dim: int
    num_classes: int
    batch_size: int  # the discriminator's training batch; its minibatch features are calibrated to it

    def prior_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample realness loss of the attack (lower = more realistic).

        The minibatch-discrimination features of a sample depend on the batch
        it is scored in, so ``x`` is scored in batches of about the size the
        discriminator was trained on: ``x`` split into round(len(x) /
        batch_size) (at least one) consecutive, near-equal chunks."""
        chunks = x.tensor_split(max(1, round(len(x) / self.batch_size)))
        return torch.cat([prior_term(self.discriminator(chunk)[1]) for chunk in chunks])


def networks(p: dict, shape: dict) -> tuple[Generator, KDiscriminator]:
    """(G, D) for the spec's parameters and the data's ``channels``, ``resolution`` and ``num_classes``."""
    return (
        Generator(p["z_dim"], p["dim"], shape["channels"], shape["resolution"]),
        KDiscriminator(shape["num_classes"], p["dim"], shape["channels"], shape["resolution"]),
    )


def train_prior(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.models.train import load_classifier

    run = start(job)
    p, device = run.params, run.device
    target = load_classifier(run.target_dir, device)
    public, pseudo = run.labelled_public(target)  # the target's soft labels of the public data
    shape = image_shape(public, pseudo.shape[1])
    G, D = (net.to(device) for net in networks(p, shape))
    opt_g, opt_d = run.adam(G), run.adam(D)
    bs = p["batch_size"]
    real_batch = run.real_batches(public, pseudo)

    def d_step():
        real, probs = real_batch()
        with torch.no_grad():
            fake = G(run.latents(bs))
        _, logits_real = D(real)
        _, logits_fake = D(fake)
        loss_lab, loss_unlab = discriminator_loss(logits_real, logits_fake, probs)
        descend(opt_d, loss_lab + loss_unlab)
        return {"loss_d_lab": loss_lab, "loss_d_unlab": loss_unlab}

    def g_step():
        real, _ = real_batch()
        feat_fake, logits_fake = D(G(run.latents(bs)))
        with torch.no_grad():
            feat_real, _ = D(real)
        loss_g = generator_loss(feat_real, feat_fake, logits_fake, p["entropy_weight"])
        descend(opt_g, loss_g)
        return {"loss_g": loss_g}

    history = run.alternate(p["n_dis"], d_step, g_step, "kedmi-gan")
    G.eval()
    D.eval()
    with torch.no_grad():
        samples = G(run.latents(64))
        fake_pred = target(samples).argmax(1).cpu()
    histogram = torch.bincount(fake_pred, minlength=shape["num_classes"]).tolist()
    results = {"z_dim": p["z_dim"], **shape, "history": history, "target_class_histogram_of_samples": histogram}
    return run.finish(G, D, samples, results)


def load(prior_dir: str | Path, device="cpu") -> KEDMIPrior:
    G, D, p, res = load_gan(prior_dir, networks, device)
    return KEDMIPrior(G, D, p["z_dim"], res["num_classes"], p["batch_size"])
