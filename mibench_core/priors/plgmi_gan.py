"""PLG-MI conditional GAN (Yuan et al., "Pseudo Label-Guided Model Inversion
Attack via Conditional Generative Adversarial Network", AAAI 2023).

1. Pseudo-labels: the target classifies every public image; each image goes to
   its top class, and per class the ``top_n`` most confident images are kept
   (n = 30 in the paper for CelebA). A class the target never predicts gets
   the ``top_n`` public images with the highest probability of that class.
2. A conditional GAN on those pseudo-labelled images: SN-ResNet-style
   generator with conditional BatchNorm (z of dimension 128), projection
   discriminator with spectral norm (Miyato & Koyama 2018), hinge loss. The
   generator also minimises 0.2 x the max-margin loss of the target on
   augmented generated images (:func:`augmenter`, the authors' list: random
   resized crop 0.8-1, colour jitter of brightness and contrast 0.2 on every
   image, horizontal flip, rotation 5 degrees; kornia, differentiable):

       L_G = -D(G(z, y), y) + 0.2 * [-l_y + max_{j != y} l_j](T(aug(G(z, y))))

   5 discriminator steps per generator step; Adam 2e-4, betas (0, 0.9).

Deviations: power-of-two resolutions >= 8 (one residual up/down block per
doubling above 4x4; 32x32 grayscale by default, the paper 64x64 RGB); the
augmentations run on images mapped to [0, 1] (our models take [-1, 1]);
``dim`` (64 in the paper) and the number of steps are
config parameters; ``max_public`` (null: all, the paper) selects from a random
subset of the public images. The prior is tied to its target (``needs_target``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from mibench_core.priors.common import SamplesLatents, descend, image_shape, load_gan, n_blocks, start

METHODS = [
    {
        "name": "plgmi-gan",
        "kind": "prior",
        "call": "train_prior",
        "description": "PLG-MI conditional GAN on top-n target-pseudo-labelled public images (Yuan et al. 2023)",
        "defaults": {
            "top_n": 30,
            "z_dim": 128,
            "dim": 64,
            "steps": 30000,
            "batch_size": 64,
            "n_dis": 5,
            "alpha": 0.2,
            "lr": 0.0002,
            "beta1": 0.0,
            "beta2": 0.9,
            "max_public": None,
        },
        "bounds": {
            "top_n": "[1, inf)",
            "z_dim": "[1, inf)",
            "dim": "[1, inf)",
            "steps": "[1, inf)",
            "batch_size": "[1, inf)",
            "n_dis": "[1, inf)",
            "alpha": "[0, inf)",
            "lr": "(0, inf)",
            "beta1": "[0, 1)",
            "beta2": "[0, 1)",
            "max_public": "[1, inf)",
        },
        "needs_target": True,
    }
]

log = logging.getLogger("mibench.prior")


# ----------------------------------------------------------------- losses


def max_margin_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-l_y + max_{j != y} l_j (the authors' ``max_margin_loss``)."""
    real = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.scatter(1, labels[:, None], float("-inf")).max(1).values
    loss = other - real
    return loss.mean() if reduction == "mean" else loss


def hinge_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def augmenter(resolution: int) -> nn.Module:
    """The authors' differentiable augmentations (kornia), in their order and with kornia's
    default probabilities as they use them: random resized crop (scale 0.8-1, square; always),
    colour jitter of brightness 0.2 and contrast 0.2 (always, nothing else of colour), horizontal
    flip (p 0.5), rotation up to 5 degrees (p 0.5). Takes and returns images in [-1, 1]; the
    augmentations run on them mapped to [0, 1], kornia's range."""
    import kornia.augmentation as K

    seq = K.AugmentationSequential(
        K.RandomResizedCrop((resolution, resolution), scale=(0.8, 1.0), ratio=(1.0, 1.0), p=1.0),
        K.ColorJitter(brightness=0.2, contrast=0.2, p=1.0),
        K.RandomHorizontalFlip(p=0.5),
        K.RandomRotation(5.0, p=0.5),
    )

    class _Aug(nn.Module):
        def __init__(self):
            super().__init__()
            self.seq = seq

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.seq(x.add(1).div(2)).mul(2).sub(1)

    return _Aug()


# ----------------------------------------------------------------- networks


