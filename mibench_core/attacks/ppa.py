"""PPA: Plug & Play Attacks (Struppek et al., "Plug & Play Attacks: Towards
Robust and Flexible Model Inversion Attacks", ICML 2022).

White-box, on a StyleGAN prior (``stylegan`` trained here, or the
pretrained ``stylegan2-ada``):

1. Initial selection: map ``search_space`` random z to W with truncation
   ``truncation_psi`` (0.5; the first ``truncation_cutoff`` (8) style inputs
   truncated), score each image by the target's softmax for every class,
   averaged over the image and its horizontal flip (``candidate_flip``), and
   keep per class the ``candidates`` (200) highest-scoring ones.
2. Optimisation of one w per candidate (PPA's ``single_w``: the first style
   input's w, broadcast to every layer), ``iterations`` (50) steps of Adam
   (``lr`` 0.005, betas (``beta1``, ``beta2``) = (0.1, 0.1)) on the
   Poincaré loss ``arccosh(1 + 2||u - v||^2 / ((1 - ||u||^2)(1 - ||v||^2)))``
   between the l1-normalised logits u and the one-hot target minus 1e-4
   (clipped at 0), on images randomly resized-cropped (scale
   ``crop_scale`` (0.9, 1), aspect 1; one crop per batch, as the authors'
   batched transforms), plus ``discriminator_weight`` (0) times the
   non-saturating discriminator loss; the learning rate drops by 10x at the
   fractions ``lr_milestones`` (0.6, 0.8) of the iterations (the paper's
   MultiStepLR at 30 and 40 of 50).
3. Final selection: per class, the ``per_class`` (50) candidates with the
   highest mean target confidence over ``final_iterations`` (100) random
   transformations (resized crop, scale (0.5, 0.9), aspect (0.8, 1.2), and
   a horizontal flip with probability 0.5).

Images reach the target through the prior's adaptation (PPA's centre crop
800 of 1024 and resizing to the target's input for the pretrained FFHQ
generator; none for the prior trained here), with ``const`` noise. Our
choices: candidates are optimised ``batch_size`` at a time (the loss is the
batch mean, as the authors'; Adam makes the result independent of the batch
split up to its epsilon); transformations draw from the job's seeded
generator. :func:`poincare_loss`, :func:`initial_selection`,
:func:`select_final` and the transforms are shared with IF-GMI.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.attacks.summary import summarise
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "ppa",
        "kind": "attack",
        "call": "run_attack",
        "description": "PPA (Struppek et al. 2022): W-space search in a StyleGAN with initial selection, Poincare "
        "loss, Adam and final selection by confidence under random transforms",
        "defaults": {
            "per_class": 50,
            "candidates": 200,
            "search_space": 2000,
            "truncation_psi": 0.5,
            "truncation_cutoff": 8,
            "candidate_flip": True,
            "iterations": 50,
            "lr": 0.005,
            "beta1": 0.1,
            "beta2": 0.1,
            "lr_milestones": [0.6, 0.8],
            "crop_scale": [0.9, 1.0],
            "discriminator_weight": 0.0,
            "final_iterations": 100,
            "batch_size": 25,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "candidates": "[1, inf)",
            "search_space": "[1, inf)",
            "truncation_psi": "[0, 1]",
            "truncation_cutoff": "[1, inf)",
            "iterations": "[0, inf)",
            "lr": "(0, inf)",
            "beta1": "[0, 1)",
            "beta2": "[0, 1)",
            "lr_milestones": "[0, 1]",
            "crop_scale": "(0, 1]",
            "discriminator_weight": "[0, inf)",
            "final_iterations": "[1, inf)",
            "batch_size": "[1, inf)",
        },
        "priors": ["stylegan", "stylegan2-ada"],
        "access": "white-box",
    }
]


def poincare_loss(logits: torch.Tensor, labels: torch.Tensor, xi: float = 1e-4) -> torch.Tensor:
    """Per-sample Poincaré distance between l1-normalised logits and the one-hot target minus xi."""
    u = logits / logits.abs().sum(dim=1, keepdim=True)
    v = (F.one_hot(labels, logits.shape[1]).to(u.dtype) - xi).clamp(0, 1)
    uu, vv = u.square().sum(1), v.square().sum(1)
    delta = 2 * (u - v).square().sum(1) / ((1 - uu) * (1 - vv))
    return torch.acosh(1 + delta)


# ------------------------------------------------------------------ transforms (one draw per batch)


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand([], generator=gen).item()


def resized_crop_box(h: int, w: int, scale, ratio, gen: torch.Generator) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box (top, left, height, width), drawn from ``gen``."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * _uniform(gen, scale[0], scale[1])
        aspect = math.exp(_uniform(gen, *log_ratio))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, [], generator=gen))
            left = int(torch.randint(0, w - cw + 1, [], generator=gen))
            return top, left, ch, cw
    in_ratio = w / h
    if in_ratio < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        ch, cw = h, int(round(h * max(ratio)))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def random_resized_crop(x: torch.Tensor, scale, ratio, gen: torch.Generator) -> torch.Tensor:
    """Crop a random box (the same for the whole batch) and resize back (differentiable)."""
    h, w = x.shape[-2:]
    top, left, ch, cw = resized_crop_box(h, w, scale, ratio, gen)
    crop = x[..., top : top + ch, left : left + cw]
    if (ch, cw) == (h, w):
        return crop
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False, antialias=ch > h or cw > w)


def attack_transform(x: torch.Tensor, crop_scale, gen: torch.Generator) -> torch.Tensor:
    """PPA's optimisation transform: resized crop with scale ``crop_scale``, aspect ratio 1."""
    return random_resized_crop(x, crop_scale, (1.0, 1.0), gen)


