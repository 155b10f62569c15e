"""The attacks that search a StyleGAN's spaces: PPA's Poincaré loss and transforms, IF-GMI's L1-ball
projection, Mirror's genetic algorithm, C2FMI's differential evolution, VMI's flow posterior, and each
attack end to end through the attack stage on tiny data."""

from __future__ import annotations

import math

import pytest
import torch

from mibench_core import registry, store
from mibench_core.attacks import c2fmi, ifgmi, mirror, ppa, vmi
from mibench_core.attacks.common import load_reconstructions
from mibench_core.priors import stylegan
from mibench_core.priors.stylegan import Generator, StyleGANPrior

# ------------------------------------------------------------------ PPA


def test_poincare_loss_hand_value():
    # logits (2, -1, 1), class 0: u = logits / ||logits||_1 = (0.5, -0.25, 0.25), ||u||^2 = 0.375;
    # v = (1 - 1e-4, 0, 0), ||v||^2 = 0.99980001; ||u - v||^2 = 0.4999^2 + 0.0625 + 0.0625 = 0.37490001;
    # delta = 2 * 0.37490001 / (0.625 * 0.00019999) = 5998.7001; loss = arccosh(1 + delta)
    loss = ppa.poincare_loss(torch.tensor([[2.0, -1.0, 1.0]], dtype=torch.float64), torch.tensor([0]))
    delta = 2 * 0.37490001 / (0.625 * (1 - 0.99980001))
    assert delta == pytest.approx(5998.7001, rel=1e-7)
    assert loss.item() == pytest.approx(math.acosh(1 + delta), rel=1e-9)
    assert loss.item() == pytest.approx(9.39262, abs=1e-4)
    # a perfect prediction is closer than a wrong one, for either sign of the logits
    good, bad = ppa.poincare_loss(torch.tensor([[5.0, -1.0, -1.0], [-1.0, 5.0, -1.0]]), torch.tensor([0, 0]))
    assert good < bad


def test_resized_crop_box_respects_scale_and_ratio():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = ppa.resized_crop_box(32, 32, (0.5, 0.9), (0.8, 1.2), gen)
        assert 0 <= top <= 32 - h and 0 <= left <= 32 - w
        assert 0.5 * 1024 * 0.8 <= h * w <= 0.9 * 1024 * 1.15 and 0.7 <= w / h <= 1.3
    x = torch.randn(2, 1, 32, 32, requires_grad=True)
    y = ppa.attack_transform(x, (0.9, 1.0), gen)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable


def test_lr_milestones_are_fractions_of_the_iterations():
    assert [ppa.lr_factor(i, 50, [0.6, 0.8]) for i in (0, 29, 30, 39, 40, 49)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )


# ------------------------------------------------------------------ IF-GMI: projection onto the L1 ball


def _bisection_projection(v: torch.Tensor, radius: float) -> torch.Tensor:
    """Independent reference: soft-threshold with the theta that makes the l1 norm equal the radius."""
    if v.abs().sum() <= radius:
        return v.clone()
    lo, hi = 0.0, v.abs().max().item()
    for _ in range(200):
        mid = (lo + hi) / 2
        if (v.abs() - mid).clamp_min(0).sum() > radius:
            lo = mid
        else:
            hi = mid
    return v.sign() * (v.abs() - hi).clamp_min(0)


