"""VMI: Variational Model Inversion (Wang et al., "Variational Model Inversion
Attacks", NeurIPS 2021).

Model inversion as variational inference of the posterior over the latent
code of a generator trained on public data, p(z | y) proportional to
p_T(y | G(z)) p(z). For each target class a variational distribution q_y(z)
is fitted by minimising

    L(q_y) = E_{z ~ q_y}[CE(T(G(z)), y)] + lambda * KL(q_y(z) || p(z))

with p(z) = N(0, I), the generator's latent distribution (the "auxiliary"
latent distribution of the paper); lambda = 1 is the exact evidence lower
bound, the paper tunes lambda (a power posterior). Reconstructions are
samples of q_y.

Deviations: q_y is a diagonal Gaussian (reparameterised; mu 0, log-variance
0 at the start, i.e. q starts at the prior), which the paper lists as a
baseline of its flow-based q (a Glow/RealNVP flow); the paper's generator is
a StyleGAN or DCGAN trained on the auxiliary data, here any of our GAN
priors' generators (``gmi-gan`` or ``kedmi-gan``). The optimiser (Adam,
lr 0.01, 1,500 iterations, ``samples_per_step`` Monte-Carlo samples per
class per step) is ours: the method reference gives none.

``vmi-flow`` is the paper's main variant on a StyleGAN (its "layered flow",
the authors' ``LayeredFlowMiner`` in ``likelihood_model.py`` and
``attack_stylegan.py``, wangkua1/vmi and the
ffhibnese/Model-Inversion-Attack-ToolBox copy): for every class and every
identity layer l (``identity_layers``, null: all style inputs) a
normalising flow f_{y,l} over the mapping network's input z. A sample draws
one base eps ~ N(0, I) and feeds it to every layer's flow (the authors'
``[flow_miner(z) for flow_miner in self.flow_miners]``), w_l =
mapping(f_{y,l}(eps)) on the identity layers and the mapping of a fresh
z ~ N(0, I) on the others (the nuisance layers); the image is clamped to
[-1, 1] before the target (as the authors'). While the flows are equal (at
the start: identity couplings, shared permutations) every layer gets the
same w, so q starts as the generator's own distribution, not a per-layer
style mix. q_{y,l}, the marginal of z_l, is what the KL term regularises,
where the prior is known exactly:

    L(q_y) = E[CE(T(G(w)), y)] + kl_weight * mean_l KL(q_{y,l}(z) || N(0, I))

(KL by Monte Carlo, log q from the flow's change of variables). The flow
has ``flow_steps`` (K = 10) steps of ActNorm, a fixed random permutation
and a coupling layer (``coupling``: ``additive``, the paper's, or Glow's
``affine``) whose network is a 2-hidden-layer MLP of width ``flow_hidden``
with a zero-initialised output, so q starts at N(0, I). Optimiser: SGD
with momentum 0.9, ``lr`` 1e-4, ``kl_weight`` 1e-3, ``samples_per_step``
(64) samples per class and step, ``iterations`` 4,867 (the authors' 31
epochs of 10,000 samples at batch 64). On a DCGAN prior (``gmi-gan``,
``kedmi-gan``) the flow is over its z and there is one layer. Deviations:
the paper's Glow flow is multi-scale (``L`` = 3 levels) and runs in float64;
ours is single-scale in float32, and each layer's KL is estimated on the
samples of the attack term (the authors draw a separate batch for each
layer's flow). All our flows share their fixed permutations and start as
the same map (zero-initialised couplings), so the layers of a sample start
with one w exactly; the authors initialise each layer's flow on its own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.attacks.kedmi import optimise_distribution
from mibench_core.attacks.summary import summarise
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "vmi",
        "kind": "attack",
        "call": "run_attack",
        "description": "VMI (Wang et al. 2021): per-class Gaussian q(z), CE + lambda * KL(q || N(0, I))",
        "defaults": {"per_class": 8, "iterations": 1500, "lr": 0.01, "kl_weight": 1.0, "samples_per_step": 4},
        "bounds": {
            "per_class": "[1, inf)",
            "iterations": "[1, inf)",
            "lr": "(0, inf)",
            "kl_weight": "[0, inf)",
            "samples_per_step": "[1, inf)",
        },
        "priors": ["gmi-gan", "kedmi-gan"],
        "access": "white-box",
    },
    {
        "name": "vmi-flow",
        "kind": "attack",
        "call": "run_flow_attack",
        "description": "VMI (Wang et al. 2021), main variant: a normalising flow per class and StyleGAN layer over "
        "the mapping input, CE + lambda * KL",
        "defaults": {
            "per_class": 8,
            "iterations": 4867,
            "lr": 0.0001,
            "momentum": 0.9,
            "kl_weight": 0.001,
            "samples_per_step": 64,
            "flow_steps": 10,
            "flow_hidden": 512,
            "coupling": "additive",
            "identity_layers": None,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "iterations": "[0, inf)",
            "lr": "(0, inf)",
            "momentum": "[0, 1)",
            "kl_weight": "[0, inf)",
            "samples_per_step": "[1, inf)",
            "flow_steps": "[1, inf)",
            "flow_hidden": "[1, inf)",
        },
        "priors": ["stylegan", "stylegan2-ada", "gmi-gan", "kedmi-gan"],
        "access": "white-box",
    },
]


def gaussian_kl_to_standard(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per row."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def vmi_loss(
    logits: torch.Tensor, labels: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, kl_weight: float
) -> torch.Tensor:
    """Monte-Carlo VMI objective of one class: mean CE over its samples + kl_weight * KL."""
    return F.cross_entropy(logits, labels) + kl_weight * gaussian_kl_to_standard(mu, logvar)


def run_attack(
    ctx: AttackContext, per_class: int, iterations: int, lr: float, kl_weight: float, samples_per_step: int
) -> AttackResult:
    T = ctx.target

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(T(x), y, reduction="none")

    def dist_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return kl_weight * gaussian_kl_to_standard(mu, logvar)

    images, labels, z, info = optimise_distribution(
        ctx, loss_fn, per_class=per_class, iterations=iterations, lr=lr, samples_per_step=samples_per_step,
        desc="vmi", dist_loss=dist_loss,
    )  # fmt: skip
    more, extras = summarise(ctx, images, labels)
    return AttackResult(images.cpu(), labels, {"latents": z.cpu(), **extras}, {**info, **more})


# ------------------------------------------------------------------ the flow posterior (vmi-flow)


def standard_normal_logp(x: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, I) summed over the last dimension."""
    return -0.5 * (x.square() + math.log(2 * math.pi)).sum(-1)