class CondBatchNorm2d(nn.Module):
    """BatchNorm without affine parameters, then a per-class scale and shift."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(num_classes, channels)
        self.beta = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.gamma(y)[:, :, None, None] * self.bn(x) + self.beta(y)[:, :, None, None]


class GenBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.b1 = CondBatchNorm2d(c_in, num_classes)
        self.c1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.b2 = CondBatchNorm2d(c_out, num_classes)
        self.c2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.sc = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.b1(x, y)), scale_factor=2)
        h = self.c2(F.relu(self.b2(self.c1(h), y)))
        return h + self.sc(F.interpolate(x, scale_factor=2))


class CondGenerator(nn.Module):
    """ResNet generator with conditional BN: z -> 4x4 -> up-blocks -> BN-ReLU-conv-tanh."""

    def __init__(self, num_classes: int, z_dim: int = 128, dim: int = 64, channels: int = 1, resolution: int = 32):
        super().__init__()
        n_up = n_blocks(resolution)
        self.z_dim, self.num_classes = z_dim, num_classes
        c = dim * 2 ** min(n_up, 4)
        self.c0 = c
        self.l1 = nn.Linear(z_dim, c * 16)
        blocks = []
        for i in range(n_up):
            c_out = dim * 2 ** min(n_up - i - 1, 4)
            blocks.append(GenBlock(c, c_out, num_classes))
            c = c_out
        self.blocks = nn.ModuleList(blocks)
        self.bn = nn.BatchNorm2d(c)
        self.out = nn.Conv2d(c, channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.l1(z).view(len(z), self.c0, 4, 4)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.out(F.relu(self.bn(h))))


class DiscBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, first: bool):
        super().__init__()
        self.first = first
        self.c1 = spectral_norm(nn.Conv2d(c_in, c_out, 3, 1, 1))
        self.c2 = spectral_norm(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.sc = spectral_norm(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = F.avg_pool2d(self.c2(F.relu(self.c1(h))), 2)
        sc = self.sc(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.sc(x), 2)
        return h + sc


class ProjectionDiscriminator(nn.Module):
    """SN-ResNet projection discriminator: psi(phi(x)) + <embed(y), phi(x)>."""

    def __init__(self, num_classes: int, dim: int = 64, channels: int = 1, resolution: int = 32):
        super().__init__()
        n_down = n_blocks(resolution)
        blocks, c = [], channels
        for i in range(n_down):
            c_out = dim * 2 ** min(i, 4)
            blocks.append(DiscBlock(c, c_out, first=i == 0))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.l_y = spectral_norm(nn.Linear(c, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, c))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum((2, 3))
        return self.l_y(h).squeeze(1) + (self.embed(y) * h).sum(1)


# ----------------------------------------------------------------- training


def select_top_n(probs: torch.Tensor, top_n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and pseudo-labels of the ``top_n`` most confident public images per class."""
    conf, pred = probs.max(1)
    idx_all, lab_all = [], []
    for c in range(probs.shape[1]):
        members = torch.nonzero(pred == c).squeeze(1)
        if len(members) == 0:  # the target never predicts c: most probable images of c instead
            members = torch.arange(len(probs))
            order = probs[:, c].argsort(descending=True)
        else:
            order = conf[members].argsort(descending=True)
        pick = members[order[:top_n]]
        idx_all.append(pick)
        lab_all.append(torch.full((len(pick),), c, dtype=torch.long))
    return torch.cat(idx_all), torch.cat(lab_all)


@dataclass
class PLGPrior(SamplesLatents):
    generator: CondGenerator
    discriminator: ProjectionDiscriminator
    z_dim: int
    num_classes: int


def networks(p: dict, shape: dict) -> tuple[CondGenerator, ProjectionDiscriminator]:
    """(G, D) for the spec's parameters and the data's ``channels``, ``resolution`` and ``num_classes``."""
    return (
        CondGenerator(shape["num_classes"], p["z_dim"], p["dim"], shape["channels"], shape["resolution"]),
        ProjectionDiscriminator(shape["num_classes"], p["dim"], shape["channels"], shape["resolution"]),
    )


def train_prior(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.models.train import load_classifier

    run = start(job)
    p, device = run.params, run.device
    T = load_classifier(run.target_dir, device)
    public, probs = run.labelled_public(T)
    K = probs.shape[1]
    shape = image_shape(public, K)
    sel, pseudo = select_top_n(probs, p["top_n"])
    images = public[sel]
    G, D = (net.to(device) for net in networks(p, shape))
    opt_g, opt_d = run.adam(G), run.adam(D)
    aug = augmenter(shape["resolution"])
    bs = p["batch_size"]
    real_batch = run.real_batches(images, pseudo, replacement=True)

    def d_step():
        real, y_real = real_batch()
        z, y_fake = run.labelled_latents(bs, K)
        with torch.no_grad():
            fake = G(z, y_fake)
        loss_d = hinge_d_loss(D(real, y_real), D(fake, y_fake))
        descend(opt_d, loss_d)
        return {"loss_d": loss_d}

    def g_step():
        z, y_fake = run.labelled_latents(bs, K)
        fake = G(z, y_fake)
        loss_adv = -D(fake, y_fake).mean()
        loss_inv = max_margin_loss(T(aug(fake)), y_fake)
        descend(opt_g, loss_adv + p["alpha"] * loss_inv)
        return {"loss_g_adv": loss_adv, "loss_g_inv": loss_inv}

    history = run.alternate(p["n_dis"], d_step, g_step, "plgmi-gan")
    G.eval()
    D.eval()
    per = max(1, 64 // K)
    with torch.no_grad():
        y = torch.arange(K).repeat_interleave(per).to(device)
        samples = G(run.latents(len(y)), y)
        acc = (T(samples).argmax(1) == y).float().mean().item()
    results = {
        "z_dim": p["z_dim"],
        **shape,
        "pseudo_labelled": len(images),
        "pseudo_labelled_per_class": torch.bincount(pseudo, minlength=K).tolist(),
        "target_acc_on_conditional_samples": acc,
        "history": history,
    }
    return run.finish(G, D, samples, results, nrow=per)  # one row per class


def load(prior_dir: str | Path, device="cpu") -> PLGPrior:
    G, D, p, res = load_gan(prior_dir, networks, device)
    return PLGPrior(G, D, p["z_dim"], res["num_classes"])
