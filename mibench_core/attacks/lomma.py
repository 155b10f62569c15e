"""LOMMA plug-in for GMI and KEDMI (Nguyen et al., "Re-thinking Model
Inversion Attacks Against Deep Neural Networks", CVPR 2023).

LOMMA keeps the base attack's search (GMI: Nesterov SGD over z from several
restarts; KEDMI: a learned Gaussian per class) and its prior term, and
replaces the identity loss:

* logit loss: -l_y (raw target logit) instead of cross-entropy;
* public-feature regulariser: lam_reg * ||f_T(x) - mu_pub||^2, with mu_pub
  the mean penultimate feature of the target over the public images;
* model augmentation: the identity term is averaged over the target and
  the students distilled from it on public data (the ``lomma-students``
  artifact, given as the attack's ``aux``; 3 students in the paper).

    L = prior + lambda_iden * (mean_{M in {T} + S} -l_y(M(x)) + lam_reg * reg(x))   (lambda_iden 100, lam_reg 1)

The base attacks' other hyperparameters keep their paper defaults (see
:mod:`mibench_core.attacks.gmi` and :mod:`mibench_core.attacks.kedmi`); on
KEDMI the prior term is scored on batches of the KEDMI discriminator's
training size, and the log-variance starts at 0 where the authors' code
(like KEDMI's) starts it at 1, as described in :mod:`mibench_core.attacks.kedmi`.
``max_public`` (null: all, the paper) estimates mu_pub from a random subset
of the public images, a CPU-budget option.

Deviation: the feature regulariser is the *mean* over feature dimensions of
the squared difference (the authors' code), not the sum; with the sum and
lambda 100 it would dominate every other term at our feature width.
"""

from __future__ import annotations

import torch

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.attacks.gmi import nesterov_step
from mibench_core.attacks.kedmi import distributional_attack
from mibench_core.attacks.summary import summarise
from mibench_core.data.common import to_model_range
from mibench_core.priors.common import public_subset
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "lomma-gmi",
        "kind": "attack",
        "call": "run_gmi",
        "description": "LOMMA on GMI (Nguyen et al. 2023): logit loss, public-feature regulariser, distilled students",
        "defaults": {
            "per_class": 8,
            "iterations": 1500,
            "lr": 0.02,
            "momentum": 0.9,
            "lambda_iden": 100.0,
            "clip_z": 1.0,
            "restarts": 5,
            "reference_batch": 60,
            "lam_reg": 1.0,
            "max_public": None,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "iterations": "[1, inf)",
            "lr": "(0, inf)",
            "momentum": "[0, 1)",
            "lambda_iden": "[0, inf)",
            "clip_z": "(0, inf)",
            "restarts": "[1, inf)",
            "reference_batch": "[1, inf)",
            "lam_reg": "[0, inf)",
            "max_public": "[1, inf)",
        },
        "priors": ["gmi-gan"],
        "access": "white-box",
        "aux": ["lomma-students"],
    },
    {
        "name": "lomma-kedmi",
        "kind": "attack",
        "call": "run_kedmi",
        "description": "LOMMA on KEDMI (Nguyen et al. 2023): logit loss, public-feature regulariser, distilled "
        "students",
        "defaults": {
            "per_class": 8,
            "iterations": 1500,
            "lr": 0.02,
            "lambda_iden": 100.0,
            "samples_per_step": 1,
            "lam_reg": 1.0,
            "max_public": None,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "iterations": "[1, inf)",
            "lr": "(0, inf)",
            "lambda_iden": "[0, inf)",
            "samples_per_step": "[1, inf)",
            "lam_reg": "[0, inf)",
            "max_public": "[1, inf)",
        },
        "priors": ["kedmi-gan"],
        "access": "white-box",
        "aux": ["lomma-students"],
    },
]


def logit_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample -l_y."""
    return -logits.gather(1, labels[:, None]).squeeze(1)


def feature_reg(feats: torch.Tensor, mu_pub: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared distance of the target's features to the public mean feature."""
    return (feats - mu_pub).pow(2).mean(1)