def test_l1_ball_projection_known_cases_and_against_bisection():
    x = torch.tensor([[3.0, 1.0], [1.0, 1.0], [0.2, -0.3], [-2.0, 0.0]], dtype=torch.float64)
    out = ifgmi.project_l1_ball(x, 1.0)
    expected = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.2, -0.3], [-1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(out, expected)
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(16, 3, 5, 5, generator=gen, dtype=torch.float64) * 2
    proj = ifgmi.project_l1_ball(v, 7.5)
    assert proj.shape == v.shape
    for a, b in zip(proj.flatten(1), v.flatten(1)):
        assert torch.allclose(a, _bisection_projection(b, 7.5), atol=1e-9)
        assert a.abs().sum().item() == pytest.approx(7.5)
    # the projection is the closest point of the ball: no random point of the ball is closer
    ball = ifgmi.project_l1_ball(torch.randn(2000, 75, generator=gen, dtype=torch.float64) * 3, 7.5)
    d_proj = (proj.flatten(1)[0] - v.flatten(1)[0]).norm()
    assert ((ball - v.flatten(1)[0]).norm(dim=1) >= d_proj - 1e-9).all()
    with pytest.raises(ValueError, match="radius"):
        ifgmi.project_l1_ball(v, 0.0)


def test_ifgmi_defaults_are_the_authors_main_configs():
    d = registry.get("attack", "if-gmi").defaults
    # final-solution/IF-GMI configs/ffhq_facescrub/main-*.yaml
    assert d["steps"] == [50, 10, 10, 10, 10, 10, 10, 10]
    radii = [1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 8000.0, 8000.0]
    assert d["radius_features"] == radii and d["radius_w"] == radii
    assert (d["candidates"], d["search_space"], d["per_class"], d["batch_size"]) == (50, 2000, 50, 5)


def test_ifgmi_runs_ppas_selection_code(tiny, monkeypatch):
    from whitebox_tiny import run_attack_job

    root, data, target, priors = tiny
    calls = []
    real_initial, real_final = ppa.initial_selection, ppa.select_final

    def initial(*a, **k):
        calls.append("initial")
        return real_initial(*a, **k)

    def final(*a, **k):
        calls.append("final")
        return real_final(*a, **k)

    monkeypatch.setattr(ppa, "initial_selection", initial)
    monkeypatch.setattr(ppa, "select_final", final)
    params = dict(WHITE_BOX[2][2])
    run_attack_job(root / "if-gmi-ppa", "if-gmi", data, target, priors["stylegan"], per_class=2, **params)
    assert calls == ["initial", "final"]


# ------------------------------------------------------------------ Mirror's genetic algorithm


def _box_prior(dim: int = 6) -> StyleGANPrior:
    g = Generator(z_dim=dim, w_dim=dim, img_resolution=8, img_channels=1, mapping_layers=1, channel_base=32,
                  channel_max=8)  # fmt: skip
    return StyleGANPrior(g, None, torch.zeros(dim), torch.ones(dim))


def test_lr_schedule_ramps_up_and_down():
    assert mirror.lr_schedule(0.0) == 0.0 and mirror.lr_schedule(0.05) == pytest.approx(1.0)
    assert mirror.lr_schedule(0.5) == pytest.approx(1.0) and mirror.lr_schedule(1.0) == pytest.approx(0.0)
    assert mirror.lr_schedule(0.875) == pytest.approx(0.5)  # half way down the cosine


def test_genetic_algorithm_keeps_the_best_fitness_non_decreasing():
    prior, gen = _box_prior(), torch.Generator().manual_seed(0)
    target = torch.tensor([0.5, -0.3, 0.2, 0.0, 0.4, -0.1])

    def fitness_fn(w, runs):  # a log-probability-like fitness, best (0) at the target
        return -(w - target).square().sum(1) - 0.01

    pop = prior.clip_w(torch.randn(3, 20, 6, generator=gen))
    fit = fitness_fn(pop.view(-1, 6), None).view(3, 20)
    history = []
    elite, elite_fit, gens = mirror.genetic_algorithm(prior, pop, fit, fitness_fn, 40, 0.1, 0.1, 1.0, 0.999, gen,
                                                      history)  # fmt: skip
    best = torch.stack(history)  # [generations, runs]
    assert (best[1:] >= best[:-1]).all()  # elitism: never worse
    assert (best[-1] > fit.max(1).values).all()  # and it improved
    assert torch.allclose(elite_fit, fitness_fn(elite, None)) and (gens == 40).all()
    lo, hi = prior.p_bounds(1.0)
    p = stylegan.w_to_p(elite)
    assert (p >= lo - 1e-5).all() and (p <= hi + 1e-5).all()  # P-space clipping
    # early stop at the score: a run already at the threshold does not run
    _, _, gens = mirror.genetic_algorithm(prior, pop, torch.zeros(3, 20), fitness_fn, 40, 0.1, 0.1, 1.0, 0.5, gen)
    assert (gens == 0).all()


def test_genetic_algorithm_scores_the_elite_again_every_generation():
    # a noisy oracle: one lucky answer for an individual, every later answer its true 0.1
    prior, gen = _box_prior(), torch.Generator().manual_seed(0)

    def noisy(lucky):
        calls = []

        def fitness_fn(w, runs):
            calls.append(len(w))
            out = torch.full((len(w),), math.log(0.1))
            if len(calls) == 1:
                out[-1] = math.log(lucky)  # a child's lucky draw makes it the elite
            return out

        return fitness_fn, calls

    pop = prior.clip_w(torch.randn(1, 5, 6, generator=gen))
    fit0 = torch.full((1, 5), math.log(0.1))
    fitness_fn, calls = noisy(0.5)
    _, elite_fit, gens = mirror.genetic_algorithm(prior, pop.clone(), fit0.clone(), fitness_fn, 4, 0.1, 0.1, 1.0,
                                                  0.95, gen)  # fmt: skip
    # the lucky elite is scored again in the next generation: its 0.5 is not kept
    assert gens.tolist() == [4] and calls == [5, 5, 5, 5]  # the whole population, elite included
    assert elite_fit.item() == pytest.approx(math.log(0.1))
    # as in the authors' code, a single answer at min_score stops the run (the final check is a new query)
    fitness_fn, calls = noisy(0.99)
    _, elite_fit, gens = mirror.genetic_algorithm(prior, pop.clone(), fit0.clone(), fitness_fn, 4, 0.1, 0.1, 1.0,
                                                  0.95, gen)  # fmt: skip
    assert gens.tolist() == [1] and calls == [5] and elite_fit.item() == pytest.approx(math.log(0.99))


def test_mirror_generator_truncates_the_first_layers_and_clamps():
    torch.manual_seed(0)
    prior = _box_prior()
    prior.mapping.w_avg.copy_(torch.linspace(-1, 1, 6))
    w = torch.randn(3, 6) * 3
    psi, layers = 0.7, 2
    num_ws = prior.num_ws
    assert num_ws > layers
    ws = w[:, None].repeat(1, num_ws, 1)
    ws[:, :layers] = prior.mapping.w_avg + psi * (w[:, None] - prior.mapping.w_avg)  # genforce's truncation
    with torch.no_grad():
        for p in prior.synthesis.parameters():
            p.mul_(5.0)  # outputs well outside [-1, 1]
        raw = prior.synthesis(ws, "const")
        expected = prior.adapt(raw.clamp(-1, 1), 8, 1)
        got = mirror.generate(prior, w, psi, layers, 8, 1)
    assert raw.abs().max() > 1.0
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, prior.images(w, 8, 1).clamp(-1, 1), atol=1e-3)  # not G(w) itself


