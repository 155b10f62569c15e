"""IF-GMI: intermediate-feature GAN model inversion (Qiu et al., "A Closer
Look at GAN Priors: Exploiting Intermediate Features for Enhanced Model
Inversion Attacks", ECCV 2024).

White-box, on a StyleGAN prior. IF-GMI runs PPA's initial selection
itself (:func:`mibench_core.attacks.ppa.initial_selection`:
``search_space`` (2,000) truncated w, the ``candidates`` (50) best per
class; it does not start from a PPA run's result), then the generator
G = G_L o ... o G_1 (its synthesis blocks) is searched stage by stage,
``len(steps)`` stages with ``steps[s]`` Adam iterations each (``lr`` 0.005,
betas (0.1, 0.1), a new optimiser per stage):

* stage 0 optimises the single w (PPA's search);
* stage s >= 1 optimises the features entering block s (the output of block
  s - 1, computed from the previous stage's result) together with the w
  that drives blocks s .. L;
* after every step the deviation of the features from their value at the
  start of the stage is projected onto the L1 ball of radius
  ``radius_features[s]`` and the deviation of w onto the L1 ball of radius
  ``radius_w[s]`` (exact Euclidean projection, Duchi et al. 2008;
  :func:`project_l1_ball`); a radius <= 0 means no constraint (stage 0 has
  no features, its feature radius is unused);
* the loss is PPA's Poincaré loss on randomly resized-cropped images (scale
  ``crop_scale``).

The final images (from the last stage's features and w) go through PPA's
final selection (:func:`mibench_core.attacks.ppa.select_final`): the
``per_class`` (50) with the highest mean confidence over
``final_iterations`` (100) random transforms.

Defaults are the authors' main experiments (final-solution/IF-GMI,
``configs/ffhq_facescrub/main-resnet.yaml`` and the other ``main-*.yaml``):
50 candidates of 2,000 per class, all 50 kept, batch 5, ``steps``
``[50, 10, 10, 10, 10, 10, 10, 10]`` (stage 0 in W, then seven blocks) with
L1 radii ``[1000, 2000, 3000, 4000, 5000, 6000, 8000, 8000]`` for the
features and for w (the stage-0 feature radius is unused). Their
development config (``configs/intermediate.yaml``) uses ``[70, 60, 50, 40]``
on CelebA, the quick-start ``configs/example.yaml`` ``[50, 10, 10, 10]``.

Deviations: the authors' code restarts the generator's skip RGB sum at the
resumed block (the lower blocks' toRGB contributions are dropped); we carry
that partial image unchanged from the previous stage, so a zero deviation
reproduces the previous stage's image exactly. The radii are absolute L1
norms over the whole feature map; the defaults are the authors' (for
FFHQ 1024: 512x4x4 features at stage 1), the CPU default scales them by
the ratio of feature dimensions (config/README.md). There is at most one
stage per synthesis block: the CPU default's 32 px generator has 4 blocks
and runs the main configs' first four stages, ``[50, 10, 10, 10]``.
"""

from __future__ import annotations

import torch

from mibench_core.attacks import ppa
from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.attacks.ppa import attack_transform, poincare_loss
from mibench_core.attacks.summary import summarise
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "if-gmi",
        "kind": "attack",
        "call": "run_attack",
        "description": "IF-GMI (Qiu et al. 2024): PPA start, then block-by-block optimisation of StyleGAN "
        "intermediate features within L1 balls",
        "defaults": {
            "per_class": 50,
            "candidates": 50,
            "search_space": 2000,
            "truncation_psi": 0.5,
            "truncation_cutoff": 8,
            "candidate_flip": True,
            "steps": [50, 10, 10, 10, 10, 10, 10, 10],
            "radius_features": [1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 8000.0, 8000.0],
            "radius_w": [1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 8000.0, 8000.0],
            "lr": 0.005,
            "beta1": 0.1,
            "beta2": 0.1,
            "crop_scale": [0.9, 1.0],
            "final_iterations": 100,
            "batch_size": 5,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "candidates": "[1, inf)",
            "search_space": "[1, inf)",
            "truncation_psi": "[0, 1]",
            "truncation_cutoff": "[1, inf)",
            "steps": "[0, inf)",
            "radius_features": "[0, inf)",
            "radius_w": "[0, inf)",
            "lr": "(0, inf)",
            "beta1": "[0, 1)",
            "beta2": "[0, 1)",
            "crop_scale": "(0, 1]",
            "final_iterations": "[1, inf)",
            "batch_size": "[1, inf)",
        },
        "priors": ["stylegan", "stylegan2-ada"],
        "access": "white-box",
    }
]


