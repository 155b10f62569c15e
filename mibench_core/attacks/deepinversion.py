"""DeepInversion (Yin et al., "Dreaming to Distill: Data-free Knowledge
Transfer via DeepInversion", CVPR 2020), as a model-inversion attack.

No generator: the pixels themselves are optimised, from Gaussian noise, to
minimise

    L(x) = CE(T(x~), y) + a_tv * TV(x~) + a_l2 * ||x~||_2
           + a_bn * sum_l (||mu_l(x~) - mu_l^BN||_2 + ||var_l(x~) - var_l^BN||_2)

where x~ is x randomly rolled by up to ``jitter`` pixels, TV is the sum of
the L2 norms of the horizontal, vertical and two diagonal pixel differences,
and the last term matches the batch statistics at the input of every
BatchNorm layer of the target to its running mean and variance (forward
hooks). The defaults are the authors' 32x32 (CIFAR-10) setting: Adam lr 0.1,
2,000 iterations, a_tv 2.5e-5, a_l2 0, a_bn 100, jitter 2; the batch with the
lowest total loss over the iterations is kept.

The target must have BatchNorm layers; otherwise the attack stops with an
error saying so. Differences from the paper: all classes are optimised in one
batch (the CIFAR-10 script does the same, cycling labels); the images are
clamped to the model range [-1, 1] at the end.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.attacks.summary import summarise
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "deepinversion",
        "kind": "attack",
        "call": "run_attack",
        "description": "DeepInversion (Yin et al. 2020): pixel optimisation with BatchNorm-statistics matching, TV, l2",
        "defaults": {
            "per_class": 8,
            "iterations": 2000,
            "lr": 0.1,
            "tv_weight": 2.5e-05,
            "l2_weight": 0.0,
            "bn_weight": 100.0,
            "jitter": 2,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "iterations": "[1, inf)",
            "lr": "(0, inf)",
            "tv_weight": "[0, inf)",
            "l2_weight": "[0, inf)",
            "bn_weight": "[0, inf)",
            "jitter": "[0, inf)",
        },
        "access": "white-box",
    }
]


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Sum of the L2 norms of the four neighbour differences (the authors' TV-L2)."""
    d1 = x[:, :, :, :-1] - x[:, :, :, 1:]
    d2 = x[:, :, :-1, :] - x[:, :, 1:, :]
    d3 = x[:, :, 1:, :-1] - x[:, :, :-1, 1:]
    d4 = x[:, :, :-1, :-1] - x[:, :, 1:, 1:]
    return d1.norm() + d2.norm() + d3.norm() + d4.norm()


def bn_statistics_loss(inputs: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """||mean - running_mean||_2 + ||var - running_var||_2 of a BN layer's input batch (biased variance)."""
    dims = [0] + list(range(2, inputs.dim()))
    mean = inputs.mean(dims)
    var = inputs.var(dims, unbiased=False)
    return (var - bn.running_var).norm() + (mean - bn.running_mean).norm()


class BNStatisticsHooks:
    """Forward hooks on every BatchNorm layer; ``loss()`` sums their statistics losses."""

    def __init__(self, model: nn.Module):
        self.layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not self.layers:
            raise ValueError(
                f"DeepInversion needs a target with BatchNorm layers (it matches their running statistics); "
                f"the target {type(model).__name__} has none"
            )
        self.losses: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def _hook(self, module, inputs, output) -> None:
        self.losses.append(bn_statistics_loss(inputs[0], module))

    def loss(self) -> torch.Tensor:
        out = torch.stack(self.losses).sum()
        self.losses = []
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def run_attack(
    ctx: AttackContext,
    per_class: int,
    iterations: int,
    lr: float,
    tv_weight: float,
    l2_weight: float,
    bn_weight: float,
    jitter: int,
) -> AttackResult:
    T, dev = ctx.target, ctx.device
    hooks = BNStatisticsHooks(T)
    labels = torch.tensor(ctx.classes).repeat(per_class)  # class-cycling batch, as the authors
    y = labels.to(dev)
    shape = (len(labels), ctx.channels, ctx.resolution, ctx.resolution)
    x = torch.randn(shape, generator=ctx.gen).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    best_loss, best_x = float("inf"), x.detach().clone()
    bar = progress(range(iterations), desc="deepinversion", unit="it")
    try:
        for _ in bar:
            dx, dy = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=ctx.gen))
            xj = torch.roll(x, shifts=(dx, dy), dims=(2, 3))
            hooks.losses = []
            ce = F.cross_entropy(T(xj), y)
            loss = ce + tv_weight * total_variation(xj) + l2_weight * xj.norm() + bn_weight * hooks.loss()
            if loss.item() < best_loss:
                best_loss, best_x = loss.item(), x.detach().clone()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", ce=f"{ce.item():.3f}")
    finally:
        hooks.close()
    images = best_x.clamp(-1, 1)
    order = torch.argsort(labels, stable=True)  # group by class like the other attacks
    images, labels = images[order], labels[order]
    info, extras = summarise(ctx, images, labels)
    info.update(best_total_loss=best_loss, bn_layers=len(hooks.layers))
    return AttackResult(images.cpu(), labels, extras, info)
