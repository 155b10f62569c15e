"""The training loop He, Zhang and Lee's split-inference attacks share.

Their black-box decoder and query-free shadow network are fitted the same
way (the authors' ``inverse_blackbox_decoder_CIFAR.py`` and
``query_free_attack_CIFAR.py``): Adam with their ``eps`` and AMSGrad
setting, shuffled mini-batches, the learning rate halved every
``halve_lr_every`` epochs (their ``decrease_LR``). Only the loss differs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mibench_core.runtime import progress


def fit_halving_lr(
    module: nn.Module,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    adam_eps: float,
    amsgrad: bool,
    halve_lr_every: int,
    gen: torch.Generator,
    desc: str,
) -> list[float]:
    """Train ``module``'s parameters on ``batch_loss(indices)`` over ``n`` examples; returns the mean
    loss per epoch (each batch weighted by its size). ``module`` is left in eval mode."""
    module.train()
    opt = torch.optim.Adam(module.parameters(), lr=lr, eps=adam_eps, amsgrad=amsgrad)
    history = []
    bar = progress(total=epochs * ((n + batch_size - 1) // batch_size), desc=desc, unit="step")
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            loss = batch_loss(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            bar.update(1)
        history.append(total / n)
        if (epoch + 1) % halve_lr_every == 0:
            for group in opt.param_groups:
                group["lr"] /= 2.0
    bar.close()
    module.eval()
    return history