def selection_transform(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """PPA's final-selection transform: resized crop (0.5-0.9, aspect 0.8-1.2) and a flip with p 0.5."""
    x = random_resized_crop(x, (0.5, 0.9), (0.8, 1.2), gen)
    return x.flip(-1) if torch.rand([], generator=gen).item() < 0.5 else x


# ------------------------------------------------------------------ selection steps


@torch.no_grad()
def initial_selection(
    ctx: AttackContext, search_space: int, candidates: int, psi: float, cutoff: int | None, flip: bool, batch: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPA's initial selection: W+ codes [C * candidates, num_ws, w_dim] and their labels."""
    prior, T = ctx.prior, ctx.target
    if candidates > search_space:
        raise ValueError(f"candidates ({candidates}) must not exceed search_space ({search_space})")
    ws = prior.sample_ws(search_space, ctx.gen, ctx.device, psi, cutoff)
    conf = []
    for i in progress(range(0, search_space, batch), desc="initial selection", unit="batch"):
        x = prior.images(ws[i : i + batch], ctx.resolution, ctx.channels)
        views = [x, x.flip(-1)] if flip else [x]
        conf.append(sum(T(v).softmax(1) for v in views) / len(views))
    conf = torch.cat(conf)
    picks, labels = [], []
    for c in ctx.classes:
        top = conf[:, c].topk(candidates).indices
        picks.append(ws[top])
        labels += [c] * candidates
    return torch.cat(picks), torch.tensor(labels, device=ctx.device)


@torch.no_grad()
def final_selection(
    score_fn,
    images: torch.Tensor,
    labels: torch.Tensor,
    classes,
    per_class: int,
    iterations: int,
    gen: torch.Generator,
    batch: int = 256,
) -> torch.Tensor:
    """Indices of the ``per_class`` images per class with the highest mean target confidence
    over ``iterations`` random transforms (``score_fn(x, y)`` -> confidence of y)."""
    scores = torch.zeros(len(images), device=images.device)
    for _ in range(iterations):
        for i in range(0, len(images), batch):
            x = selection_transform(images[i : i + batch], gen)
            scores[i : i + batch] += score_fn(x, labels[i : i + batch])
    picks = []
    for c in classes:
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {c}: {len(idx)} candidates for {per_class} reconstructions (per_class)")
        picks.append(idx[scores[idx].topk(per_class).indices.sort().values])
    return torch.cat(picks)


def select_final(
    ctx: AttackContext, images: torch.Tensor, labels: torch.Tensor, per_class: int, iterations: int
) -> torch.Tensor:
    """PPA's final selection with the target's confidence (shared with IF-GMI): indices into ``images``."""
    T = ctx.target

    def confidence(x, yb):
        return T(x).softmax(1).gather(1, yb[:, None]).squeeze(1)

    return final_selection(confidence, images, labels, ctx.classes, per_class, iterations, ctx.gen)


def lr_factor(it: int, iterations: int, milestones) -> float:
    """MultiStepLR (gamma 0.1) with milestones given as fractions of the iterations."""
    return 0.1 ** sum(it >= round(m * iterations) for m in milestones)


def optimise_w(
    ctx: AttackContext,
    w: torch.Tensor,
    y: torch.Tensor,
    iterations: int,
    lr: float,
    betas,
    milestones,
    crop_scale,
    discriminator_weight: float,
    batch_size: int,
    desc: str,
) -> torch.Tensor:
    """PPA's optimisation of single w's [N, w_dim] for labels ``y``; returns the optimised w."""
    prior, T = ctx.prior, ctx.target
    if discriminator_weight and prior.discriminator is None:
        raise ValueError("discriminator_weight > 0 needs a prior with a discriminator")
    out = []
    for start in progress(range(0, len(w), batch_size), desc=desc, unit="batch"):
        wb = w[start : start + batch_size].clone().requires_grad_(True)
        yb = y[start : start + batch_size]
        opt = torch.optim.Adam([wb], lr=lr, betas=tuple(betas))
        for it in range(iterations):
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor(it, iterations, milestones)
            x = prior.images(wb, ctx.resolution, ctx.channels)
            loss = poincare_loss(T(attack_transform(x, crop_scale, ctx.gen)), yb).mean()
            if discriminator_weight:
                loss = (
                    loss
                    + discriminator_weight
                    * F.softplus(-prior.discriminator(prior.synthesis(prior.broadcast(wb), "const"))).mean()
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        out.append(wb.detach())
    return torch.cat(out)


def run_attack(
    ctx: AttackContext,
    per_class: int,
    candidates: int,
    search_space: int,
    truncation_psi: float,
    truncation_cutoff: int | None,
    candidate_flip: bool,
    iterations: int,
    lr: float,
    beta1: float,
    beta2: float,
    lr_milestones: list,
    crop_scale: list,
    discriminator_weight: float,
    final_iterations: int,
    batch_size: int,
) -> AttackResult:
    if per_class > candidates:
        raise ValueError(f"per_class ({per_class}) must not exceed candidates ({candidates})")
    prior = ctx.prior
    ws, y = initial_selection(ctx, search_space, candidates, truncation_psi, truncation_cutoff, candidate_flip)
    w0 = ws[:, 0]  # single_w: the first style input's (truncated) w
    w = optimise_w(
        ctx, w0, y, iterations, lr, (beta1, beta2), lr_milestones, crop_scale, discriminator_weight, batch_size, "ppa"
    )
    with torch.no_grad():
        images = torch.cat([prior.images(w[i : i + 256], ctx.resolution, ctx.channels) for i in range(0, len(w), 256)])
    pick = select_final(ctx, images, y, per_class, final_iterations)
    images, labels = images[pick].clamp(-1, 1), y[pick].cpu()
    info, extras = summarise(ctx, images, labels)
    info["candidates_optimised"] = len(w)
    return AttackResult(images.cpu(), labels, {"latents": w[pick].cpu(), **extras}, info)