class BatchedFlow(nn.Module):
    """``groups`` independent flows on R^dim, each K steps of ActNorm, a fixed permutation and a
    coupling layer (additive: x_b + t(x_a); affine (Glow): (x_b + t(x_a)) * sigmoid(s(x_a) + 2))."""

    def __init__(self, groups: int, dim: int, steps: int, hidden: int, coupling: str, gen: torch.Generator):
        super().__init__()
        if coupling not in ("additive", "affine"):
            raise ValueError(f"coupling must be 'additive' or 'affine', got {coupling!r}")
        if dim < 2:
            raise ValueError("a coupling flow needs at least 2 dimensions")
        self.coupling, self.dim, self.d_a = coupling, dim, dim // 2
        d_b = dim - self.d_a
        out = d_b if coupling == "additive" else 2 * d_b
        self.an_bias = nn.Parameter(torch.zeros(steps, groups, 1, dim))
        self.an_logs = nn.Parameter(torch.zeros(steps, groups, 1, dim))
        self.register_buffer("perms", torch.stack([torch.randperm(dim, generator=gen) for _ in range(steps)]))

        def uniform(*shape, fan_in):
            bound = 1 / math.sqrt(fan_in)
            return nn.Parameter((torch.rand(*shape, generator=gen) * 2 - 1) * bound)

        self.w1, self.b1 = uniform(steps, groups, self.d_a, hidden, fan_in=self.d_a), nn.Parameter(
            torch.zeros(steps, groups, 1, hidden))  # fmt: skip
        self.w2, self.b2 = uniform(steps, groups, hidden, hidden, fan_in=hidden), nn.Parameter(
            torch.zeros(steps, groups, 1, hidden))  # fmt: skip
        self.w3 = nn.Parameter(torch.zeros(steps, groups, hidden, out))  # zero init: the flow starts as the identity
        self.b3 = nn.Parameter(torch.zeros(steps, groups, 1, out))

    def forward(self, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """eps [groups, S, dim] -> (z, log|det dz/deps|) with shapes [groups, S, dim], [groups, S]."""
        x, logdet = eps, eps.new_zeros(eps.shape[:2])
        for k in range(len(self.perms)):
            x = (x + self.an_bias[k]) * self.an_logs[k].exp()
            logdet = logdet + self.an_logs[k].sum(-1)
            x = x[..., self.perms[k]]
            xa, xb = x[..., : self.d_a], x[..., self.d_a :]
            h = torch.relu(xa @ self.w1[k] + self.b1[k])
            h = torch.relu(h @ self.w2[k] + self.b2[k])
            o = h @ self.w3[k] + self.b3[k]
            if self.coupling == "additive":
                xb = xb + o
            else:
                shift, raw = o[..., : xb.shape[-1]], o[..., xb.shape[-1] :]
                scale = torch.sigmoid(raw + 2.0)
                xb = (xb + shift) * scale
                logdet = logdet + scale.log().sum(-1)
            x = torch.cat([xa, xb], dim=-1)
        return x, logdet

    def sample(self, n: int, gen: torch.Generator, shared: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n samples per group: (z, log q(z), eps); each run of ``shared`` consecutive groups gets the
        same base samples eps (the layers of one class), log q is each group's marginal density."""
        groups = self.an_bias.shape[1]
        if groups % shared:
            raise ValueError(f"{groups} flows cannot share base samples in runs of {shared}")
        eps = torch.randn(groups // shared, n, self.dim, generator=gen).to(self.an_bias.device)
        eps = eps.repeat_interleave(shared, dim=0)
        z, logdet = self(eps)
        return z, standard_normal_logp(eps) - logdet, eps


def flow_kl(logq: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Monte-Carlo KL(q || N(0, I)) per group: mean over samples of log q(z) - log N(z)."""
    return (logq - standard_normal_logp(z)).mean(-1)


def _layers(prior, identity_layers) -> list[int] | None:
    """The identity layers of a StyleGAN prior (None for a DCGAN prior, which has no layers)."""
    if not hasattr(prior, "num_ws"):
        if identity_layers is not None:
            raise ValueError("identity_layers applies to StyleGAN priors only")
        return None
    layers = list(range(prior.num_ws)) if identity_layers is None else [int(i) for i in identity_layers]
    if not layers or any(not 0 <= i < prior.num_ws for i in layers):
        raise ValueError(f"identity_layers must name style inputs 0..{prior.num_ws - 1}, got {identity_layers}")
    return layers


def flow_images(ctx: AttackContext, flow: BatchedFlow, layers, n: int):
    """``n`` images per class from the flows: (images [C * n] class-major, KL per class [C])."""
    prior, n_cls = ctx.prior, len(ctx.classes)
    n_l = 1 if layers is None else len(layers)
    z, logq, _ = flow.sample(n, ctx.gen, shared=n_l)  # one base sample for all of a class's layers
    kl = flow_kl(logq, z)
    if layers is None:
        return prior.generator(z.reshape(-1, z.shape[-1])).clamp(-1, 1), kl
    w_id = prior.mapping(z.reshape(-1, z.shape[-1]))[:, 0].view(n_cls, n_l, n, -1)  # [C, L, n, w_dim]
    nuisance = prior.mapping(prior.sample_z(n_cls * n, ctx.gen).to(ctx.device)).view(n_cls, n, prior.num_ws, -1)
    ws = nuisance.clone()
    ws[:, :, layers] = w_id.permute(0, 2, 1, 3)
    x = prior.images(ws.reshape(n_cls * n, prior.num_ws, -1), ctx.resolution, ctx.channels).clamp(-1, 1)
    return x, kl.view(n_cls, n_l).mean(1)


def run_flow_attack(
    ctx: AttackContext,
    per_class: int,
    iterations: int,
    lr: float,
    momentum: float,
    kl_weight: float,
    samples_per_step: int,
    flow_steps: int,
    flow_hidden: int,
    coupling: str,
    identity_layers: list | None,
) -> AttackResult:
    T, n_cls = ctx.target, len(ctx.classes)
    layers = _layers(ctx.prior, identity_layers)
    groups = n_cls * (1 if layers is None else len(layers))
    flow = BatchedFlow(groups, ctx.prior.z_dim, flow_steps, flow_hidden, coupling, ctx.gen).to(ctx.device)
    opt = torch.optim.SGD(flow.parameters(), lr=lr, momentum=momentum)
    y = torch.tensor(ctx.classes, device=ctx.device).repeat_interleave(samples_per_step)
    bar = progress(range(iterations), desc="vmi-flow", unit="it")
    for it in bar:
        x, kl = flow_images(ctx, flow, layers, samples_per_step)
        ce = F.cross_entropy(T(x), y, reduction="none").view(n_cls, samples_per_step).mean(1)
        loss = (ce + kl_weight * kl).sum()  # each class's flow gets its own objective's gradient
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it % 50 == 0:
            bar.set_postfix(ce=f"{ce.mean().item():.3f}", kl=f"{kl.mean().item():.3f}")
    with torch.no_grad():
        images, kl = flow_images(ctx, flow, layers, per_class)
        images = images.clamp(-1, 1)
    labels = torch.tensor(ctx.classes).repeat_interleave(per_class)
    info, extras = summarise(ctx, images, labels)
    info["final_kl_mean"] = kl.mean().item()
    return AttackResult(images.cpu(), labels, extras, info)
