"""LOKT: label-only model inversion via knowledge transfer (Nho et al.,
"Label-Only Model Inversion Attacks via Knowledge Transfer", NeurIPS 2023).

Three stages, the target seen only through its hard labels:

1. T-ACGAN prior (mibench_core.priors.lokt_tacgan), trained with the
   target's labels of public and generated images.
2. Surrogate classifiers: ``n_surrogates`` models trained from scratch on
   ``surrogate_samples`` images G(z, y) (y uniform) labelled by the oracle
   (label queries), cross-entropy, Adam.
3. A white-box attack on the surrogates (the paper plugs in PLG-MI): per
   target class y, optimise latents z of the conditional generator G(z, y)
   with the max-margin loss -l_y + max_{j != y} l_j averaged over the
   surrogate ensemble and over ``n_views`` random augmentations (resized crop
   0.8-1, horizontal flip, rotation up to 5 degrees, brightness/contrast
   jitter 0.2), Adam lr 0.1, ``iterations`` steps (PLG-MI: 600).

Ours: surrogates are MCNN classifiers of width ``surrogate_width`` (the
attacker's choice; the paper uses larger, different architectures); the
sample count, epochs and attack iterations are scaled for the CPU. After the
attack the oracle labels the final images once (``per_class`` queries a
class), reported as ``target_success``.

Queries: the prior's (recorded in its manifest, added here as
``queries_prior``) + the surrogate training set + the final check.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.models.classifiers import MCNN
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "lokt",
        "kind": "attack",
        "call": "run_attack",
        "description": "LOKT (Nho et al. 2023): surrogates trained on T-ACGAN samples labelled by the target, "
        "attacked white-box",
        "defaults": {
            "per_class": 8,
            "n_surrogates": 3,
            "surrogate_width": 32,
            "surrogate_samples": 50000,
            "surrogate_epochs": 10,
            "surrogate_batch_size": 128,
            "surrogate_lr": 0.001,
            "iterations": 600,
            "lr": 0.1,
            "n_views": 2,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "n_surrogates": "[1, inf)",
            "surrogate_width": "[1, inf)",
            "surrogate_samples": "[1, inf)",
            "surrogate_epochs": "[1, inf)",
            "surrogate_batch_size": "[1, inf)",
            "surrogate_lr": "(0, inf)",
            "iterations": "[1, inf)",
            "lr": "(0, inf)",
            "n_views": "[1, inf)",
        },
        "priors": ["lokt-tacgan"],
        "access": "label",
    }
]


def max_margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample -l_y + max_{j != y} l_j (PLG-MI)."""
    l_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf")).max(1).values
    return -l_y + others


def random_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Differentiable PLG-MI-style augmentation: resized crop, flip, small rotation, jitter."""
    n = len(x)
    scale = torch.empty(n).uniform_(0.8, 1.0, generator=gen).sqrt()  # area fraction -> side
    angle = torch.empty(n).uniform_(-5, 5, generator=gen) * math.pi / 180
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    shift = (1 - scale)[:, None] * torch.empty(n, 2).uniform_(-1, 1, generator=gen)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    row0 = torch.stack([cos * flip, -sin, shift[:, 0]], 1)
    row1 = torch.stack([sin * flip, cos, shift[:, 1]], 1)
    theta = torch.stack([row0, row1], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    bright = torch.empty(n, 1, 1, 1).uniform_(-0.2, 0.2, generator=gen).to(x)
    contrast = torch.empty(n, 1, 1, 1).uniform_(0.8, 1.2, generator=gen).to(x)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return ((out - mean) * contrast + mean + bright).clamp(-1, 1)


def train_surrogates(
    ctx: AttackContext, n_models: int, width: int, n_samples: int, epochs: int, batch_size: int, lr: float
) -> tuple[list[MCNN], dict]:
    """Surrogates trained on G's samples labelled by the oracle (label queries)."""
    G, oracle, dev = ctx.prior.generator, ctx.oracle, ctx.device
    K = ctx.num_classes
    xs, ys, cond = [], [], []
    with torch.no_grad():
        for i in range(0, n_samples, 512):
            m = min(512, n_samples - i)
            yc = torch.randint(0, K, (m,), generator=ctx.gen).to(dev)
            x = G(ctx.prior.sample_z(m, ctx.gen).to(dev), yc)
            xs.append(x)
            ys.append(oracle(x))  # hard labels only
            cond.append(yc)
    x_all, y_all, c_all = torch.cat(xs), torch.cat(ys), torch.cat(cond)
    models, accs = [], []
    bar = progress(total=n_models * epochs, desc="lokt-surrogates", unit="epoch")
    for _ in range(n_models):
        net = MCNN(K, ctx.channels, ctx.resolution, width).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(epochs):
            net.train()
            perm = torch.randperm(n_samples, generator=ctx.gen)
            for i in range(0, n_samples, batch_size):
                idx = perm[i : i + batch_size].to(dev)
                loss = F.cross_entropy(net(x_all[idx]), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            bar.update(1)
        net.eval()
        for q in net.parameters():
            q.requires_grad_(False)
        with torch.no_grad():
            accs.append((net(x_all).argmax(1) == y_all).float().mean().item())
        models.append(net)
    bar.close()
    info = {
        "surrogate_train_agreement": accs,
        "generator_label_agreement": (y_all == c_all).float().mean().item(),
    }
    return models, info


def run_attack(
    ctx: AttackContext,
    per_class: int,
    n_surrogates: int,
    surrogate_width: int,
    surrogate_samples: int,
    surrogate_epochs: int,
    surrogate_batch_size: int,
    surrogate_lr: float,
    iterations: int,
    lr: float,
    n_views: int,
) -> AttackResult:
    G, oracle, dev = ctx.prior.generator, ctx.oracle, ctx.device
    surrogates, s_info = train_surrogates(
        ctx, n_surrogates, surrogate_width, surrogate_samples, surrogate_epochs, surrogate_batch_size, surrogate_lr
    )
    y = torch.tensor(ctx.classes).repeat_interleave(per_class).to(dev)
    z = ctx.prior.sample_z(len(y), ctx.gen).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    bar = progress(range(iterations), desc="lokt-attack", unit="it")
    for _ in bar:
        x = G(z, y)
        loss = torch.zeros((), device=dev)
        for _ in range(n_views):
            xa = random_augment(x, ctx.gen)
            for net in surrogates:
                loss = loss + max_margin_loss(net(xa), y).mean()
        loss = loss / (n_views * len(surrogates))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    with torch.no_grad():
        images = G(z, y)
        target_labels = oracle(images, slots=torch.arange(len(y)))
        surrogate_pred = torch.stack([net(images).argmax(1) for net in surrogates])
    info = {
        "target_success": (target_labels == y).float().mean().item(),
        "surrogate_success": (surrogate_pred == y).float().mean().item(),
        "queries_prior": int(ctx.prior.queries),
        **s_info,
    }
    extras = {"latents": z.detach().cpu(), "target_label": target_labels.cpu()}
    return AttackResult(images.cpu(), y.cpu(), extras, info)
