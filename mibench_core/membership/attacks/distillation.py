"""Distillation-based attack: the loss-trajectory attack (Liu, Wen, Backes, Zhang 2022, "Membership inference
attacks by exploiting loss trajectory", CCS), the published distillation-based
membership inference the benchmark's "Distillation-based Thre." names.

A model trained on a point keeps a low loss on it throughout training, not
only at the end. Without the target's training checkpoints, the attacker
distils the target: a student of the target's architecture (public), from
scratch, is trained for ``epochs`` epochs to match the target's released
probabilities (KL divergence; a processed answer that no longer sums to one
is renormalised) on a distillation set of the attacker's population, and the
student's loss on a point after every epoch is that point's *loss
trajectory*. The same is done for an offline shadow model (``shadow``-th),
whose own members and non-members (``attack_samples`` each, excluded from
the distillation set) give labelled trajectories. The attack classifier (an
MLP with one hidden layer of ``hidden`` units) learns member vs non-member
from the trajectory plus the final loss under the distilled model itself
(the target's own loss, from its answers); member when its probability is at
least 1/2. Queries: the distillation set once and the candidates once.
Paper default: 100 distillation epochs (a CPU budget sets fewer).
Deviation: the distillation set excludes the shadow's *sampled* members and
non-members; with ``attack_samples`` below the shadow's training-set size its
other members stay in it (the shadow's student then distils on some of the
shadow's own training points, the target's never does). With the shipped
settings (``attack_samples`` = the offline references' ``train_size``) every
shadow member is excluded.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mibench_core.data.common import to_model_range
from mibench_core.membership.attacks.common import require, shadow_sets
from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import ce_loss, train_classifier
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "distillation",
        "kind": "mia",
        "call": "run",
        "description": "Distillation-based (loss trajectory, Liu et al. 2022): losses of a distilled target per epoch",
        "defaults": {
            "epochs": 100,
            "lr": 0.001,
            "batch_size": 128,
            "attack_samples": 1000,
            "hidden": 64,
            "max_iter": 200,
            "shadow": 0,
        },
        "bounds": {"epochs": "[1, inf)", "lr": "(0, inf)", "batch_size": "[1, inf)", "attack_samples": "[1, inf)"},
        "access": "probabilities",
        "aux": ["offline"],
    }
]


@torch.no_grad()
def _losses(model, x_uint8: torch.Tensor, y: torch.Tensor, device, batch: int = 1024) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(x_uint8), batch):
        logits = model(to_model_range(x_uint8[i : i + batch]).to(device))
        out.append(F.cross_entropy(logits, y[i : i + batch].to(device), reduction="none").cpu())
    model.train()
    return torch.cat(out).double().numpy()


def trajectory(
    ctx: MIAContext,
    teacher_probs: np.ndarray,
    distill_x: torch.Tensor,
    eval_x: torch.Tensor,
    eval_y: torch.Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> np.ndarray:
    """``[n_eval, epochs]`` losses of a student distilled from ``teacher_probs`` on ``distill_x``, per epoch."""
    from mibench_core.models.classifiers import build

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    arch = ctx.target_arch
    student = build(arch["arch"], arch["arch_params"], ctx.num_classes, ctx.channels, ctx.resolution).to(ctx.device)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    t = torch.as_tensor(teacher_probs, dtype=torch.float32).clamp_min(0)
    t = torch.where(t.sum(1, keepdim=True) > 0, t / t.sum(1, keepdim=True).clamp_min(1e-12), 1.0 / t.shape[1])
    n = len(distill_x)
    steps = []
    bar = progress(total=epochs, desc="distil", unit="epoch")
    for _ in range(epochs):
        student.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            logp = F.log_softmax(student(to_model_range(distill_x[idx]).to(ctx.device)), dim=1)
            loss = F.kl_div(logp, t[idx].to(ctx.device), reduction="batchmean")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        steps.append(_losses(student, eval_x, eval_y, ctx.device))
        bar.update(1)
    bar.close()
    return np.stack(steps, axis=1)


def run(
    ctx: MIAContext, epochs: int, lr: float, batch_size: int, attack_samples: int, hidden: int, max_iter: int,
    shadow: int,
) -> MIAResult:  # fmt: skip
    require(ctx.offline, shadow + 1, "distillation")
    ref, ins, outs = shadow_sets(ctx, [ctx.offline[shadow]], attack_samples, salt=17)[0]
    distill = np.setdiff1d(np.arange(len(ctx.population_y)), np.r_[ins, outs])
    if len(distill) == 0:
        raise ValueError("distillation: no population left to distil on; lower attack_samples")
    dx = ctx.population_x[torch.from_numpy(distill)]
    py = ctx.population_y.numpy()
    # the target: distilled from its answers on the distillation set; trajectories of the candidates
    t_traj = trajectory(ctx, ctx.population_answers(distill), dx, ctx.candidates_x, ctx.candidates_y,
                        epochs, lr, batch_size, ctx.seed + 1)  # fmt: skip
    t_final = ce_loss(ctx.target_answers(0), ctx.candidates_y.numpy())
    # the shadow: distilled from its released answers; trajectories of its own members / non-members
    sh_ans = ctx.shadow_answers(ref, "pop")
    ev = np.r_[ins, outs]
    s_traj = trajectory(ctx, sh_ans[distill], dx, ctx.population_x[torch.from_numpy(ev)],
                        ctx.population_y[torch.from_numpy(ev)], epochs, lr, batch_size, ctx.seed + 2)  # fmt: skip
    s_feat = np.c_[s_traj, ce_loss(sh_ans[ev], py[ev])]
    clf = train_classifier(s_feat[: len(ins)], s_feat[len(ins) :], ctx.seed, "mlp", hidden=(hidden,),
                           max_iter=max_iter)  # fmt: skip
    score = clf.predict_proba(np.c_[t_traj, t_final])[:, 1]
    return MIAResult(score, score >= 0.5, info={"distillation_set": len(distill), "epochs": epochs,
                                                "shadow_points": len(ev)})  # fmt: skip
