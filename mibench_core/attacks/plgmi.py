"""PLG-MI: Pseudo Label-Guided Model Inversion (Yuan et al., AAAI 2023).

Needs the ``plgmi-gan`` prior (a conditional GAN trained on public images
pseudo-labelled by the target). For each target class y, latents z are
optimised with the generator conditioned on y, minimising the max-margin
loss of the target over two independently augmented views,

    L(z) = sum_{v=1,2} [-l_y + max_{j != y} l_j](T(aug_v(G(z, y))))

(the authors' augmentations, :func:`~mibench_core.priors.plgmi_gan.augmenter`:
random resized crop 0.8-1, colour jitter of brightness and contrast 0.2 on
every view and nothing else of colour, horizontal flip, rotation 5 degrees;
kornia, differentiable), Adam lr 0.1, 600 iterations, z ~ N(0, I)
unconstrained.

Faithful to the paper; all classes and reconstructions run in one batch
(the generator is in eval mode, its conditional BN uses running statistics,
so latents do not interact).
"""

from __future__ import annotations

import torch

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.attacks.summary import summarise
from mibench_core.priors.common import descend
from mibench_core.priors.plgmi_gan import augmenter, max_margin_loss
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "plgmi",
        "kind": "attack",
        "call": "run_attack",
        "description": "PLG-MI (Yuan et al. 2023): max-margin over augmented views through the pseudo-label cGAN",
        "defaults": {"per_class": 8, "iterations": 600, "lr": 0.1, "n_views": 2},
        "bounds": {"per_class": "[1, inf)", "iterations": "[1, inf)", "lr": "(0, inf)", "n_views": "[1, inf)"},
        "priors": ["plgmi-gan"],
        "access": "white-box",
    }
]


def plgmi_loss(logits_views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Per-latent loss: max-margin summed over the augmented views."""
    return sum(max_margin_loss(lv, labels, reduction="none") for lv in logits_views)


def run_attack(ctx: AttackContext, per_class: int, iterations: int, lr: float, n_views: int) -> AttackResult:
    G, T = ctx.prior.generator, ctx.target
    dev = ctx.device
    labels = torch.tensor(ctx.classes).repeat_interleave(per_class)
    y = labels.to(dev)
    z = ctx.prior.sample_z(len(labels), ctx.gen).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    aug = augmenter(ctx.resolution)
    bar = progress(range(iterations), desc="plgmi", unit="it")
    for it in bar:
        x = G(z, y)
        per_latent = plgmi_loss([T(aug(x)) for _ in range(n_views)], y)
        loss = per_latent.mean()  # the authors' batch means; Adam is scale-free
        descend(opt, loss)
        if it % 50 == 0:  # .item() synchronises a GPU: only now and then
            bar.set_postfix(loss=f"{loss.item():.3f}")
    with torch.no_grad():
        images = G(z, y)
    info, extras = summarise(ctx, images, labels)
    info["final_loss"] = loss.item()
    return AttackResult(images.cpu(), labels, {"latents": z.detach().cpu(), **extras}, info)
