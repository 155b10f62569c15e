"""SecretGen, black-box variant (Yuan et al., "SecretGen: Privacy Recovery on
Pre-Trained Models via Distribution Discrimination", ECCV 2022).

Without gradients of the target, SecretGen's black-box attack has two stages:

1. Latent selection by label: sample ``n_candidates`` latents, let the
   target label their images (label-only queries) and keep, per target
   class y, ``per_class`` latents labelled y (a random subset when more
   match).
2. Discriminator-only optimisation: move each selected latent to raise the
   prior's discriminator score, minimising -D(G(z)) with Adam (the white-box
   variant adds the target's identity loss, which needs gradients; the
   black-box one drops it), so the image becomes more realistic while its
   label was fixed by selection.

Our choices, where the paper gives no CPU-sized numbers: the prior is the
GMI GAN (its WGAN critic is the discriminator); every ``check_every``
iterations the target labels the current images (counted queries) and each
latent keeps its last iterate still labelled y, so the realism step cannot
silently leave the class (with ``check_every`` 0 there is no check and the
final iterate is kept). A class with no matching candidate starts from
random latents, recorded in extras ``init_found``.

Queries: the candidate pool (shared) plus the label checks (per
reconstruction); extras ``queries`` = own checks + an equal share of the pool.
"""

from __future__ import annotations

import torch

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "secretgen-bb",
        "kind": "attack",
        "call": "run_attack",
        "description": "SecretGen black-box (Yuan et al. 2022): latent selection by label, discriminator-only "
        "optimisation",
        "defaults": {"per_class": 8, "n_candidates": 5000, "iterations": 1500, "lr": 0.02, "check_every": 50},
        "bounds": {
            "per_class": "[1, inf)",
            "n_candidates": "[1, inf)",
            "iterations": "[1, inf)",
            "lr": "(0, inf)",
            "check_every": "[1, inf)",
        },
        "priors": ["gmi-gan"],
        "access": "label",
    }
]


def select_by_label(
    z: torch.Tensor, labels: torch.Tensor, classes: list[int], per_class: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per class, ``per_class`` random rows of ``z`` whose label is the class.

    Returns (indices into z, their classes, found flags); a class with too few
    matches gets index -1 for the missing rows (found False)."""
    idx, ys, found = [], [], []
    for c in classes:
        pool = torch.nonzero(labels.cpu() == c).flatten()
        pool = pool[torch.randperm(len(pool), generator=gen)][:per_class]
        miss = per_class - len(pool)
        idx.append(torch.cat([pool, torch.full((miss,), -1, dtype=torch.long)]))
        ys += [c] * per_class
        found += [True] * len(pool) + [False] * miss
    return torch.cat(idx), torch.tensor(ys), torch.tensor(found)


def run_attack(
    ctx: AttackContext,
    per_class: int,
    n_candidates: int,
    iterations: int,
    lr: float,
    check_every: int,
) -> AttackResult:
    G, D, oracle, dev = ctx.prior.generator, ctx.prior.critic, ctx.oracle, ctx.device
    cand = ctx.prior.sample_z(n_candidates, ctx.gen).to(dev)
    with torch.no_grad():
        cand_labels = torch.cat([oracle(G(cand[i : i + 512])) for i in range(0, n_candidates, 512)])
    pick, y, found = select_by_label(cand, cand_labels, ctx.classes, per_class, ctx.gen)
    n = len(y)
    z = torch.where(found[:, None].to(dev), cand[pick.clamp(min=0)], ctx.prior.sample_z(n, ctx.gen).to(dev))
    y = y.to(dev)
    kept = z.clone()
    slots = torch.arange(n)
    z = z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    bar = progress(range(iterations), desc="secretgen-bb", unit="it")
    for it in bar:
        loss = -D(G(z)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if check_every and ((it + 1) % check_every == 0 or it == iterations - 1):
            with torch.no_grad():
                ok = oracle(G(z), slots=slots) == y
                kept[ok] = z.detach()[ok]
        bar.set_postfix(critic=f"{-loss.item() / n:.3f}")
    if not check_every:
        kept = z.detach()
    with torch.no_grad():
        images = G(kept)
        critic = D(images)
    info = {
        "init_found": int(found.sum()),
        "candidate_label_counts": torch.bincount(cand_labels.cpu(), minlength=ctx.num_classes).tolist(),
        "final_critic_mean": critic.mean().item(),
        "queries_shared": oracle.shared_queries,
    }
    extras = {
        "latents": kept.cpu(),
        "init_found": found.to(torch.int64),
        "critic_score": critic.cpu(),
        "queries": oracle.per_reconstruction(n),
    }
    return AttackResult(images.cpu(), y.cpu(), extras, info)
