"""Inverse network (He, Zhang, Lee 2019, Section 5; black-box).

The untrusted party cannot see f1's weights but can query the edge: it
feeds its own images ``x`` through ``f1`` (a query-counting
:class:`~mibench_core.split.oracle.FeatureOracle`), trains a decoder
``g`` with the L2 loss ``||g(f1(x)) - x||^2`` and answers a victim's
features with ``g(f1(x0))``. The attacker's images (``data``): the
target's training set (``train``), other images of the same distribution
(``heldout``), the public split (``public``) or standard Gaussian noise images
(``noise``), ``samples`` of them (None: the whole split; required for
noise). Each image is queried once and its features are reused every
epoch (``f1`` is deterministic, so re-querying per epoch, as the authors'
loop does, would only repeat the same answers).

Training: the authors' ``inverse_blackbox_decoder_CIFAR.py``: Adam (lr
1e-3, eps 1e-3, AMSGrad), batch 32, 50 epochs, the learning rate halved
every 10 epochs (their ``decrease_LR`` default), mean squared error in the
model's input range.

Decoder (:func:`build_decoder`): the authors' decoder for the split point
where their ``net.py`` has one, and the same pattern extended where it has
none (the paper names no decoder beyond these). At LeNet conv1 (and ReLU1):
``LeNetDecoderconv1``, one 5x5 convolution with padding 4 back to the image.
At LeNet conv2 / ReLU2: ``LeNetDecoderReLU2``, a 5x5 transposed convolution
(16 to 8), ReLU, a 5x5 transposed convolution of stride 2 (8 to the image's
channels). At CIFAR conv11 to ReLU12: ``CIFAR10CNNDecoderconv1``, one 3x3
transposed convolution (64 to 3, padding 1). At CIFAR conv21 to ReLU22:
``CIFAR10CNNDecoderReLU22``, at conv31 to ReLU32: ``CIFAR10CNNDecoderReLU32``
(3x3 transposed convolutions of stride 2, one per pooling stage, ReLU
between, 3x3 to the image last). Ours, by the same pattern: a pooling point
takes the next deeper point's decoder less its first layer's channel change
(LeNet pool1: the ReLU2 decoder's last layer; LeNet pool2: a 5x5 stride-2
transposed convolution 16 to 8, then that layer; CIFAR pool1/2/3: a 3x3
stride-2 transposed convolution keeping the channels before the previous
block's decoder); a fully-connected point mirrors its linear layers (ReLU
between) back to the last pooling layer's map, then takes that pooling
point's decoder. Transposed convolutions get the exact output size of the
layer they mirror (the authors' ``output_padding`` on 28 px MNIST, the same
rule on 32 px). The authors' decoders mirror f1's structure, so the attacker
knows the architecture (not its weights), as in their code.

Deviations from the paper's text (Section 5.1), following the authors' code
instead: Adam (with their eps and AMSGrad) rather than SGD, and PyTorch's
default initialisation rather than Xavier. Random-noise queries are standard
Gaussian in the model's input range (:meth:`SplitContext.attacker_images`).
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

    def __init__(self, stages: list[tuple[nn.Module, tuple[int, int] | None]]):
        super().__init__()
        self.stages = nn.ModuleList(m for m, _ in stages)
        self.sizes = [s for _, s in stages]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = h
        for layer, size in zip(self.stages, self.sizes):
            x = layer(x, output_size=size) if isinstance(layer, nn.ConvTranspose2d) and size is not None else layer(x)
        return x


def _lenet_sides(side: int) -> tuple[int, int, int]:
    """LeNet's map sides: after conv1, pool1, conv2 (pool2 halves the last)."""
    c1 = side - 4
    return c1, c1 // 2, c1 // 2 - 4


def _lenet_stages(point: str, c_img: int, side: int) -> list[tuple[nn.Module, tuple[int, int] | None]]:
    c1, p1, c2 = _lenet_sides(side)
    img = (side, side)
    if point in ("conv1", "ReLU1"):  # LeNetDecoderconv1
        return [(nn.Conv2d(8, c_img, 5, padding=4), None)]
    last = [(nn.ConvTranspose2d(8, c_img, 5, stride=2), img)]  # LeNetDecoderReLU2's deconv2
    if point == "pool1":
        return last
    if point in ("conv2", "ReLU2"):  # LeNetDecoderReLU2
        return [(nn.ConvTranspose2d(16, 8, 5), (p1, p1)), (nn.ReLU(), None), *last]
    pool2 = [(nn.ConvTranspose2d(16, 8, 5, stride=2), (p1, p1)), (nn.ReLU(), None), *last]
    if point == "pool2":
        return pool2
    s2 = c2 // 2
    body = [(nn.Linear(120, 16 * s2 * s2), None), (nn.ReLU(), None), (nn.Unflatten(1, (16, s2, s2)), None), *pool2]
    if point in ("fc1", "fc1act"):
        return body
    if point in ("fc2", "fc2act"):
        return [(nn.Linear(84, 120), None), (nn.ReLU(), None), *body]
    raise ValueError(f"no decoder for lenet-split point {point!r}")


def _cifar_stages(point: str, c_img: int, side: int) -> list[tuple[nn.Module, tuple[int, int] | None]]:
    def up(c_in: int, c_out: int, to: int) -> tuple[nn.Module, tuple[int, int]]:
        return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1), (to, to)

    relu = (nn.ReLU(), None)
    block1 = [(nn.ConvTranspose2d(64, c_img, 3, padding=1), None)]  # CIFAR10CNNDecoderconv1
    if point in ("conv11", "ReLU11", "conv12", "ReLU12"):
        return block1
    if point == "pool1":
        return [up(64, c_img, side)]
    block2 = [up(128, 64, side), relu, *block1]  # CIFAR10CNNDecoderReLU22
    if point in ("conv21", "ReLU21", "conv22", "ReLU22"):
        return block2
    pool2 = [up(128, 128, side // 2), relu, *block2]
    if point == "pool2":
        return pool2
    block3 = [up(128, 128, side // 2), relu, up(128, 64, side), relu, *block1]  # CIFAR10CNNDecoderReLU32
    if point in ("conv31", "ReLU31", "conv32", "ReLU32"):
        return block3
    pool3 = [up(128, 128, side // 4), relu, *block3]
    if point == "pool3":
        return pool3
    s3 = side // 8
    if point in ("fc1", "fc1act"):
        return [(nn.Linear(512, 128 * s3 * s3), None), relu, (nn.Unflatten(1, (128, s3, s3)), None), *pool3]
    raise ValueError(f"no decoder for cifar-cnn-split point {point!r}")


DECODERS = {"lenet-split": _lenet_stages, "cifar-cnn-split": _cifar_stages}


def build_decoder(arch: str, point: str, image_shape: tuple[int, int, int]) -> Decoder:
    """The inverse network's decoder at ``point`` of ``arch`` for images of ``image_shape`` (module
    docstring)."""
    if arch not in DECODERS:
        raise ValueError(f"no inverse-network decoder for architecture {arch!r}; known: {', '.join(DECODERS)}")
    c_img, side, _ = image_shape
    return Decoder(DECODERS[arch](point, c_img, side))


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
    decoder = build_decoder(ctx.arch, ctx.split_point, ctx.image_shape)
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
