"""rMLE: regularized maximum likelihood estimation (He, Zhang, Lee 2019, Section 4; white-box).

The untrusted party knows f1's weights and sees ``h0 = f1(x0)``. It solves

    x* = argmin_x ||f1(x) - h0||^2 + lambda * TV(x)

by gradient descent from a constant image, as the authors' code does:

* start: 0 in the model's [-1, 1] range, i.e. the constant 0.5 image;
* ``||.||^2``: the mean squared difference over the feature's elements;
* ``TV(x)``: the authors' squared total variation, the mean over
  channels and positions of squared vertical differences plus the mean of
  squared horizontal differences (:func:`tv_loss`), in the model's range;
* Adam with ``eps`` 1e-3 and AMSGrad, learning rate 1e-2, 5,000 iterations
  (the authors' README and scripts); ``x`` is not clipped while optimised,
  the result is clipped to the valid range.

Victims are optimised in batches: the loss is the *sum* of per-victim
losses and Adam is element-wise, so each victim follows exactly the
trajectory of a single-image run.

``lambda_tv`` and ``lr`` may depend on the split point: a dict keyed
``"<arch>:<point>"``, ``"<point>"`` or ``"default"``, resolved per split
node by the plan (most specific key first). Defaults: the authors' values.
CIFAR CNN (``inverse_whitebox_CIFAR.py``): lambda 0 at conv11, 10 at
ReLU22, 1e3 at ReLU32, 1e4 at fc1 (with lr 1e-3); the other layers of a
block take their block's value, fc1act fc1's. LeNet (their MNIST
scripts): lambda 1 at ReLU2 (with 5,000 iterations, lr 1e-2), their only
value for an intermediate LeNet layer, so 1 at every LeNet split point
(their 1e3 is for the logits, which are not a split point; carried over
to fc1 it dominated the feature term and flattened the images to 8 dB on
Fashion-MNIST). Deviation: the authors normalise CIFAR-10 with ImageNet
statistics, we use [-1, 1] (TV values differ by a constant factor).
"""

from __future__ import annotations

import torch
from torch import nn

from mibench_core.runtime import progress
from mibench_core.split.contract import SplitContext, SplitResult

METHODS = [
    {
        "name": "rmle",
        "kind": "split_attack",
        "call": "run_attack",
        "access": "white-box",
        "description": "rMLE (He et al. 2019): argmin_x ||f1(x) - f1(x0)||^2 + lambda TV(x) from a constant 0.5 "
        "image, Adam (AMSGrad)",
        "defaults": {
            "iterations": 5000,
            "lr": {"default": 0.01, "cifar-cnn-split:fc1": 0.001, "cifar-cnn-split:fc1act": 0.001},
            "lambda_tv": {
                "default": 1.0,
                "cifar-cnn-split:conv11": 0.0,
                "cifar-cnn-split:ReLU11": 0.0,
                "cifar-cnn-split:conv12": 0.0,
                "cifar-cnn-split:ReLU12": 0.0,
                "cifar-cnn-split:pool1": 0.0,
                "cifar-cnn-split:conv21": 10.0,
                "cifar-cnn-split:ReLU21": 10.0,
                "cifar-cnn-split:conv22": 10.0,
                "cifar-cnn-split:ReLU22": 10.0,
                "cifar-cnn-split:pool2": 10.0,
                "cifar-cnn-split:conv31": 1000.0,
                "cifar-cnn-split:ReLU31": 1000.0,
                "cifar-cnn-split:conv32": 1000.0,
                "cifar-cnn-split:ReLU32": 1000.0,
                "cifar-cnn-split:pool3": 1000.0,
                "cifar-cnn-split:fc1": 10000.0,
                "cifar-cnn-split:fc1act": 10000.0,
            },
            "adam_eps": 0.001,
            "amsgrad": True,
            "batch_size": 64,
        },
        "bounds": {"iterations": "[1, inf)", "adam_eps": "(0, inf)", "batch_size": "[1, inf)"},
    }
]


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """Squared total variation per image of ``[N, C, H, W]``: mean squared vertical difference plus mean
    squared horizontal difference (the authors' ``TV``), shape ``[N]``."""
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).flatten(1).mean(1)
    return dh + dw


def feature_loss(h: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of features per sample, shape ``[N]``."""
    return (h - h0).pow(2).flatten(1).mean(1)


def rmle_invert(
    f1: nn.Module,
    h0: torch.Tensor,
    image_shape: tuple[int, int, int],
    *,
    iterations: int,
    lr: float,
    lambda_tv: float,
    adam_eps: float = 1e-3,
    amsgrad: bool = True,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    desc: str = "rmle",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert ``f1`` at the features ``h0``: (reconstructions in [-1, 1], final feature loss per sample).

    ``f1``'s parameters are not updated (only the images are optimised)."""
    outs, losses = [], []
    bar = progress(total=iterations * ((len(h0) + batch_size - 1) // batch_size), desc=desc, unit="it")
    for start in range(0, len(h0), batch_size):
        target = h0[start : start + batch_size].to(device)
        x = torch.zeros((len(target), *image_shape), device=device, requires_grad=True)
        opt = torch.optim.Adam([x], lr=lr, eps=adam_eps, amsgrad=amsgrad)
        for _ in range(iterations):
            opt.zero_grad(set_to_none=True)
            loss = (feature_loss(f1(x), target) + lambda_tv * tv_loss(x)).sum()
            loss.backward()
            opt.step()
            bar.update(1)
        with torch.no_grad():
            losses.append(feature_loss(f1(x), target).cpu())
        outs.append(x.detach().clamp(-1, 1).cpu())
    bar.close()
    return torch.cat(outs), torch.cat(losses)


def run_attack(
    ctx: SplitContext,
    iterations: int,
    lr: float,
    lambda_tv: float,
    adam_eps: float,
    amsgrad: bool,
    batch_size: int,
) -> SplitResult:
    images, loss = rmle_invert(
        ctx.f1, ctx.features, ctx.image_shape, iterations=iterations, lr=lr, lambda_tv=lambda_tv,
        adam_eps=adam_eps, amsgrad=amsgrad, batch_size=batch_size, device=ctx.device,
    )  # fmt: skip
    return SplitResult(images, info={"feature_loss": loss.mean().item()}, extras={"feature_loss": loss})
