"""Mirror (An et al., "MIRROR: Model Inversion for Deep Learning Network with
High Fidelity", NDSS 2022): white-box and black-box inversion in a StyleGAN's
W space with P-space clipping.

P space is the mapping network's last pre-activation (w = sqrt(2) *
LeakyReLU_0.2(p)); its per-dimension mean and standard deviation come with
the prior (10,000 mapped z). Clipping w to "mean +- ``p_std`` std in P"
means p = P(w), clamp, w = P^-1(p).

The generator, as the authors' wrapper (``genforce/my_get_GD.py``,
``fake_generator``, in njuaplusplus/mirror and the
ffhibnese/Model-Inversion-Attack-ToolBox copy): every image the search
makes, scores or returns is G(w') clamped to the valid pixel range, where
w' is w broadcast to the style inputs with the first ``truncation_layers``
(8) truncated towards the mean w with ``truncation_psi`` (0.7) (genforce's
``truncation(w, trunc_psi, trunc_layers)`` inside every forward; their
``postprocess`` clamps to [0, 1], ours to [-1, 1]; constant noise, their
``randomize_noise=False``). The search variable, its P-space clipping and
the stored latents are the untruncated w.

White-box (``mirror-wb``), as the authors' ``my_mirror.py``:

* start: sample ``init_samples`` w, keep per class the ``per_class`` (8)
  whose images the target is most confident about;
* ``iterations`` (20,000) steps of Adam (``lr`` 0.2, betas (0.9, 0.999))
  with the authors' schedule (cosine ramp-down over the last 25%, linear
  ramp-up over the first 5%), loss ``loss_weight`` (1) x cross-entropy of
  the target on the image, flipped horizontally with probability 0.5 per
  step (``flip``); after each step w is clipped in P space;
* the reconstruction is each latent's iterate with the lowest loss.

Black-box (``mirror-bb``), as the authors' ``my_ge_blackbox_attack.py``: a
genetic algorithm through the query-counting oracle (probabilities), on
the same clamped, truncated images. Fitness is the log-probability of the
target class. The initial population is the ``population`` (100) best of
``init_samples`` random w (clipped in P space); each generation keeps the
elite (the fittest), draws ``population - 1`` pairs of parents with
probabilities softmax(fitness), crosses them over per dimension (each
dimension from the first parent with probability c1 / (c1 + c2)), mutates
each dimension with probability ``mutation_prob`` (0.1) by adding
``mutation_ce`` (0.1) x U(-std, std) in P space, and clips in P space; the
new population, elite included, is queried (the authors re-score the whole
population every generation), so under a stochastic output defense
(``noise``) a lucky answer is drawn again rather than kept. It stops after
``generations`` (100) or when the elite's confidence reaches ``min_score``
(0.95); as in the authors' code one answer at ``min_score`` stops a run,
even a lucky one under ``noise`` (``target_success`` is a new query). The
elite is the reconstruction.

Deviations and choices:

* the crossover ratio uses the confidences c = exp(fitness): with the
  authors' log-probability fitness in f1 / (f1 + f2) the less fit parent
  would give more genes (both are negative), the opposite of the paper's
  intent;
* mutation noise is drawn per child (the authors' code draws one noise
  vector per generation and masks it per child);
* several reconstructions per class (``per_class``): white-box, every latent
  is optimised independently and keeps its own best iterate (the authors
  keep the batch's best iteration); black-box, ``per_class`` independent
  GA runs per class, run r starting from the initial ranks r, r + R, ...
  (R runs) of the shared initial sample, so runs start from different but
  equally good populations;
* the attack optimises one w broadcast to every style input (the authors'
  ``repeat_w``), truncated inside the generator as above.

Queries (black-box): the initial sample (shared by all runs), ``population``
queries per generation (the elite and its children, counted per run), and
one final query per elite for ``target_success``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.attacks.summary import summarise
from mibench_core.priors.stylegan import p_to_w, w_to_p
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "mirror-wb",
        "kind": "attack",
        "call": "run_whitebox",
        "description": "Mirror (An et al. 2022), white-box: W-space Adam on cross-entropy with P-space clipping",
        "defaults": {
            "per_class": 8,
            "init_samples": 100000,
            "truncation_psi": 0.7,
            "truncation_layers": 8,
            "iterations": 20000,
            "lr": 0.2,
            "beta1": 0.9,
            "beta2": 0.999,
            "lr_rampup": 0.05,
            "lr_rampdown": 0.25,
            "loss_weight": 1.0,
            "p_std": 1.0,
            "flip": True,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "init_samples": "[1, inf)",
            "truncation_psi": "[0, 1]",
            "truncation_layers": "[0, inf)",
            "iterations": "[1, inf)",
            "lr": "(0, inf)",
            "beta1": "[0, 1)",
            "beta2": "[0, 1)",
            "lr_rampup": "[0, 1]",
            "lr_rampdown": "[0, 1]",
            "loss_weight": "(0, inf)",
            "p_std": "(0, inf)",
        },
        "priors": ["stylegan", "stylegan2-ada"],
        "access": "white-box",
    },
    {
        "name": "mirror-bb",
        "kind": "attack",
        "call": "run_blackbox",
        "description": "Mirror (An et al. 2022), black-box: genetic algorithm in W with P-space clipping and "
        "elitism, through the oracle",
        "defaults": {
            "per_class": 1,
            "init_samples": 100000,
            "truncation_psi": 0.7,
            "truncation_layers": 8,
            "population": 100,
            "generations": 100,
            "mutation_prob": 0.1,
            "mutation_ce": 0.1,
            "p_std": 1.0,
            "min_score": 0.95,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "init_samples": "[1, inf)",
            "truncation_psi": "[0, 1]",
            "truncation_layers": "[0, inf)",
            "population": "[2, inf)",
            "generations": "[0, inf)",
            "mutation_prob": "[0, 1]",
            "mutation_ce": "[0, inf)",
            "p_std": "(0, inf)",
            "min_score": "(0, 1]",
        },
        "priors": ["stylegan", "stylegan2-ada"],
        "access": "probabilities",
    },
]


def lr_schedule(t: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """The authors' factor at progress t in [0, 1]: cosine ramp-down and linear ramp-up."""
    ramp = min(1.0, (1 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return ramp * (min(1.0, t / rampup) if rampup > 0 else 1.0)


def random_w(ctx: AttackContext, n: int, batch: int = 4096) -> torch.Tensor:
    """``n`` single w [n, w_dim] (mapped z, untruncated: the generator truncates)."""
    return ctx.prior.sample_ws(n, ctx.gen, ctx.device, 1.0, None, batch)[:, 0]


def generate(prior, w: torch.Tensor, psi: float, layers: int, resolution: int, channels: int) -> torch.Tensor:
    """The authors' generator: G(w with its first ``layers`` style inputs truncated by ``psi``), clamped to
    [-1, 1], then adapted to the target's input (differentiable in w)."""
    img = prior.synthesis(prior.truncate(w, psi, layers), "const").clamp(-1, 1)
    return prior.adapt(img, resolution, channels)


@torch.no_grad()
def score_samples(images_fn, w: torch.Tensor, score_fn, batch: int = 500) -> torch.Tensor:
    """The target's answer for every w (images_fn(w) -> images; score_fn(images) -> [n, K])."""
    return torch.cat([score_fn(images_fn(w[i : i + batch])) for i in range(0, len(w), batch)])


def run_whitebox(
    ctx: AttackContext,
    per_class: int,
    init_samples: int,
    truncation_psi: float,
    truncation_layers: int,
    iterations: int,
    lr: float,
    beta1: float,
    beta2: float,
    lr_rampup: float,
    lr_rampdown: float,
    loss_weight: float,
    p_std: float,
    flip: bool,
) -> AttackResult:
    prior, T = ctx.prior, ctx.target

    def images(w):
        return generate(prior, w, truncation_psi, truncation_layers, ctx.resolution, ctx.channels)

    pool = random_w(ctx, init_samples)
    probs = score_samples(images, pool, lambda x: T(x).softmax(1))
    w0, labels = [], []
    for c in ctx.classes:
        w0.append(pool[probs[:, c].topk(per_class).indices])
        labels += [c] * per_class
    y = torch.tensor(labels, device=ctx.device)
    w = prior.clip_w(torch.cat(w0), p_std).clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, betas=(beta1, beta2), eps=1e-8)
    best_w, best_loss = w.detach().clone(), torch.full((len(w),), float("inf"), device=ctx.device)

    def keep_best(loss: torch.Tensor, current: torch.Tensor) -> None:
        better = loss < best_loss
        best_loss.copy_(torch.where(better, loss, best_loss))
        best_w[better] = current[better]

    bar = progress(range(1, iterations + 1), desc="mirror-wb", unit="it")
    for it in bar:
        for group in opt.param_groups:
            group["lr"] = lr * lr_schedule(it / iterations, lr_rampdown, lr_rampup)
        x = images(w)
        if flip and torch.rand([], generator=ctx.gen).item() > 0.5:
            x = x.flip(-1)
        per_latent = loss_weight * F.cross_entropy(T(x), y, reduction="none")
        keep_best(per_latent.detach(), w.detach())  # the loss of the iterate it was computed on
        opt.zero_grad(set_to_none=True)
        per_latent.mean().backward()
        opt.step()
        with torch.no_grad():
            w.copy_(prior.clip_w(w, p_std))
        if it % 100 == 0:
            bar.set_postfix(loss=f"{per_latent.mean().item():.3f}")
    with torch.no_grad():
        keep_best(loss_weight * F.cross_entropy(T(images(w)), y, reduction="none"), w.detach())
        out = images(best_w)
    info, extras = summarise(ctx, out, y.cpu())
    info["best_loss_mean"] = best_loss.mean().item()
    return AttackResult(out.cpu(), y.cpu(), {"latents": best_w.cpu(), **extras}, info)


# ------------------------------------------------------------------ black-box: the genetic algorithm


def select_parents(fitness: torch.Tensor, k: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices [R, k] of two parent sets drawn with probabilities softmax(fitness) per run (with replacement)."""
    probs = F.softmax(fitness, dim=1)
    idx = torch.multinomial(probs.cpu(), 2 * k, replacement=True, generator=gen).to(fitness.device)
    return idx[:, :k], idx[:, k:]


def crossover(
    pop: torch.Tensor, fitness: torch.Tensor, i1: torch.Tensor, i2: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Per dimension from parent 1 with probability c1 / (c1 + c2), c = exp(fitness) (confidence)."""
    p1 = torch.gather(pop, 1, i1[..., None].expand(-1, -1, pop.shape[-1]))
    p2 = torch.gather(pop, 1, i2[..., None].expand(-1, -1, pop.shape[-1]))
    c1, c2 = fitness.gather(1, i1).exp(), fitness.gather(1, i2).exp()
    ratio = (c1 / (c1 + c2).clamp_min(1e-30)).unsqueeze(-1)
    mask = (torch.rand(p1.shape, generator=gen).to(pop.device) < ratio).to(pop.dtype)
    return mask * p1 + (1 - mask) * p2


def mutate(prior, children: torch.Tensor, prob: float, ce: float, p_std: float, gen: torch.Generator):
    """Add ce * U(-std, std) in P space to a random ``prob`` of the dimensions, then clip in P space."""
    std = prior.p_std.to(children.device)
    mask = (torch.rand(children.shape, generator=gen).to(children.device) < prob).to(children.dtype)
    noise = ce * (2 * torch.rand(children.shape, generator=gen).to(children.device) - 1) * std
    return prior.clip_w(p_to_w(w_to_p(children) + mask * noise), p_std)


def genetic_algorithm(
    prior,
    pop: torch.Tensor,
    fitness: torch.Tensor,
    fitness_fn,
    generations: int,
    mutation_prob: float,
    mutation_ce: float,
    p_std: float,
    min_score: float,
    gen: torch.Generator,
    history: list | None = None,
):
    """Mirror's GA on R independent populations ``pop`` [R, P, d] with fitness [R, P] (log p_y).

    ``fitness_fn(w [M, d], runs [M])`` -> fitness [M] of individuals of those runs. Every generation
    scores the whole new population, the elite included, so a noisy score is never kept.
    Returns the elites [R, d], their fitness [R] and the generations each run took."""
    n_runs, size, d = pop.shape
    order = fitness.argsort(dim=1, descending=True)
    pop, fitness = torch.gather(pop, 1, order[..., None].expand(-1, -1, d)), fitness.gather(1, order)
    active = fitness[:, 0] < math.log(min_score)
    gens = torch.zeros(n_runs, dtype=torch.long)
    bar = progress(range(generations), desc="mirror-bb", unit="gen")
    for _ in bar:
        if not active.any():
            break
        act = torch.nonzero(active).flatten()
        i1, i2 = select_parents(fitness[act], size - 1, gen)
        children = crossover(pop[act], fitness[act], i1, i2, gen)
        children = mutate(prior, children, mutation_prob, mutation_ce, p_std, gen)
        new_pop = torch.cat([pop[act, :1], children], dim=1)  # elitism: the elite stays, and is scored again
        runs = act.repeat_interleave(size)
        new_fit = fitness_fn(new_pop.reshape(-1, d), runs).view(len(act), size)
        order = new_fit.argsort(dim=1, descending=True)
        pop[act] = torch.gather(new_pop, 1, order[..., None].expand(-1, -1, d))
        fitness[act] = new_fit.gather(1, order)
        gens[act.cpu()] += 1
        if history is not None:
            history.append(fitness[:, 0].clone())
        active = active & (fitness[:, 0] < math.log(min_score))
        bar.set_postfix(best=f"{fitness[:, 0].exp().mean().item():.3f}", active=int(active.sum()))
    return pop[:, 0], fitness[:, 0], gens


def log_probs(answer: torch.Tensor) -> torch.Tensor:
    """log of the oracle's probabilities (zeroed entries floored at 1e-30, never -inf)."""
    return answer.clamp_min(1e-30).log()


def run_blackbox(
    ctx: AttackContext,
    per_class: int,
    init_samples: int,
    truncation_psi: float,
    truncation_layers: int,
    population: int,
    generations: int,
    mutation_prob: float,
    mutation_ce: float,
    p_std: float,
    min_score: float,
) -> AttackResult:
    prior, oracle = ctx.prior, ctx.oracle
    n_runs = len(ctx.classes) * per_class
    if per_class * population > init_samples:
        raise ValueError(
            f"init_samples ({init_samples}) must be at least per_class * population ({per_class * population})"
        )

    def images(w):
        return generate(prior, w, truncation_psi, truncation_layers, ctx.resolution, ctx.channels)

    pool = prior.clip_w(random_w(ctx, init_samples), p_std)
    answers = score_samples(images, pool, lambda x: oracle(x))  # shared queries
    labels = torch.tensor(ctx.classes, device=ctx.device).repeat_interleave(per_class)  # run r -> class
    pops, fits = [], []
    for c in ctx.classes:
        lp = log_probs(answers[:, c])
        ranked = lp.topk(per_class * population).indices
        for r in range(per_class):
            pick = ranked[r::per_class]
            pops.append(pool[pick])
            fits.append(lp[pick])
    pop, fitness = torch.stack(pops), torch.stack(fits)

    @torch.no_grad()
    def fitness_fn(w: torch.Tensor, runs: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, len(w), 500):
            ans = oracle(images(w[i : i + 500]), slots=runs[i : i + 500])
            out.append(log_probs(ans.gather(1, labels[runs[i : i + 500]][:, None]).squeeze(1)))
        return torch.cat(out)

    elite, elite_fit, gens = genetic_algorithm(
        prior, pop, fitness, fitness_fn, generations, mutation_prob, mutation_ce, p_std, min_score, ctx.gen
    )
    with torch.no_grad():
        out = images(elite)
        # one final query per elite: is the target class its top-1? (counted)
        top1 = oracle(out, slots=torch.arange(n_runs)).argmax(1) == labels
    conf = elite_fit.exp().cpu()
    info = {
        "target_success": top1.float().mean().item(),
        "target_confidence_mean": conf.mean().item(),
        "reached_min_score": int((conf >= min_score).sum()),
        "generations_mean": gens.float().mean().item(),
        "queries_shared": oracle.shared_queries,
    }
    extras = {
        "latents": elite.cpu(),
        "target_confidence": conf,
        "generations": gens,
        "queries": oracle.per_reconstruction(n_runs),
    }
    return AttackResult(out.cpu(), labels.cpu(), extras, info)