def test_crossover_takes_more_genes_from_the_fitter_parent():
    gen = torch.Generator().manual_seed(0)
    pop = torch.stack([torch.zeros(4000), torch.ones(4000)]).unsqueeze(0)  # run 0: parent 0 zeros, parent 1 ones
    fitness = torch.tensor([[math.log(0.9), math.log(0.1)]])
    child = mirror.crossover(pop, fitness, torch.tensor([[0]]), torch.tensor([[1]]), gen)
    assert (child == 0).float().mean().item() == pytest.approx(0.9, abs=0.03)  # c1 / (c1 + c2) = 0.9
    parents = torch.cat(mirror.select_parents(torch.tensor([[0.0, math.log(3.0)]]), 4000, gen), 1)
    assert (parents == 1).float().mean().item() == pytest.approx(0.75, abs=0.03)  # softmax(log p) = p / sum p


# ------------------------------------------------------------------ C2FMI's differential evolution


def test_de_fitness_and_mutants():
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    y = torch.tensor([1, 0])
    assert torch.allclose(c2fmi.de_fitness(probs, y, None), torch.tensor([0.3, 0.2]))
    assert torch.allclose(c2fmi.de_fitness(probs, y, 1), torch.tensor([-0.6, -0.5]))  # y outside the top-1
    assert torch.allclose(c2fmi.de_fitness(probs, y, 2), torch.tensor([0.3, -0.8]))
    gen = torch.Generator().manual_seed(0)
    pop = torch.randn(2, 8, 5, generator=gen)
    same = c2fmi.de_mutants(pop, pop[:, 0], 0.0, 4, 0.0, 0.5, gen)
    assert torch.equal(same, pop)  # no difference vectors, no pull to the best: the parents
    best = torch.zeros(2, 5)
    pulled = c2fmi.de_mutants(pop, best, 0.0, 4, 0.5, 0.0, gen)  # crossover 0: always the mutant
    assert torch.allclose(pulled, 0.5 * pop)
    grown = c2fmi.extend_population(pop[0, :3], 8, lambda: torch.zeros(5), gen)
    assert grown.shape == (8, 5) and torch.equal(grown[:3], pop[0, :3])


