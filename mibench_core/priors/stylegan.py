"""StyleGAN2-style prior (Karras et al., "Analyzing and Improving the Image
Quality of StyleGAN", CVPR 2020; the StyleGAN2-ADA code base, Karras et al.
NeurIPS 2020), trained on the public split.

Generator (the StyleGAN2 "skip" generator):

* mapping network z -> w: 2nd-moment normalisation of z, ``mapping_layers``
  fully connected layers with LeakyReLU(0.2) x sqrt(2), equalised learning
  rate with ``mapping_lr_multiplier`` (0.01); w is broadcast to the
  ``num_ws`` style inputs (W+); a running mean ``w_avg`` (decay 0.995)
  serves truncation ``w_avg + psi (w - w_avg)``;
* synthesis: a learned 4x4 constant, then one block per resolution with a
  2x-upsampling modulated 3x3 convolution (transposed convolution + the
  [1, 3, 3, 1] FIR low-pass filter), a second modulated convolution, noise
  inputs (per-layer learned strength; ``random`` or the stored ``const``
  noise) and a toRGB layer (modulated 1x1, no demodulation) whose outputs are
  upsampled and summed (skip architecture); weight demodulation, equalised
  learning rate, activations clamped at +-``conv_clamp``;
* spaces: Z, W (one w for all layers), W+ (one per style input), P (the
  pre-activation of the mapping network's last layer: w = sqrt(2) *
  LeakyReLU_0.2(p), so p = w / sqrt(2) where w >= 0 and w / (0.2 sqrt(2))
  elsewhere; its per-dimension mean and standard deviation over 10,000
  mapped z are stored beside the weights for Mirror's clipping), and the
  per-block intermediate features ``(x, img)`` that IF-GMI optimises
  (:meth:`Synthesis.run_blocks`).

Discriminator (StyleGAN2's residual discriminator): fromRGB, per resolution
two 3x3 convolutions (the second downsampling with the FIR filter) plus a
1x1 downsampling skip scaled by sqrt(1/2), and an epilogue with the
minibatch standard-deviation layer (group ``mbstd_group_size``, one
channel), a 3x3 convolution and two fully connected layers.

The parameter names and parameterisation follow NVIDIA's StyleGAN2-ADA
networks, so converted pretrained weights (the ``stylegan2-ada`` prior,
:mod:`mibench_core.priors.stylegan_pickle`) load into the same classes.

Training (StyleGAN2-ADA's loss): non-saturating logistic loss for G and D,
lazy R1 regularisation of D on real images every ``r1_interval`` (16)
minibatches with weight ``r1_gamma / 2`` (the R1 step is scaled by the
interval and Adam's lr and betas are adjusted by interval / (interval + 1),
as in the paper), Adam ``lr`` with betas (``beta1``, ``beta2``), style
mixing with probability ``style_mixing``, and an exponential moving average
of G (half-life ``ema_kimg`` thousand images, ramped up over the first
``ema_rampup`` of the images seen when set) which is the generator attacks
use.

Defaults are StyleGAN2-ADA's ``stylegan2`` configuration (z and w 512, 8
mapping layers, channel base 32768, max 512, batch 32, lr 0.002, R1 gamma
10, EMA 10 kimg, minibatch-std group 4, style mixing 0.9). Deviations:

* no path-length regularisation of G (StyleGAN2-ADA's default weight 2 is
  used by every configuration but ``cifar``, which sets it to 0; it smooths
  the W -> image mapping rather than the sample quality the attacks rely
  on) and no adaptive discriminator augmentation (ADA);
* G's Adam runs at ``lr`` and betas (``beta1``, ``beta2``) unscaled:
  StyleGAN2-ADA keeps G's lazy-regularisation interval 4 even where the
  path-length weight is 0 and so scales G's lr and betas by 4 / 5 as it
  does D's (``training_loop.py``); here only D's are scaled (by its R1
  interval);
* all layers run in float32 (the paper runs the highest resolutions in
  float16; ``conv_clamp`` is kept);
* the modulated convolutions are computed unfused (scale the input by the
  styles, convolve, scale the output by the demodulation coefficients), the
  mathematically identical form StyleGAN2-ADA uses while training.

The CPU default trains a narrow network for 1,000 steps at 32x32 with the
loss settings of StyleGAN2-ADA's ``cifar`` configuration (2 mapping layers,
lr 0.0025, R1 gamma 0.01, no style mixing, EMA 500 kimg ramped up over 5%;
see config/README.md). It keeps the rest of this default, not ``cifar``'s:
the residual discriminator (``cifar`` uses ``orig``), minibatch-std group 4
(``cifar``: 32), batch 32 (``cifar``: 64), and narrow channels (``cifar``:
channel base 32768, max 512).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core import store
from mibench_core.data.common import to_model_range
from mibench_core.data.views import load_public
from mibench_core.priors.common import save_grid
from mibench_core.runtime import pick_device, progress, seed_everything

METHODS = [
    {
        "name": "stylegan",
        "kind": "prior",
        "call": "train_prior",
        "description": "StyleGAN2-style prior (Karras et al. 2020): mapping network, modulated convolutions, noise, "
        "W/W+/P spaces; non-saturating loss + lazy R1 on the public split",
        "defaults": {
            "z_dim": 512,
            "w_dim": 512,
            "mapping_layers": 8,
            "mapping_lr_multiplier": 0.01,
            "channel_base": 32768,
            "channel_max": 512,
            "conv_clamp": 256,
            "mbstd_group_size": 4,
            "steps": 781250,
            "batch_size": 32,
            "lr": 0.002,
            "beta1": 0.0,
            "beta2": 0.99,
            "r1_gamma": 10.0,
            "r1_interval": 16,
            "style_mixing": 0.9,
            "ema_kimg": 10.0,
            "ema_rampup": None,
            "p_samples": 10000,
        },
        "bounds": {
            "z_dim": "[1, inf)",
            "w_dim": "[1, inf)",
            "mapping_layers": "[1, inf)",
            "mapping_lr_multiplier": "(0, inf)",
            "channel_base": "[1, inf)",
            "channel_max": "[1, inf)",
            "conv_clamp": "(0, inf)",
            "mbstd_group_size": "[1, inf)",
            "steps": "[1, inf)",
            "batch_size": "[1, inf)",
            "lr": "(0, inf)",
            "beta1": "[0, 1)",
            "beta2": "[0, 1)",
            "r1_gamma": "[0, inf)",
            "r1_interval": "[1, inf)",
            "style_mixing": "[0, 1]",
            "ema_kimg": "(0, inf)",
            "ema_rampup": "(0.0, inf)",
            "p_samples": "[2, inf)",
        },
    }
]

log = logging.getLogger("mibench.prior")
SQRT2 = math.sqrt(2.0)
FIR = (1.0, 3.0, 3.0, 1.0)


def _check_resolution(resolution: int) -> None:
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"the StyleGAN prior needs a power-of-two resolution >= 8, got {resolution}")


# ------------------------------------------------------------------ building blocks


def fir_filter(taps=FIR) -> torch.Tensor:
    """The separable low-pass filter as a normalised 2-d kernel (sums to 1)."""
    f = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def _depthwise(x: torch.Tensor, f: torch.Tensor, pad: tuple[int, int, int, int], gain: float = 1.0) -> torch.Tensor:
    """Pad (left, right, top, bottom) and filter every channel with the 2-d kernel ``f`` (times gain)."""
    c = x.shape[1]
    x = F.pad(x, pad)
    k = (f * gain).flip([0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def upsample2x(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsampling by zero insertion and FIR filtering (gain 4 keeps the mean)."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _depthwise(up, f, (2, 1, 2, 1), gain=4.0)


def bias_act(x: torch.Tensor, b: torch.Tensor | None, act: str, gain: float = 1.0, clamp: float | None = None):
    if b is not None:
        x = x + b.reshape(1, -1, *([1] * (x.dim() - 2)))
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


class FullyConnected(nn.Module):
    """Equalised-learning-rate linear layer (StyleGAN2-ADA's FullyConnectedLayer)."""

    def __init__(
        self,
        in_f: int,
        out_f: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_f, in_f) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_f], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_f)
        self.bias_gain = lr_multiplier

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        b = None if self.bias is None else self.bias * self.bias_gain
        return F.linear(x, self.weight * self.weight_gain, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre_activation(x)
        return bias_act(x, None, self.activation, SQRT2 if self.activation == "lrelu" else 1.0)


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate convolution with optional FIR 2x downsampling (the discriminator's)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        bias: bool = True,
        activation: str = "linear",
        down: int = 1,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.activation, self.down, self.conv_clamp = activation, down, conv_clamp
        self.register_buffer("resample_filter", fir_filter())
        self.padding = kernel // 2
        self.weight_gain = 1 / math.sqrt(c_in * kernel * kernel)
        self.act_gain = SQRT2 if activation == "lrelu" else 1.0
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        k = w.shape[-1]
        if self.down == 2 and k == 1:
            x = _depthwise(x, self.resample_filter, (1, 1, 1, 1))[:, :, ::2, ::2]
            x = F.conv2d(x, w)
        elif self.down == 2:
            p = self.padding + 1
            x = _depthwise(x, self.resample_filter, (p, p, p, p))
            x = F.conv2d(x, w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.padding)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, self.activation, self.act_gain * gain, clamp)


def modulated_conv(x, weight, styles, up: int = 1, demodulate: bool = True, f: torch.Tensor | None = None):
    """StyleGAN2's modulated convolution, unfused: x * s, convolve, * 1/sigma (demodulation).

    ``up=2``: transposed stride-2 convolution followed by the FIR filter (as StyleGAN2's
    conv2d_resample); otherwise a 'same' convolution."""
    n = x.shape[0]
    c_out, c_in, kh, kw = weight.shape
    x = x * styles.reshape(n, c_in, 1, 1)
    if up == 2:
        x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        x = _depthwise(x, f, (1, 1, 1, 1), gain=4.0)
    else:
        x = F.conv2d(x, weight, padding=kh // 2)
    if demodulate:
        # 1 / sqrt(sum_{i,k} (w_oik s_i)^2) = 1 / sqrt(sum_i s_i^2 sum_k w_oik^2), without the [N, O, I, k, k] tensor
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
        x = x * dcoefs.reshape(n, c_out, 1, 1)
    return x


class SynthesisLayer(nn.Module):
    def __init__(
        self,
        c_in: int,
        c_out: int,
        w_dim: int,
        resolution: int,
        up: int = 1,
        use_noise: bool = True,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.resolution, self.up, self.use_noise, self.conv_clamp = resolution, up, use_noise, conv_clamp
        self.register_buffer("resample_filter", fir_filter())
        self.affine = FullyConnected(w_dim, c_in, bias_init=1)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv(x, self.weight, styles, up=self.up, f=self.resample_filter)
        if self.use_noise and noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return bias_act(x, self.bias, "lrelu", SQRT2, self.conv_clamp)


class ToRGB(nn.Module):
    def __init__(self, c_in: int, c_out: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, c_in, bias_init=1)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.weight_gain = 1 / math.sqrt(c_in)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv(x, self.weight, styles, demodulate=False)
        return bias_act(x, self.bias, "linear", 1.0, self.conv_clamp)


class SynthesisBlock(nn.Module):
    def __init__(
        self,
        c_in: int,
        c_out: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        conv_clamp: float | None = None,
        use_noise: bool = True,
    ):
        super().__init__()
        self.in_channels, self.resolution = c_in, resolution
        self.register_buffer("resample_filter", fir_filter())
        self.num_conv = 1 if c_in == 0 else 2
        self.num_torgb = 1
        if c_in == 0:
            self.const = nn.Parameter(torch.randn(c_out, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(
                c_in, c_out, w_dim, resolution, up=2, use_noise=use_noise, conv_clamp=conv_clamp
            )
        self.conv1 = SynthesisLayer(c_out, c_out, w_dim, resolution, use_noise=use_noise, conv_clamp=conv_clamp)
        self.torgb = ToRGB(c_out, img_channels, w_dim, conv_clamp=conv_clamp)

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str = "random"):
        """``ws``: [N, num_conv + 1, w_dim]; returns the block's features and the running image."""
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        if img is not None:
            img = upsample2x(img, self.resample_filter)
        y = self.torgb(x, ws[:, self.num_conv])
        return x, (y if img is None else img + y)


class Synthesis(nn.Module):
    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float | None = None,
        use_noise: bool = True,
    ):
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"synthesis resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        ch = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        self.channels = ch
        self.num_ws = 0
        for r in self.block_resolutions:
            block = SynthesisBlock(ch[r // 2] if r > 4 else 0, ch[r], w_dim, r, img_channels, conv_clamp, use_noise)
            self.num_ws += block.num_conv
            setattr(self, f"b{r}", block)
        self.num_ws += 1  # the last toRGB

    @property
    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{r}") for r in self.block_resolutions]

    def block_ws(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """Each block's slice of the W+ codes (a block's toRGB shares the next block's first w)."""
        out, idx = [], 0
        for block in self.blocks:
            out.append(ws[:, idx : idx + block.num_conv + block.num_torgb])
            idx += block.num_conv
        return out

    def run_blocks(
        self, ws: torch.Tensor, start: int = 0, end: int | None = None, x=None, img=None, noise_mode: str = "random"
    ):
        """Blocks ``start`` .. ``end - 1`` (default: to the last) from the features ``(x, img)``
        entering block ``start`` (None for block 0); returns the features leaving the last one."""
        parts = self.block_ws(ws)
        end = len(parts) if end is None else end
        for block, w in list(zip(self.blocks, parts))[start:end]:
            x, img = block(x, img, w, noise_mode)
        return x, img

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        return self.run_blocks(ws, noise_mode=noise_mode)[1]


class Mapping(nn.Module):
    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_layers, self.w_avg_beta = (
            z_dim,
            w_dim,
            num_ws,
            num_layers,
            w_avg_beta,
        )
        feats = [z_dim] + [w_dim] * num_layers
        for i in range(num_layers):
            setattr(
                self, f"fc{i}", FullyConnected(feats[i], feats[i + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def p_space(self, z: torch.Tensor) -> torch.Tensor:
        """P: the last layer's pre-activation (w = sqrt(2) * lrelu(p))."""
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.num_layers - 1):
            x = getattr(self, f"fc{i}")(x)
        return getattr(self, f"fc{self.num_layers - 1}").pre_activation(x)

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        """z [N, z_dim] -> W+ codes [N, num_ws, w_dim] (truncated towards ``w_avg`` when psi != 1)."""
        w = p_to_w(self.p_space(z))
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws = torch.cat([self.w_avg.lerp(ws[:, :cut], truncation_psi), ws[:, cut:]], dim=1)
        return ws


def w_to_p(w: torch.Tensor) -> torch.Tensor:
    """Invert w = sqrt(2) * LeakyReLU_0.2(p)."""
    return torch.where(w >= 0, w, w / 0.2) / SQRT2


def p_to_w(p: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(p, 0.2) * SQRT2


class Generator(nn.Module):
    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        img_resolution: int = 32,
        img_channels: int = 1,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, w_dim, img_resolution, img_channels
        self.synthesis = Synthesis(w_dim, img_resolution, img_channels, channel_base, channel_max, conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = Mapping(z_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_multiplier)

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "random") -> torch.Tensor:
        return self.synthesis(self.mapping(z, truncation_psi), noise_mode)


class MinibatchStd(nn.Module):
    def __init__(self, group_size: int | None):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g:
            g = math.gcd(n, g)
        y = x.reshape(g, -1, 1, c, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=[2, 3, 4])
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    def __init__(self, c_in: int, c_tmp: int, c_out: int, img_channels: int, conv_clamp: float | None = None):
        super().__init__()
        self.in_channels = c_in
        self.register_buffer("resample_filter", fir_filter())
        if c_in == 0:
            self.fromrgb = Conv2dLayer(img_channels, c_tmp, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(c_tmp, c_tmp, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(c_tmp, c_out, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(c_tmp, c_out, 1, bias=False, down=2)

    def forward(self, x, img):
        if self.in_channels == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class Epilogue(nn.Module):
    def __init__(self, c_in: int, mbstd_group_size: int | None = 4, conv_clamp: float | None = None):
        super().__init__()
        self.mbstd = MinibatchStd(mbstd_group_size)
        self.conv = Conv2dLayer(c_in + 1, c_in, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.fc = FullyConnected(c_in * 16, c_in, activation="lrelu")
        self.out = FullyConnected(c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))


class Discriminator(nn.Module):
    def __init__(
        self,
        img_resolution: int = 32,
        img_channels: int = 1,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float | None = None,
        mbstd_group_size: int | None = 4,
    ):
        super().__init__()
        self.block_resolutions = [2**i for i in range(int(math.log2(img_resolution)), 2, -1)]
        ch = {r: min(channel_base // r, channel_max) for r in [*self.block_resolutions, 4]}
        for r in self.block_resolutions:
            c_in = ch[r] if r < img_resolution else 0
            setattr(self, f"b{r}", DiscriminatorBlock(c_in, ch[r], ch[r // 2], img_channels, conv_clamp))
        self.b4 = Epilogue(ch[4], mbstd_group_size, conv_clamp)

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """The 4x4 features entering the epilogue, flattened (independent of the rest of the batch)."""
        x = None
        for r in self.block_resolutions:
            x = getattr(self, f"b{r}")(x, img)
        return x.flatten(1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = None
        for r in self.block_resolutions:
            x = getattr(self, f"b{r}")(x, img)
        return self.b4(x).flatten()


# ------------------------------------------------------------------ the prior object attacks use


RGB_TO_GRAY = (0.299, 0.587, 0.114)


@dataclass
class StyleGANPrior:
    """A trained (or converted) StyleGAN2 generator with its spaces.

    Attacks work with W+ codes ``ws`` [N, num_ws, w_dim]; :meth:`images`
    synthesises them (``const`` noise unless told otherwise) and adapts them
    to the target's input: an optional centre crop of ``center_crop`` pixels
    (PPA's 800 of 1024 for FFHQ), resizing (antialiased bilinear) and the
    number of channels (ITU-R 601 luma for a grayscale target)."""

    generator: Generator
    discriminator: Discriminator | None
    p_mean: torch.Tensor  # [w_dim]
    p_std: torch.Tensor  # [w_dim]
    center_crop: int | None = None

    @property
    def z_dim(self) -> int:
        return self.generator.z_dim

    @property
    def w_dim(self) -> int:
        return self.generator.w_dim

    @property
    def num_ws(self) -> int:
        return self.generator.num_ws

    @property
    def mapping(self) -> Mapping:
        return self.generator.mapping

    @property
    def synthesis(self) -> Synthesis:
        return self.generator.synthesis

    def sample_z(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.z_dim, generator=gen)

    def sample_ws(
        self,
        n: int,
        gen: torch.Generator | None,
        device,
        psi: float = 1.0,
        cutoff: int | None = None,
        batch: int = 1024,
    ) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for i in range(0, n, batch):
                z = self.sample_z(min(batch, n - i), gen).to(device)
                out.append(self.mapping(z, psi, cutoff))
        return torch.cat(out)

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """A single w [N, w_dim] (or [N, 1, w_dim]) as W+ codes [N, num_ws, w_dim]."""
        if w.dim() == 2:
            w = w.unsqueeze(1)
        return w.expand(-1, self.num_ws, -1) if w.shape[1] == 1 else w

    def adapt(self, img: torch.Tensor, resolution: int, channels: int) -> torch.Tensor:
        """Generator output -> the target's input size and channels (differentiable)."""
        if self.center_crop is not None and self.center_crop < img.shape[-1]:
            c = self.center_crop
            top = (img.shape[-2] - c) // 2
            left = (img.shape[-1] - c) // 2
            img = img[:, :, top : top + c, left : left + c]
        if img.shape[-1] != resolution:
            img = F.interpolate(
                img,
                size=(resolution, resolution),
                mode="bilinear",
                align_corners=False,
                antialias=img.shape[-1] > resolution,
            )
        if img.shape[1] != channels:
            if channels == 1 and img.shape[1] == 3:
                img = (img * torch.tensor(RGB_TO_GRAY, device=img.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
            elif channels == 3 and img.shape[1] == 1:
                img = img.repeat(1, 3, 1, 1)
            else:
                raise ValueError(f"cannot adapt {img.shape[1]} generator channels to {channels}")
        return img

    def images(self, ws: torch.Tensor, resolution: int, channels: int, noise_mode: str = "const") -> torch.Tensor:
        return self.adapt(self.synthesis(self.broadcast(ws), noise_mode), resolution, channels)

    def truncate(self, ws: torch.Tensor, psi: float, layers: int | None = None) -> torch.Tensor:
        """W+ codes with the first ``layers`` style inputs (None: all) moved to ``w_avg + psi (w - w_avg)``."""
        ws = self.broadcast(ws)
        cut = ws.shape[1] if layers is None else min(int(layers), ws.shape[1])
        w_avg = self.mapping.w_avg.to(ws.device, ws.dtype)
        return torch.cat([w_avg.lerp(ws[:, :cut], psi), ws[:, cut:]], dim=1)

    # Mirror's P-space clipping -------------------------------------------------------------

    def p_bounds(self, k: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """The box mean +- k std of P, per dimension."""
        return self.p_mean - k * self.p_std, self.p_mean + k * self.p_std

    def clip_w(self, w: torch.Tensor, k: float = 1.0) -> torch.Tensor:
        """Clip w in P space to mean +- k std (w -> p -> clamp -> w; lrelu is monotone)."""
        lo, hi = self.p_bounds(k)
        return p_to_w(torch.maximum(torch.minimum(w_to_p(w), hi.to(w.device)), lo.to(w.device)))


def p_statistics(mapping: Mapping, n: int, gen: torch.Generator, device, batch: int = 2048):
    """Per-dimension mean and standard deviation (population) of P over ``n`` mapped z ~ N(0, I)."""
    total = torch.zeros(mapping.w_dim, dtype=torch.float64)
    sq = torch.zeros_like(total)
    with torch.no_grad():
        for i in range(0, n, batch):
            p = mapping.p_space(torch.randn(min(batch, n - i), mapping.z_dim, generator=gen).to(device))
            total += p.double().sum(0).cpu()
            sq += p.double().square().sum(0).cpu()
    mean = total / n
    return mean.float(), (sq / n - mean.square()).clamp_min(0).sqrt().float()


# ------------------------------------------------------------------ training


def r1_penalty(d_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-sample R1: ||grad_x D(x)||^2 on real images (create_graph for the D update)."""
    (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
    return grad.square().sum(dim=[1, 2, 3])


def ema_beta(batch: int, images_seen: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """StyleGAN2-ADA's G_ema decay for one step: 0.5 ** (batch / ema_nimg)."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, images_seen * ema_rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


def build_networks(p: dict, channels: int, resolution: int) -> tuple[Generator, Discriminator]:
    G = Generator(
        p["z_dim"],
        p["w_dim"],
        resolution,
        channels,
        p["mapping_layers"],
        p["mapping_lr_multiplier"],
        p["channel_base"],
        p["channel_max"],
        p["conv_clamp"],
    )
    D = Discriminator(resolution, channels, p["channel_base"], p["channel_max"], p["conv_clamp"], p["mbstd_group_size"])
    return G, D


def mixed_ws(G: Generator, z: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Mapping with style mixing: with probability ``prob`` the codes from a random layer on
    come from a second latent."""
    ws = G.mapping(z, update_w_avg=True)
    if prob > 0 and torch.rand([], generator=gen).item() < prob:
        cutoff = int(torch.randint(1, G.num_ws, [], generator=gen))
        z2 = torch.randn(z.shape, generator=gen).to(z.device)
        ws = torch.cat([ws[:, :cutoff], G.mapping(z2)[:, cutoff:]], dim=1)
    return ws


def train_stylegan(public: torch.Tensor, p: dict, device, gen: torch.Generator):
    """StyleGAN2's training loop on uint8 public images; returns (G_ema, D, history)."""
    import copy

    channels, resolution = public.shape[1], public.shape[-1]
    _check_resolution(resolution)
    G, D = build_networks(p, channels, resolution)
    G, D = G.to(device).train(), D.to(device).train()
    G_ema = copy.deepcopy(G).eval()
    for q in G_ema.parameters():
        q.requires_grad_(False)
    betas = (p["beta1"], p["beta2"])
    opt_g = torch.optim.Adam(G.parameters(), lr=p["lr"], betas=betas, eps=1e-8)
    ratio = p["r1_interval"] / (p["r1_interval"] + 1)  # lazy regularisation (StyleGAN2, appendix B)
    opt_d = torch.optim.Adam(D.parameters(), lr=p["lr"] * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio), eps=1e-8)
    bs, n = p["batch_size"], len(public)
    perm, cursor = torch.randperm(n, generator=gen), 0
    history = []
    bar = progress(range(p["steps"]), desc="stylegan", unit="step")
    for step in bar:
        if cursor + bs > n:
            perm, cursor = torch.randperm(n, generator=gen), 0
        real = to_model_range(public[perm[cursor : cursor + bs]]).to(device)
        cursor += bs
        # G: non-saturating loss softplus(-D(G(z)))
        z = torch.randn(bs, p["z_dim"], generator=gen).to(device)
        for q in D.parameters():
            q.requires_grad_(False)
        fake = G.synthesis(mixed_ws(G, z, p["style_mixing"], gen))
        loss_g = F.softplus(-D(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for q in D.parameters():
            q.requires_grad_(True)
        # D: softplus(D(G(z))) + softplus(-D(x))
        z = torch.randn(bs, p["z_dim"], generator=gen).to(device)
        with torch.no_grad():
            fake = G.synthesis(mixed_ws(G, z, p["style_mixing"], gen))
        d_fake, d_real = D(fake), D(real)
        loss_d = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        r1 = None
        if p["r1_gamma"] > 0 and step % p["r1_interval"] == 0:
            real_r = real.detach().requires_grad_(True)
            r1 = r1_penalty(D(real_r), real_r).mean()
            opt_d.zero_grad(set_to_none=True)
            (r1 * (p["r1_gamma"] / 2) * p["r1_interval"]).backward()
            opt_d.step()
        # G_ema
        beta = ema_beta(bs, (step + 1) * bs, p["ema_kimg"], p["ema_rampup"])
        with torch.no_grad():
            for pe, pg in zip(G_ema.parameters(), G.parameters()):
                pe.copy_(pg.detach().lerp(pe, beta))
            for be, bg in zip(G_ema.buffers(), G.buffers()):
                be.copy_(bg)
        if step % 50 == 0 or step == p["steps"] - 1:
            entry = {
                "step": step,
                "loss_g": loss_g.item(),
                "loss_d": loss_d.item(),
                "d_real": d_real.mean().item(),
                "d_fake": d_fake.mean().item(),
            }
            if r1 is not None:
                entry["r1"] = r1.item()
            history.append(entry)
            bar.set_postfix(loss_g=f"{entry['loss_g']:.3f}", loss_d=f"{entry['loss_d']:.3f}")
    return G_ema, D.eval(), history


def save_prior(
    outdir: Path,
    G: Generator,
    D: Discriminator | None,
    p_mean,
    p_std,
    gen: torch.Generator,
    device,
    resolution: int,
    channels: int,
    center_crop: int | None = None,
) -> list[str]:
    """Write the artifact files every StyleGAN prior has (weights, P statistics, sample grid)."""
    store.save_tensors(outdir / "generator.safetensors", G.state_dict())
    files = ["generator.safetensors"]
    if D is not None:
        store.save_tensors(outdir / "discriminator.safetensors", D.state_dict())
        files.append("discriminator.safetensors")
    store.save_tensors(outdir / "pspace.safetensors", {"p_mean": p_mean, "p_std": p_std})
    prior = StyleGANPrior(G, D, p_mean, p_std, center_crop)
    with torch.no_grad():
        ws = prior.mapping(prior.sample_z(64, gen).to(device))
        grid = torch.cat([prior.images(ws[i : i + 16], resolution, channels) for i in range(0, 64, 16)])
    save_grid(grid.clamp(-1, 1).cpu(), outdir / "samples.png")
    return [*files, "pspace.safetensors", "samples.png"]


def train_prior(job: dict) -> tuple[list[str], dict, str]:
    device = pick_device(job["device"])
    gen = seed_everything(job["seed"])
    p = job["spec"]["params"]
    public = load_public(job["inputs"]["data"]["dir"])["public_x"]  # the public view: all a prior sees
    channels, resolution = public.shape[1], public.shape[-1]
    G, D, history = train_stylegan(public, p, device, gen)
    p_mean, p_std = p_statistics(G.mapping, p["p_samples"], gen, device)
    files = save_prior(Path(job["outdir"]), G, D, p_mean, p_std, gen, device, resolution, channels)
    results = {
        "z_dim": p["z_dim"],
        "w_dim": p["w_dim"],
        "num_ws": G.num_ws,
        "channels": channels,
        "resolution": resolution,
        "generator_resolution": resolution,
        "generator_channels": channels,
        "synthesis_channels": {str(k): v for k, v in G.synthesis.channels.items()},
        "history": history,
        "architecture": architecture(p, channels, resolution),
    }
    return files, results, str(device)


def architecture(p: dict, channels: int, resolution: int) -> dict:
    """Everything needed to rebuild the networks (stored in the manifest)."""
    return {
        "generator": {
            "z_dim": p["z_dim"],
            "w_dim": p["w_dim"],
            "img_resolution": resolution,
            "img_channels": channels,
            "mapping_layers": p["mapping_layers"],
            "mapping_lr_multiplier": p["mapping_lr_multiplier"],
            "channel_base": p["channel_base"],
            "channel_max": p["channel_max"],
            "conv_clamp": p["conv_clamp"],
        },
        "discriminator": {
            "img_resolution": resolution,
            "img_channels": channels,
            "channel_base": p["channel_base"],
            "channel_max": p["channel_max"],
            "conv_clamp": p["conv_clamp"],
            "mbstd_group_size": p["mbstd_group_size"],
        },
    }


def load(prior_dir: str | Path, device="cpu") -> StyleGANPrior:
    manifest = store.read_manifest(prior_dir)
    res = manifest["results"]
    arch = res["architecture"]
    G = Generator(**arch["generator"])
    G.load_state_dict(store.load_tensors(Path(prior_dir) / "generator.safetensors"))
    D = None
    if arch.get("discriminator") is not None:
        D = Discriminator(**arch["discriminator"])
        D.load_state_dict(store.load_tensors(Path(prior_dir) / "discriminator.safetensors"))
    for net in (n for n in (G, D) if n is not None):
        net.to(device).eval()
        for q in net.parameters():
            q.requires_grad_(False)
    stats = store.load_tensors(Path(prior_dir) / "pspace.safetensors")
    return StyleGANPrior(G, D, stats["p_mean"].to(device), stats["p_std"].to(device), res.get("center_crop"))
