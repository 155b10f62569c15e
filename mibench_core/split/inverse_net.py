"""Inverse network (He, Zhang, Lee 2019, Section 5; black-box).

The untrusted party cannot see f1's weights but can query the edge: it
feeds its own images ``x`` through ``f1`` (a query-counting
:class:`~mibench_core.split.oracle.FeatureOracle`), trains a decoder
``g`` with the L2 loss ``||g(f1(x)) - x||^2`` and answers a victim's
features with ``g(f1(x0))``. The attacker's images (``data``): the
target's training set (``train``), other images of the same distribution
(``heldout``), the public split (``public``) or uniform random noise images
(``noise``), ``samples`` of them (None: the whole split; required for
noise). Each image is queried once and its features are reused every
epoch (``f1`` is deterministic, so re-querying per epoch, as the authors'
loop does, would only repeat the same answers).

Training: the authors' ``inverse_blackbox_decoder_CIFAR.py``: Adam (lr
1e-3, eps 1e-3, AMSGrad), batch 32, 50 epochs, the learning rate halved
every 10 epochs (their ``decrease_LR`` default), mean squared error in the
model's input range.

Decoder (:func:`build_decoder`): the authors hand-built one mirror of f1 per
split point. We build it from what a black-box attacker knows, the shape of
the features and of the images: for vector features (a fully-connected
split point) a linear layer to a 64-channel map of a quarter of the image
side; then transposed convolutions (4x4, stride 2) that double the side
while it fits, halving the channels (at least 16); a last layer to the
image's channels and exact side (a transposed convolution of kernel
``H - h + 1`` when the map is smaller, a 3x3 convolution when equal, a
valid convolution when larger); ReLU between layers, none at the end. At a
convolutional split point of LeNet on 28 px this gives the authors'
decoders' shape (one 5x5 layer from conv1; two from ReLU2); on the CIFAR
CNN their stride-2 transposed 3x3 layers become 4x4 ones.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core.split.contract import SplitContext, SplitResult
from mibench_core.split.fit import fit_halving_lr

METHODS = [
    {
        "name": "inverse-net",
        "kind": "split_attack",
        "call": "run_attack",
        "access": "feature-queries",
        "description": "inverse network (He et al. 2019): decoder g(f1(x)) ~ x trained with L2 on the attacker's "
        "queries of f1",
        "defaults": {
            "data": "heldout",
            "samples": None,
            "epochs": 50,
            "batch_size": 32,
            "lr": 0.001,
            "adam_eps": 0.001,
            "amsgrad": True,
            "halve_lr_every": 10,
            "query_budget": None,
        },
        "bounds": {"epochs": "[1, inf)", "batch_size": "[1, inf)", "lr": "(0, inf)", "halve_lr_every": "[1, inf)"},
    }
]

log = logging.getLogger("mibench.split.inverse_net")


class Decoder(nn.Module):
    """A stack of layers; transposed convolutions get the exact output size they were built for."""

    def __init__(self, stages: list[tuple[nn.Module, tuple[int, int] | None]], unflatten: tuple[int, ...] | None):
        super().__init__()
        self.stages = nn.ModuleList(m for m, _ in stages)
        self.sizes = [s for _, s in stages]
        self.unflatten = unflatten

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = h
        n = len(self.stages)
        for i, (layer, size) in enumerate(zip(self.stages, self.sizes)):
            if isinstance(layer, nn.ConvTranspose2d) and size is not None:
                x = layer(x, output_size=size)
            else:
                x = layer(x)
            if self.unflatten is not None and i == 0:
                x = x.view(len(x), *self.unflatten)
            if i < n - 1:
                x = F.relu(x)
        return x


def build_decoder(feature_shape: tuple[int, ...], image_shape: tuple[int, int, int]) -> Decoder:
    """A decoder from features of ``feature_shape`` to images of ``image_shape`` (module docstring)."""
    c_img, side, _ = image_shape
    stages: list[tuple[nn.Module, tuple[int, int] | None]] = []
    unflatten = None
    if len(feature_shape) == 1:
        seed_side, seed_c = max(1, side // 4), 64
        stages.append((nn.Linear(feature_shape[0], seed_c * seed_side * seed_side), None))
        unflatten = (seed_c, seed_side, seed_side)
        c, h = seed_c, seed_side
    elif len(feature_shape) == 3:
        c, h, _ = feature_shape
    else:
        raise ValueError(f"cannot build a decoder for features of shape {feature_shape}")
    while 2 * h <= side:
        c_next = max(16, c // 2)
        stages.append((nn.ConvTranspose2d(c, c_next, 4, stride=2, padding=1), (2 * h, 2 * h)))
        c, h = c_next, 2 * h
    if h < side:
        stages.append((nn.ConvTranspose2d(c, c_img, side - h + 1), (side, side)))
    elif h == side:
        stages.append((nn.Conv2d(c, c_img, 3, padding=1), None))
    else:
        stages.append((nn.Conv2d(c, c_img, h - side + 1), None))
    return Decoder(stages, unflatten)


def train_decoder(
    decoder: nn.Module,
    feats: torch.Tensor,
    images: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    adam_eps: float,
    amsgrad: bool,
    halve_lr_every: int,
    gen: torch.Generator,
    device: torch.device | str,
) -> list[float]:
    """Fit ``decoder(feats) ~ images`` with the mean squared error; returns the mean loss per epoch."""
    decoder.to(device)
    return fit_halving_lr(
        decoder,
        lambda idx: F.mse_loss(decoder(feats[idx].to(device)), images[idx].to(device)),
        len(feats),
        epochs=epochs, batch_size=batch_size, lr=lr, adam_eps=adam_eps, amsgrad=amsgrad,
        halve_lr_every=halve_lr_every, gen=gen, desc="inverse-net",
    )  # fmt: skip


def run_attack(
    ctx: SplitContext,
    data: str,
    samples: int | None,
    epochs: int,
    batch_size: int,
    lr: float,
    adam_eps: float,
    amsgrad: bool,
    halve_lr_every: int,
    query_budget: int | None,
) -> SplitResult:
    images, _ = ctx.attacker_images(data, samples)
    feats = ctx.oracle(images.to(ctx.device)).cpu()
    decoder = build_decoder(tuple(ctx.features.shape[1:]), ctx.image_shape)
    history = train_decoder(
        decoder, feats, images, epochs=epochs, batch_size=batch_size, lr=lr, adam_eps=adam_eps, amsgrad=amsgrad,
        halve_lr_every=halve_lr_every, gen=ctx.gen, device=ctx.device,
    )  # fmt: skip
    log.info("decoder trained on %d %s images: final L2 %.5f", len(images), data, history[-1])
    with torch.no_grad():
        recon = torch.cat(
            [decoder(ctx.features[i : i + 256].to(ctx.device)).cpu() for i in range(0, len(ctx.features), 256)]
        )
    return SplitResult(
        recon.clamp(-1, 1),
        info={"attacker_data": data, "attacker_samples": len(images), "decoder_train_l2": history,
              "decoder_params": sum(p.numel() for p in decoder.parameters())},
    )  # fmt: skip