def test_c2fmi_inverse_network_input_transform_by_hand():
    inv = c2fmi.InverseNet(4, 3, 16, top_k=3)
    p = torch.tensor([[0.5, 0.25, 0.25, 0.0]])
    # top 3: log p + 50 = 49.30685, 48.61371, 48.61371 (all >= 0: no shift); the 4th class stays 0
    v = torch.tensor([50 + math.log(0.5), 50 + math.log(0.25), 50 + math.log(0.25), 0.0])
    assert torch.allclose(inv.encode(p), (v / v.norm())[None], atol=1e-6)
    # all classes: log 0 is floored at -1000, so 50 - 1000 = -950 is the minimum and everything shifts by 950
    full = c2fmi.InverseNet(4, 3, 16)
    v = torch.tensor([1000 + math.log(0.5), 1000 + math.log(0.25), 1000 + math.log(0.25), 0.0])
    assert torch.allclose(full.encode(p), (v / v.norm())[None], atol=1e-6)
    # the authors' predict2feature: K -> 4096 -> 4096 -> dropout 0.25 -> embedding
    assert registry.get("attack", "c2fmi").defaults["inverse_hidden"] == 4096
    layers = [m for m in c2fmi.InverseNet(4, 3, 4096).net]
    kinds = [type(m).__name__ for m in layers]
    assert kinds == ["Linear", "LeakyReLU", "Linear", "LeakyReLU", "Dropout", "Linear"]
    assert (layers[0].in_features, layers[0].out_features, layers[2].out_features, layers[5].out_features) == (
        4, 4096, 4096, 3)  # fmt: skip
    assert layers[4].p == 0.25 and layers[1].negative_slope == 0.2


def test_c2fmi_coarse_input_is_the_authors_vector():
    gen = torch.Generator().manual_seed(0)
    pred = c2fmi.coarse_prediction(torch.tensor([2, 0]), 5, gen)
    assert torch.allclose(pred.norm(dim=1), torch.ones(2)) and pred[0, 2] == pytest.approx(1.0)
    assert (pred[0, [0, 1, 3, 4]] > 0).all() and (pred[0, [0, 1, 3, 4]] < 1e-16).all()
    enc = c2fmi.InverseNet(5, 3, 8).encode(pred)
    # after the log transform: about 50 at the label, about 50 + log(1e-18 |n|) ~ 9 elsewhere: not one-hot
    raw = enc[0] / enc[0, 2] * (50 + math.log(pred[0, 2].item()))
    assert raw[2].item() == pytest.approx(50.0, abs=1e-3)
    others = raw[[0, 1, 3, 4]]
    assert torch.allclose(others, 50 + pred[0, [0, 1, 3, 4]].double().log().float(), atol=1e-3)
    assert (others > 0).all() and (others < 15).all()


