"""C2FMI: coarse-to-fine black-box model inversion (Ye et al., "C2FMI:
Corse-to-Fine Black-box Model Inversion Attack", IEEE TDSC 2023).

Black-box (the target's probabilities through the query-counting oracle),
on a StyleGAN prior, in three steps as the authors' code:

1. Inverse network. An attacker-side embedding model E and an MLP ``Inv``
   from the target's probability vector to E's embedding space. ``Inv`` is
   trained with MSE on public images x: ``Inv(oracle(x)) ~ E(x)``
   (``inverse_samples`` public images, each one query; ``inverse_epochs``
   (20), Adam ``inverse_lr`` (0.001), batch 128, the lr x0.8 every 2
   epochs). ``Inv`` is the authors' ``predict2feature``
   (``C2FMI/code/models/predict2feature.py`` in
   ffhibnese/Model-Inversion-Attack-ToolBox; MiLabHITSZ/2022YeC2FMI
   ``train_inv.py``): it keeps the ``inverse_top_k`` largest probabilities
   (null: all classes, the authors' ``predict2feature(tar_classes,
   tar_classes)``), maps each to ``max(log p, -1000) + 50``, shifts them to
   be non-negative (adds ``relu(-min)``), puts them back at their classes
   (zeros elsewhere), L2-normalises the vector, then applies
   Linear(K, ``inverse_hidden`` (4096)) - LeakyReLU(0.2) - Linear(4096,
   4096) - LeakyReLU(0.2) - Dropout(0.25) - Linear(4096, E's dimension).
2. Coarse inversion, white-box on the attacker's own models (E and G, not
   the target): per class, ``coarse_batch`` (16) w's, each initialised to
   the mean of two random mapped w, are optimised with Adam (``coarse_lr``
   0.02, x0.95 every 20 steps) for ``coarse_steps`` (20) steps to minimise
   ``MSE(E(G(w)), Inv(v_y))``, where v_y is drawn afresh every step as the
   authors' ``main_attack.py`` does: |N(0, 1)| in every class, 1e18 at y,
   L2-normalised (after Inv's log transform, about 50 at y and 9 elsewhere,
   not a one-hot vector). Images are clamped to [-1, 1] before E and before
   every query, as the authors' ``resize_img_gen_shape``.
3. Fine search: differential evolution in W (the authors' ``DE_c2b_5_bin2``)
   through the oracle. The ``top_coarse`` (10) coarse latents the target is
   most confident about are extended to ``popsize`` (32) individuals by
   ``0.7 * (0.5 * (0.5 (x1 + x2) + x3)) + 0.3 * w_r`` (x_i random distinct
   members, w_r the mean of three random mapped w); every generation each
   individual x_i gets the mutant ``x_i + best_weight (0.02) (x_best - x_i)
   + beta sum_{k=1..nv} (x_a - x_b)`` (``nv`` 4 random pairs, ``beta`` 0.1,
   decaying linearly as 0.1 (G - g) / 50 over the last 30 of ``generations``
   (500)), a binomial crossover with the parent (each dimension from the
   mutant with probability ``crossover`` 0.5), and replaces the parent when
   its fitness is higher. Parents are queried again every generation (the
   authors' ``cal_fitness(self.pop)``), so under a stochastic output defense
   (``noise``) a lucky answer is not kept. Fitness is the target's probability of y when y
   is among the ``fitness_top_m`` most likely classes, else minus the sum of
   those probabilities (null: all classes, i.e. p_y). The reconstructions are
   the ``per_class`` fittest individuals of the final population.

Deviations: the paper's embedding model is a face-recognition network
trained on another labelled public data set (CASIA-WebFace); our public
split is unlabelled, so E is the StyleGAN prior's discriminator, also
trained on the public split only, and the embedding is its 4x4 features
entering the epilogue (flattened; independent of the batch, unlike the
minibatch-std output), whose width sets ``Inv``'s output. The
reconstructions are the ``per_class`` fittest of the final population by
their last answers (the authors keep the first individuals of the
population). All classes are attacked in one batch (the authors run one
class at a time).

Queries: the inverse network's training set, one ranking query per coarse
latent, and per generation one query per parent and one per mutant; each
class's queries are split evenly over its reconstructions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.data.common import to_model_range
from mibench_core.priors.common import public_subset
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "c2fmi",
        "kind": "attack",
        "call": "run_attack",
        "description": "C2FMI (Ye et al. 2023): inverse network to an embedding space, coarse inversion, then "
        "differential evolution in W through the oracle",
        "defaults": {
            "per_class": 8,
            "inverse_samples": None,
            "inverse_top_k": None,
            "inverse_hidden": 4096,
            "inverse_epochs": 20,
            "inverse_lr": 0.001,
            "inverse_batch_size": 128,
            "coarse_batch": 16,
            "coarse_steps": 20,
            "coarse_lr": 0.02,
            "top_coarse": 10,
            "popsize": 32,
            "generations": 500,
            "nv": 4,
            "beta": 0.1,
            "best_weight": 0.02,
            "crossover": 0.5,
            "fitness_top_m": None,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "inverse_samples": "[1, inf)",
            "inverse_top_k": "[1, inf)",
            "inverse_hidden": "[1, inf)",
            "inverse_epochs": "[1, inf)",
            "inverse_lr": "(0, inf)",
            "inverse_batch_size": "[1, inf)",
            "coarse_batch": "[1, inf)",
            "coarse_steps": "[0, inf)",
            "coarse_lr": "(0, inf)",
            "top_coarse": "[3, inf)",
            "popsize": "[4, inf)",
            "generations": "[0, inf)",
            "nv": "[0, inf)",
            "beta": "[0, inf)",
            "best_weight": "[0, inf)",
            "crossover": "[0, 1]",
            "fitness_top_m": "[1, inf)",
        },
        "priors": ["stylegan", "stylegan2-ada"],
        "access": "probabilities",
    }
]


class InverseNet(nn.Module):
    """Probability vector -> embedding: the authors' ``predict2feature`` (module docstring)."""

    def __init__(self, num_classes: int, out_dim: int, hidden: int, top_k: int | None = None):
        super().__init__()
        self.top_k = num_classes if top_k is None else min(int(top_k), num_classes)
        self.net = nn.Sequential(
            nn.Linear(num_classes, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.25),
            nn.Linear(hidden, out_dim),
        )

    def encode(self, p: torch.Tensor) -> torch.Tensor:
        """Top-k probabilities -> max(log p, -1000) + 50, shifted to >= 0, scattered back, L2-normalised."""
        top, idx = p.topk(self.top_k, dim=1)
        top = top.log().clamp(min=-1000.0) + 50.0
        top = top + F.relu(-top.min(1, keepdim=True).values)
        return F.normalize(torch.zeros_like(p).scatter(1, idx, top), dim=1)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.net(self.encode(p))