def project_l1_ball(x: torch.Tensor, radius: float) -> torch.Tensor:
    """Euclidean projection of each sample (row of ``x.flatten(1)``) onto {v : ||v||_1 <= radius}.

    Duchi, Shalev-Shwartz, Singer and Chandra 2008 (Fig. 1): sort |v| decreasingly (mu), find
    rho = max{j : mu_j - (sum_{i<=j} mu_i - radius) / j > 0}, theta = (sum_{i<=rho} mu_i - radius) / rho,
    and soft-threshold: sign(v) * max(|v| - theta, 0). Samples already inside are unchanged."""
    if radius <= 0:
        raise ValueError(f"the L1 radius must be > 0, got {radius}")
    flat = x.flatten(1)
    absval = flat.abs()
    inside = absval.sum(1) <= radius
    mu = absval.sort(dim=1, descending=True).values
    cumsum = mu.cumsum(1)
    j = torch.arange(1, flat.shape[1] + 1, device=x.device, dtype=flat.dtype)
    rho = ((mu - (cumsum - radius) / j) > 0).to(flat.dtype).mul(j).argmax(1)  # index of the largest such j
    theta = (cumsum.gather(1, rho[:, None]) - radius) / (rho[:, None] + 1).to(flat.dtype)
    proj = flat.sign() * (absval - theta).clamp_min(0)
    return torch.where(inside[:, None], flat, proj).view_as(x)


def _project(value: torch.Tensor, start: torch.Tensor, radius: float) -> torch.Tensor:
    return start + project_l1_ball(value - start, radius) if radius > 0 else value


def optimise_stages(
    ctx: AttackContext,
    w: torch.Tensor,
    y: torch.Tensor,
    steps,
    radius_features,
    radius_w,
    lr: float,
    betas,
    crop_scale,
    desc: str = "if-gmi",
) -> tuple[torch.Tensor, torch.Tensor]:
    """IF-GMI's stages for one batch of single w [N, w_dim]; returns (images, final w)."""
    prior, T = ctx.prior, ctx.target
    synth = prior.synthesis
    x_feat, img = None, None  # the features entering the current stage's block
    for s, n_steps in enumerate(steps):
        w = w.detach().clone().requires_grad_(True)
        w_start = w.detach().clone()
        params = [w]
        if s > 0:
            x_feat = x_feat.detach().clone().requires_grad_(True)
            x_start = x_feat.detach().clone()
            params.append(x_feat)
        opt = torch.optim.Adam(params, lr=lr, betas=tuple(betas))
        for _ in range(n_steps):
            _, out = synth.run_blocks(prior.broadcast(w), start=s, x=x_feat, img=img, noise_mode="const")
            x = prior.adapt(out, ctx.resolution, ctx.channels)
            loss = poincare_loss(T(attack_transform(x, crop_scale, ctx.gen)), y).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                if s > 0:
                    x_feat.copy_(_project(x_feat, x_start, radius_features[s]))
                w.copy_(_project(w, w_start, radius_w[s]))
        with torch.no_grad():  # the next stage starts from the output of this stage's first block
            if s + 1 < len(steps):
                x_feat, img = synth.run_blocks(
                    prior.broadcast(w), start=s, end=s + 1, x=x_feat, img=img, noise_mode="const"
                )
            else:
                _, out = synth.run_blocks(prior.broadcast(w), start=s, x=x_feat, img=img, noise_mode="const")
    return prior.adapt(out, ctx.resolution, ctx.channels).detach(), w.detach()


def run_attack(
    ctx: AttackContext,
    per_class: int,
    candidates: int,
    search_space: int,
    truncation_psi: float,
    truncation_cutoff: int | None,
    candidate_flip: bool,
    steps: list,
    radius_features: list,
    radius_w: list,
    lr: float,
    beta1: float,
    beta2: float,
    crop_scale: list,
    final_iterations: int,
    batch_size: int,
) -> AttackResult:
    n_blocks = len(ctx.prior.synthesis.blocks)
    if not 1 <= len(steps) <= n_blocks:
        raise ValueError(f"steps has {len(steps)} stages; the generator has {n_blocks} blocks (1 to {n_blocks})")
    if len(radius_features) != len(steps) or len(radius_w) != len(steps):
        raise ValueError("steps, radius_features and radius_w must have one entry per stage")
    if per_class > candidates:
        raise ValueError(f"per_class ({per_class}) must not exceed candidates ({candidates})")
    ws, y = ppa.initial_selection(ctx, search_space, candidates, truncation_psi, truncation_cutoff, candidate_flip)
    w0 = ws[:, 0]
    images, latents = [], []
    for i in progress(range(0, len(w0), batch_size), desc="if-gmi", unit="batch"):
        im, wl = optimise_stages(
            ctx,
            w0[i : i + batch_size],
            y[i : i + batch_size],
            steps,
            radius_features,
            radius_w,
            lr,
            (beta1, beta2),
            crop_scale,
        )
        images.append(im)
        latents.append(wl)
    images, latents = torch.cat(images), torch.cat(latents)
    pick = ppa.select_final(ctx, images, y, per_class, final_iterations)
    out, labels = images[pick].clamp(-1, 1), y[pick].cpu()
    info, extras = summarise(ctx, out, labels)
    info["stages"] = len(steps)
    return AttackResult(out.cpu(), labels, {"latents": latents[pick].cpu(), **extras}, info)