# ------------------------------------------------------------------ VMI's flow posterior


@pytest.mark.parametrize("coupling", ["additive", "affine"])
def test_flow_log_determinant_matches_autograd(coupling):
    gen = torch.Generator().manual_seed(0)
    flow = vmi.BatchedFlow(2, 4, 3, 8, coupling, gen).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    eps = torch.randn(2, 1, 4, generator=gen, dtype=torch.float64)
    _, logdet = flow(eps)
    for g in range(2):

        def f(e, g=g):
            full = eps.clone()
            full[g, 0] = e
            return flow(full)[0][g, 0]

        jac = torch.autograd.functional.jacobian(f, eps[g, 0])
        assert logdet[g, 0].item() == pytest.approx(torch.linalg.slogdet(jac).logabsdet.item(), abs=1e-8)


def test_additive_flow_starts_at_the_prior():
    gen = torch.Generator().manual_seed(0)
    flow = vmi.BatchedFlow(3, 6, 4, 16, "additive", gen)
    z, logq, eps = flow.sample(10, gen)
    # zero-initialised couplings: only the fixed permutations act, so q is N(0, I) and the KL is 0
    assert torch.equal(z.sort(-1).values, eps.sort(-1).values)
    assert torch.allclose(vmi.flow_kl(logq, z), torch.zeros(3), atol=1e-6)
    assert torch.allclose(logq, vmi.standard_normal_logp(eps))


def test_layered_flow_feeds_one_base_sample_to_every_layer():
    from types import SimpleNamespace

    torch.manual_seed(0)
    prior = _box_prior()
    n_cls, layers, n = 2, list(range(prior.num_ws)), 5
    ctx = SimpleNamespace(prior=prior, classes=[0, 1], gen=torch.Generator().manual_seed(1), device="cpu",
                          resolution=8, channels=1)  # fmt: skip
    flow = vmi.BatchedFlow(n_cls * len(layers), 6, 2, 8, "additive", torch.Generator().manual_seed(2))
    seen = {}
    real = prior.images

    def spy(ws, resolution, channels, noise_mode="const"):
        seen["ws"] = ws.detach().clone()
        return real(ws, resolution, channels, noise_mode)

    prior.images = spy
    with torch.no_grad():
        x, kl = vmi.flow_images(ctx, flow, layers, n)
    ws = seen["ws"]  # [C * n, num_ws, w_dim]
    # at the start (identity couplings) every layer of a sample has the same w: a plain generator sample
    assert torch.allclose(ws, ws[:, :1].expand_as(ws), atol=1e-6)
    assert len(torch.unique(ws[:, 0], dim=0)) == n_cls * n  # samples differ from each other
    assert torch.allclose(kl, torch.zeros(n_cls), atol=1e-5) and x.abs().max() <= 1.0
    # the base sample is shared by the layers of a class only, and each flow's log q is its own
    z, logq, eps = flow.sample(3, torch.Generator().manual_seed(3), shared=len(layers))
    eps = eps.view(n_cls, len(layers), 3, 6)
    assert torch.equal(eps, eps[:, :1].expand_as(eps)) and not torch.equal(eps[0, 0], eps[1, 0])
    assert torch.allclose(logq, vmi.standard_normal_logp(eps.reshape(-1, 3, 6)))


def test_gaussian_vmi_entry_is_unchanged():
    entry = registry.get("attack", "vmi")
    assert entry.call == "run_attack" and entry.priors == ("gmi-gan", "kedmi-gan")
    assert entry.defaults == {"per_class": 8, "iterations": 1500, "lr": 0.01, "kl_weight": 1.0, "samples_per_step": 4}