def lomma_identity(
    target: torch.nn.Module, students: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor, mu_pub: torch.Tensor,
    lam_reg: float,
) -> torch.Tensor:  # fmt: skip
    """Per-sample identity term: logit loss averaged over target + students, plus the feature regulariser."""
    feats = target.features(x)
    iden = logit_loss(target.head(feats), y)
    for s in students:
        iden = iden + logit_loss(s(x), y)
    return iden / (1 + len(students)) + lam_reg * feature_reg(feats, mu_pub)


@torch.no_grad()
def public_mean_feature(ctx: AttackContext, max_public: int | None, batch: int = 512) -> torch.Tensor:
    pub = public_subset(ctx.public_images(), max_public, ctx.gen)
    total = None
    for i in range(0, len(pub), batch):
        f = ctx.target.features(to_model_range(pub[i : i + batch]).to(ctx.device)).sum(0)
        total = f if total is None else total + f
    return total / len(pub)


def _students(ctx: AttackContext) -> list[torch.nn.Module]:
    if not ctx.aux or not hasattr(ctx.aux[0], "models"):
        raise ValueError("LOMMA needs the 'lomma-students' artifact as its aux (config key attacks[].aux)")
    return ctx.aux[0].models


def run_gmi(
    ctx: AttackContext, per_class: int, iterations: int, lr: float, momentum: float, lambda_iden: float,
    clip_z: float, restarts: int, reference_batch: int, lam_reg: float, max_public: int | None,
) -> AttackResult:  # fmt: skip
    """GMI search (see attacks/gmi.py) with LOMMA's identity loss."""
    G, D, T = ctx.prior.generator, ctx.prior.critic, ctx.target
    students, mu_pub = _students(ctx), public_mean_feature(ctx, max_public)
    dev = ctx.device
    labels = torch.tensor(ctx.classes).repeat_interleave(per_class)
    n_slots = len(labels)
    y = labels.repeat(restarts).to(dev)
    z = ctx.prior.sample_z(restarts * n_slots, ctx.gen).to(dev)
    v = torch.zeros_like(z)
    bar = progress(range(iterations), desc="lomma-gmi", unit="it")
    for it in bar:
        z.requires_grad_(True)
        x = G(z)
        per_latent = -D(x) + lambda_iden * lomma_identity(T, students, x, y, mu_pub, lam_reg)
        (grad,) = torch.autograd.grad(per_latent.sum() / reference_batch, z)
        with torch.no_grad():
            z, v = nesterov_step(z.detach(), v, grad, lr, momentum)
            z.clamp_(-clip_z, clip_z)
        if it % 50 == 0:  # .item() synchronises a GPU: only now and then
            bar.set_postfix(loss=f"{per_latent.mean().item():.3f}")
    with torch.no_grad():
        x = G(z)
        score = T(x).gather(1, y[:, None]).squeeze(1).view(restarts, n_slots)
        best = score.argmax(0)
        pick = best * n_slots + torch.arange(n_slots, device=dev)
        images = x[pick]
    info, extras = summarise(ctx, images, labels)
    info["restart_chosen_counts"] = torch.bincount(best, minlength=restarts).tolist()
    return AttackResult(images.cpu(), labels, {"latents": z[pick].cpu(), **extras}, info)


def run_kedmi(
    ctx: AttackContext, per_class: int, iterations: int, lr: float, lambda_iden: float, samples_per_step: int,
    lam_reg: float, max_public: int | None,
) -> AttackResult:  # fmt: skip
    """KEDMI's distributional search (see attacks/kedmi.py) with LOMMA's identity loss."""
    prior, T = ctx.prior, ctx.target
    students, mu_pub = _students(ctx), public_mean_feature(ctx, max_public)

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return prior.prior_loss(x) + lambda_iden * lomma_identity(T, students, x, y, mu_pub, lam_reg)

    search = {"per_class": per_class, "iterations": iterations, "lr": lr, "samples_per_step": samples_per_step}
    return distributional_attack(ctx, loss_fn, "lomma-kedmi", min_batch=prior.batch_size, **search)
