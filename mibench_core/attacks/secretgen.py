"""SecretGen, white-box variant (Yuan et al., "SecretGen: Privacy Recovery on
Pre-trained Models via Distribution Discrimination", ECCV 2022).

Two stages on a GAN trained on public data (here the ``gmi-gan`` prior):

1. Latent selection: draw ``candidates`` latents, label their images with
   the target, and for every class keep the ``per_class`` latents the target
   assigns to it with the highest confidence (when fewer are labelled y,
   the rest are the remaining latents with the highest p_y).
2. Latent optimisation with the discriminator (distribution discrimination)
   loss plus, in the white-box variant, the identity loss:

       L(z) = -D(G(z)) + lambda_iden * CE(T(G(z)), y)

Our choices where the method reference gives none: the optimisation uses
GMI's setting (the authors' Nesterov SGD, lr 0.02, momentum 0.9, z clamped to
[-1, 1], lambda_iden 100, 1,500 iterations, per-latent losses divided by the
reference batch 60), 5,000 candidates. Deviation: the paper trains its own
GAN with an auxiliary (blurred / masked private image) input; our prior is
the unconditional public-data GAN.
"""

from __future__ import annotations

import torch

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.attacks.gmi import optimise_latents
from mibench_core.attacks.summary import summarise

METHODS = [
    {
        "name": "secretgen",
        "kind": "attack",
        "call": "run_attack",
        "description": "SecretGen white-box (Yuan et al. 2022): latent selection by target label, then D + "
        "identity loss",
        "defaults": {
            "per_class": 8,
            "candidates": 5000,
            "iterations": 1500,
            "lr": 0.02,
            "momentum": 0.9,
            "lambda_iden": 100.0,
            "clip_z": 1.0,
            "reference_batch": 60,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "candidates": "[1, inf)",
            "iterations": "[1, inf)",
            "lr": "(0, inf)",
            "momentum": "[0, 1)",
            "lambda_iden": "[0, inf)",
            "clip_z": "(0, inf)",
            "reference_batch": "[1, inf)",
        },
        "priors": ["gmi-gan"],
        "access": "white-box",
    }
]


@torch.no_grad()
def select_latents(probs: torch.Tensor, classes: list[int], per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into the candidate pool (and their classes): per class, the ``per_class``
    candidates labelled y with the highest p_y, topped up by the highest p_y overall."""
    pred = probs.argmax(1)
    picks, labels = [], []
    for c in classes:
        labelled = pred == c
        # labelled candidates first (key + 1), each group by p_y
        key = probs[:, c] + labelled.float()
        picks.append(key.argsort(descending=True)[:per_class])
        labels.append(torch.full((per_class,), c, dtype=torch.long))
    return torch.cat(picks), torch.cat(labels)


def run_attack(
    ctx: AttackContext, per_class: int, candidates: int, iterations: int, lr: float, momentum: float,
    lambda_iden: float, clip_z: float, reference_batch: int, batch: int = 500,
) -> AttackResult:  # fmt: skip
    G, D, T = ctx.prior.generator, ctx.prior.critic, ctx.target
    dev = ctx.device
    pool = ctx.prior.sample_z(max(candidates, per_class), ctx.gen).clamp(-clip_z, clip_z)
    with torch.no_grad():
        probs = torch.cat([T(G(pool[i : i + batch].to(dev))).softmax(1).cpu() for i in range(0, len(pool), batch)])
    idx, labels = select_latents(probs, ctx.classes, per_class)
    selected_labelled = (probs[idx].argmax(1) == labels).float().mean().item()
    z, y = pool[idx].to(dev), labels.to(dev)
    z = optimise_latents(G, D, T, z, y, iterations, lr, momentum, lambda_iden, clip_z, reference_batch, "secretgen")
    with torch.no_grad():
        images = G(z)
    info, extras = summarise(ctx, images, labels)
    info["selected_labelled_fraction"] = selected_labelled
    return AttackResult(images.cpu(), labels, {"latents": z.cpu(), **extras}, info)