# ------------------------------------------------------------------ end to end through the attack stage


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from whitebox_tiny import build_data, build_prior, build_target

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sg-attacks")
    data = build_data(root)
    target = build_target(root, data)
    prior = build_prior(root, "stylegan", data, None, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64,
                        channel_max=16, steps=3, batch_size=8, p_samples=200)  # fmt: skip
    gmi = build_prior(root, "gmi-gan", data, None, dim=8, steps=2, batch_size=16)
    return root, data, target, {"stylegan": prior, "gmi-gan": gmi}


WHITE_BOX = [
    ("ppa", "stylegan", {"candidates": 3, "search_space": 30, "iterations": 3, "final_iterations": 2, "batch_size": 4}),
    ("mirror-wb", "stylegan", {"init_samples": 30, "iterations": 4}),
    ("if-gmi", "stylegan", {"candidates": 3, "search_space": 30, "steps": [2, 2, 2], "radius_features": [1.0] * 3,
                            "radius_w": [2.0] * 3, "final_iterations": 2, "batch_size": 4}),
    ("vmi-flow", "stylegan", {"iterations": 3, "samples_per_step": 3, "flow_steps": 2, "flow_hidden": 8}),
    ("vmi-flow", "gmi-gan", {"iterations": 2, "samples_per_step": 3, "flow_steps": 2, "flow_hidden": 8}),
]  # fmt: skip
BLACK_BOX = [
    ("mirror-bb", "run_blackbox", mirror, {"init_samples": 30, "population": 6, "generations": 3}),
    ("c2fmi", "run_attack", c2fmi, {"inverse_samples": 40, "inverse_hidden": 8, "inverse_epochs": 2,
                                     "coarse_batch": 4, "coarse_steps": 2, "top_coarse": 3, "popsize": 5,
                                     "generations": 3}),
]  # fmt: skip


def _check(out, manifest):
    recon = load_reconstructions(out)
    assert recon["images"].shape == (6, 1, 16, 16)
    assert recon["labels"].tolist() == [0, 0, 1, 1, 2, 2]
    assert recon["images"].abs().max() <= 1.0 and torch.isfinite(recon["images"]).all()
    assert 0.0 <= manifest["results"]["target_success"] <= 1.0
    assert store.verify(out) == []
    return recon


@pytest.mark.parametrize("name,prior,params", WHITE_BOX)
def test_white_box_attacks_through_the_stage(tiny, name, prior, params):
    from whitebox_tiny import run_attack_job

    root, data, target, priors = tiny
    out, manifest = run_attack_job(root / f"{name}-{prior}", name, data, target, priors[prior], per_class=2, **params)
    _check(out, manifest)
    assert manifest["results"]["queries"] is None


@pytest.mark.parametrize("name,call,module,params", BLACK_BOX)
def test_black_box_attacks_see_only_the_oracle_and_count_queries(tiny, monkeypatch, name, call, module, params):
    from whitebox_tiny import run_attack_job

    root, data, target, priors = tiny
    seen = {}
    real = getattr(module, call)

    def spy(ctx, **kw):
        seen["target"], seen["access"] = ctx.target, ctx.oracle.access
        return real(ctx, **kw)

    monkeypatch.setattr(module, call, spy)
    out, manifest = run_attack_job(root / name, name, data, target, priors["stylegan"], per_class=2, **params)
    recon = _check(out, manifest)
    assert seen == {"target": None, "access": "probabilities"}
    queries = manifest["results"]["queries"]
    assert queries > 0 and recon["queries"].sum().item() == pytest.approx(queries)
    assert (recon["queries"] > 0).all()