def coarse_prediction(labels: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """The authors' coarse-stage input: |N(0, 1)| per class, 1e18 at the label, L2-normalised."""
    pred = torch.randn(len(labels), num_classes, generator=gen).abs().to(labels.device)
    pred[torch.arange(len(labels), device=labels.device), labels] = 1e18
    return F.normalize(pred, dim=1)


def train_inverse(
    ctx: AttackContext,
    embed,
    samples: int | None,
    top_k: int | None,
    hidden: int,
    epochs: int,
    lr: float,
    batch_size: int,
) -> tuple[InverseNet, dict]:
    """Fit Inv(oracle(x)) ~ E(x) on public images (each image one shared query)."""
    public = public_subset(ctx.public_images(), samples, ctx.gen)
    probs, feats = [], []
    with torch.no_grad():
        for i in range(0, len(public), 512):
            x = to_model_range(public[i : i + 512]).to(ctx.device)
            probs.append(ctx.oracle(x))
            feats.append(embed(x))
    probs, feats = torch.cat(probs), torch.cat(feats)
    inv = InverseNet(probs.shape[1], feats.shape[1], hidden, top_k).to(ctx.device).train()
    opt = torch.optim.Adam(inv.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.8)
    losses = []
    for _ in progress(range(epochs), desc="c2fmi inverse", unit="epoch"):
        perm = torch.randperm(len(probs), generator=ctx.gen).to(ctx.device)
        total = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.mse_loss(inv(probs[idx]), feats[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        losses.append(total / len(perm))
    return inv.eval(), {"inverse_train_mse": losses[-1] if losses else None, "inverse_samples": len(public)}


def de_fitness(probs: torch.Tensor, y: torch.Tensor, top_m: int | None) -> torch.Tensor:
    """p_y if y is among the top-m classes, else -sum(top-m probabilities) (top_m None: all classes)."""
    py = probs.gather(1, y[:, None]).squeeze(1)
    if top_m is None or top_m >= probs.shape[1]:
        return py
    top = probs.topk(top_m, dim=1)
    inside = (top.indices == y[:, None]).any(1)
    return torch.where(inside, py, -top.values.sum(1))


def extend_population(x: torch.Tensor, size: int, rand_w, gen: torch.Generator) -> torch.Tensor:
    """The authors' extension of the coarse latents [n, d] to ``size`` individuals."""
    n = len(x)
    extra = []
    for _ in range(size - n):
        idx = torch.randperm(n, generator=gen)[:3]
        u = 0.5 * (0.5 * (x[idx[0]] + x[idx[1]]) + x[idx[2]])
        extra.append(0.7 * u + 0.3 * rand_w())
    return torch.cat([x, torch.stack(extra)]) if extra else x[:size]


def de_mutants(
    pop: torch.Tensor,
    best: torch.Tensor,
    beta: float,
    nv: int,
    best_weight: float,
    crossover: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """current-to-best mutants with ``nv`` difference vectors, then binomial crossover with the parents.

    ``pop`` [R, P, d] (R independent populations), ``best`` [R, d]."""
    r, p, d = pop.shape
    mutant = pop + best_weight * (best[:, None] - pop)
    pairs = torch.randint(0, p, (r, p, nv, 2), generator=gen).to(pop.device)
    ridx = torch.arange(r, device=pop.device)[:, None, None]
    mutant = mutant + beta * (pop[ridx, pairs[..., 0]] - pop[ridx, pairs[..., 1]]).sum(2)
    take = torch.rand(r, p, d, generator=gen).to(pop.device) > crossover  # the authors: child if rand > pr
    return torch.where(take, mutant, pop)


def run_attack(
    ctx: AttackContext,
    per_class: int,
    inverse_samples: int | None,
    inverse_top_k: int | None,
    inverse_hidden: int,
    inverse_epochs: int,
    inverse_lr: float,
    inverse_batch_size: int,
    coarse_batch: int,
    coarse_steps: int,
    coarse_lr: float,
    top_coarse: int,
    popsize: int,
    generations: int,
    nv: int,
    beta: float,
    best_weight: float,
    crossover: float,
    fitness_top_m: int | None,
) -> AttackResult:
    prior, oracle = ctx.prior, ctx.oracle
    if prior.discriminator is None:
        raise ValueError("C2FMI needs the prior's discriminator as its embedding model; this prior has none")
    if not per_class <= popsize or not top_coarse <= coarse_batch or top_coarse > popsize:
        raise ValueError("C2FMI needs per_class <= popsize and top_coarse <= min(coarse_batch, popsize)")
    D = prior.discriminator
    n_cls, dev = len(ctx.classes), ctx.device

    def images(w):  # valid images: clamped after resizing (the authors' resize_img_gen_shape)
        return prior.images(w, ctx.resolution, ctx.channels).clamp(-1, 1)

    def embed(x):  # E on target-sized images: back to the generator's resolution and channels
        g = prior.synthesis.img_resolution
        x = F.interpolate(x, size=(g, g), mode="bilinear", align_corners=False) if x.shape[-1] != g else x
        if x.shape[1] != prior.generator.img_channels:
            x = x.mean(1, keepdim=True).repeat(1, prior.generator.img_channels, 1, 1)
        return D.features(x)

    # 1. inverse network
    inv, info = train_inverse(
        ctx, embed, inverse_samples, inverse_top_k, inverse_hidden, inverse_epochs, inverse_lr, inverse_batch_size
    )

    # 2. coarse inversion (the attacker's own E and G), all classes in one batch
    def mean_of_random_w(k: int, n: int) -> torch.Tensor:
        return prior.sample_ws(k * n, ctx.gen, dev)[:, 0].view(n, k, -1).mean(1)

    y_coarse = torch.tensor(ctx.classes, device=dev).repeat_interleave(coarse_batch)
    w = mean_of_random_w(2, len(y_coarse)).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=coarse_lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.95)
    for _ in progress(range(coarse_steps), desc="c2fmi coarse", unit="step"):
        with torch.no_grad():
            goal = inv(coarse_prediction(y_coarse, ctx.num_classes, ctx.gen))
        loss = F.mse_loss(embed(images(w)), goal)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    w = w.detach()
    info["coarse_mse"] = loss.item() if coarse_steps else None

    # 3. differential evolution through the oracle, one population per class
    slot_of = torch.arange(n_cls * per_class).view(n_cls, per_class)

    @torch.no_grad()
    def fitness(pop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pop [C, P, d] -> (fitness, target's top-1 is y) [C, P]; each query counts for one of the class's slots."""
        c, p, d = pop.shape
        slots = slot_of[:, torch.arange(p) % per_class].reshape(-1)
        flat = pop.reshape(-1, d)
        probs = torch.cat(
            [oracle(images(flat[i : i + 500]), slots=slots[i : i + 500]) for i in range(0, len(flat), 500)]
        )
        y = torch.tensor(ctx.classes, device=dev).repeat_interleave(p)
        return de_fitness(probs, y, fitness_top_m).view(c, p), (probs.argmax(1) == y).view(c, p)

    coarse_fit, _ = fitness(w.view(n_cls, coarse_batch, -1))
    pops = []
    for c in range(n_cls):
        top = w.view(n_cls, coarse_batch, -1)[c][coarse_fit[c].topk(top_coarse).indices]
        pops.append(extend_population(top, popsize, lambda: mean_of_random_w(3, 1)[0], ctx.gen))
    pop = torch.stack(pops)
    history = []
    for g in progress(range(generations), desc="c2fmi DE", unit="gen"):
        b = beta if g < generations - 30 else beta * (generations - g) / 50
        fit, top1 = fitness(pop)  # the parents, queried again every generation
        best = pop[torch.arange(n_cls), fit.argmax(1)]
        children = de_mutants(pop, best, b, nv, best_weight, crossover, ctx.gen)
        child_fit, child_top1 = fitness(children)
        better = child_fit > fit
        pop = torch.where(better[..., None], children, pop)
        fit, top1 = torch.where(better, child_fit, fit), torch.where(better, child_top1, top1)
        history.append(fit.max(1).values.mean().item())
    if not generations:
        fit, top1 = fitness(pop)
    order = fit.argsort(dim=1, descending=True)[:, :per_class]
    final = pop[torch.arange(n_cls)[:, None], order].reshape(n_cls * per_class, -1)
    with torch.no_grad():
        out = images(final)
    labels = torch.tensor(ctx.classes).repeat_interleave(per_class)
    final_fit = fit.gather(1, order).reshape(-1).cpu()
    info.update(
        {
            "target_success": top1.gather(1, order).float().mean().item(),
            "target_confidence_mean": final_fit.clamp_min(0).mean().item(),
            "best_fitness_history": history[:: max(1, len(history) // 20)],
            "queries_shared": oracle.shared_queries,
        }
    )
    extras = {"latents": final.cpu(), "fitness": final_fit, "queries": oracle.per_reconstruction(len(labels))}
    return AttackResult(out.cpu(), labels, extras, info)