@pytest.mark.parametrize("name,call,module,params", BLACK_BOX)
def test_black_box_queries_are_valid_images(tiny, monkeypatch, name, call, module, params):
    from whitebox_tiny import run_attack_job

    from mibench_core.attacks import oracle as oracle_module

    root, data, target, priors = tiny
    seen = []
    real_call = oracle_module.Oracle.__call__

    def recording(self, x, slots=None):
        seen.append(x.abs().max().item())
        return real_call(self, x, slots)

    real = getattr(module, call)

    def loud_generator(ctx, **kw):  # a generator whose raw outputs leave [-1, 1]
        synth = ctx.prior.generator.synthesis
        forward = synth.forward
        synth.forward = lambda *a, **k: 4.0 * forward(*a, **k)
        return real(ctx, **kw)

    monkeypatch.setattr(oracle_module.Oracle, "__call__", recording)
    monkeypatch.setattr(module, call, loud_generator)
    run_attack_job(root / f"{name}-valid", name, data, target, priors["stylegan"], per_class=2, **params)
    assert seen and max(seen) <= 1.0


def test_c2fmi_counts_the_queries_it_makes(tiny):
    from whitebox_tiny import run_attack_job

    root, data, target, priors = tiny
    params = dict(BLACK_BOX[1][3])
    out, manifest = run_attack_job(root / "c2fmi-count", "c2fmi", data, target, priors["stylegan"], per_class=2,
                                   **params)  # fmt: skip
    # 40 public images; per class (3): 4 coarse latents ranked, then per generation (3) the 5 parents
    # queried again and 5 mutants
    assert manifest["results"]["queries"] == 40 + 3 * (4 + 3 * (5 + 5))


def test_mirror_black_box_counts_the_queries_it_makes(tiny):
    from whitebox_tiny import run_attack_job

    root, data, target, priors = tiny
    out, manifest = run_attack_job(
        root / "mirror-bb-count", "mirror-bb", data, target, priors["stylegan"],
        per_class=1, init_samples=20, population=4, generations=2, min_score=1.0,
    )  # fmt: skip
    # 20 initial samples, the population of 4 (elite and 3 children) per generation and run (3 runs,
    # 2 generations), 3 final checks
    assert manifest["results"]["queries"] == 20 + 3 * 4 * 2 + 3
    # every reconstruction is the authors' clamped, truncated generator output of its latent
    from mibench_core.priors import load_prior

    prior = load_prior(priors["stylegan"], "cpu")
    recon = load_reconstructions(out)
    with torch.no_grad():
        expected = mirror.generate(prior, recon["latents"], 0.7, 8, 16, 1)
    assert torch.allclose(recon["images"], expected, atol=1e-5)


def test_mirror_white_box_returns_the_truncated_clamped_image_of_its_latents(tiny):
    from whitebox_tiny import run_attack_job

    from mibench_core.priors import load_prior

    root, data, target, priors = tiny
    out, _ = run_attack_job(root / "mirror-wb-trunc", "mirror-wb", data, target, priors["stylegan"],
                            per_class=1, init_samples=20, iterations=3, truncation_layers=3)  # fmt: skip
    prior = load_prior(priors["stylegan"], "cpu")
    recon = load_reconstructions(out)
    with torch.no_grad():
        expected = mirror.generate(prior, recon["latents"], 0.7, 3, 16, 1)
        untruncated = prior.images(recon["latents"], 16, 1).clamp(-1, 1)
    assert torch.allclose(recon["images"], expected, atol=1e-5)
    assert not torch.allclose(recon["images"], untruncated, atol=1e-3)


@pytest.mark.parametrize("name", ["ppa", "mirror-wb", "mirror-bb", "if-gmi", "c2fmi", "vmi-flow"])
def test_every_parameter_has_a_registry_default(name):
    import inspect

    entry = registry.get("attack", name)
    params = list(inspect.signature(registry.load(entry)).parameters)
    assert params[0] == "ctx" and sorted(params[1:]) == sorted(entry.defaults)
