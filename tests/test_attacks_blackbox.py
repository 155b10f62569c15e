"""Black-box and label-only attacks: BREP's schedule and gradient, the SAC update, RLB's
reward, LOKT's oracle-only training, the attack stage's wiring, and a tiny smoke of each."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from mibench_core import store
from mibench_core.attacks import brep, learning_inversion, lokt, rlb
from mibench_core.attacks import secretgen_bb as secretgen
from mibench_core.attacks.contract import AttackContext, VictimAnswers
from mibench_core.attacks.oracle import Oracle
from mibench_core.models.classifiers import MCNN
from mibench_core.priors import lokt_tacgan
from mibench_core.priors.gmi_gan import Critic, GANPrior, Generator


class LinearOnZ(nn.Module):
    """Toy classifier on a 2-d latent 'image' [N, 1, 1, 2]: class 1 iff z0 > offset."""

    def __init__(self, offset: float = 0.0):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
            self.fc.bias.copy_(torch.tensor([offset, -offset]))

    def forward(self, x):
        return self.fc(x.flatten(1))


def _label_fn(offset=0.0):
    oracle = Oracle(LinearOnZ(offset), "label")
    return oracle, lambda z, slots: oracle(z.view(-1, 1, 1, 2), slots=slots)


# --- BREP-MI -----------------------------------------------------------------------------


def test_brep_gradient_matches_closed_form_near_a_linear_boundary():
    # z = (-0.5, 0), R = 1, boundary z0 = 0: the sphere is outside for cos(theta) > 1/2,
    # so E[phi u] = -(1 / 2pi) * integral_{-pi/3}^{pi/3} (cos, sin) dtheta = (-sqrt(3) / 2pi, 0).
    gen = torch.Generator().manual_seed(0)
    oracle, label_fn = _label_fn()
    z = torch.tensor([[-0.5, 0.0]])
    u = brep.sphere_directions(1, 20000, 2, gen)
    inside = label_fn((z[:, None] + u).view(-1, 2), None).view(1, -1) == 0
    g = brep.repulsion_gradient(u, inside)[0]
    assert g[0].item() == pytest.approx(-math.sqrt(3) / (2 * math.pi), abs=0.01)
    assert g[1].item() == pytest.approx(0.0, abs=0.01)
    assert torch.allclose(u.norm(dim=-1), torch.ones(1, 20000))


def test_brep_radius_grows_by_1_3_while_the_sphere_is_inside_and_step_is_capped():
    gen = torch.Generator().manual_seed(0)
    oracle, label_fn = _label_fn(offset=1000.0)  # everything nearby is class 0
    history = []
    out = brep.boundary_repulsion(
        torch.zeros(1, 2), torch.tensor([0]), label_fn, gen, sphere_points=16, clip_z=100.0,
        max_iterations=9, history=history,
    )  # fmt: skip
    radii = [h["radius"].item() for h in history]
    assert radii == pytest.approx([2.0 * 1.3**i for i in range(9)])
    steps = [h["step"].item() for h in history]
    assert steps == pytest.approx([min(r / 3, 3.0) for r in radii])
    assert steps[-1] == 3.0  # R = 16.3: the step is capped at 3
    assert torch.equal(out["z"], torch.zeros(1, 2))  # nothing outside: no repulsion
    assert out["capped"].item() and oracle.queries == 9 * (16 + 1)
    assert oracle.slot_counts(1).item() == 9 * 17


def test_brep_moves_away_from_the_boundary_and_stops_when_the_radius_stalls():
    gen = torch.Generator().manual_seed(1)
    _, label_fn = _label_fn()
    history = []
    out = brep.boundary_repulsion(
        torch.tensor([[-0.3, 0.0]]), torch.tensor([0]), label_fn, gen, clip_z=0.4,
        max_iters_at_radius=3, history=history,
    )  # fmt: skip
    # half the sphere is across the boundary: R never grows, the point is pushed to -x
    assert out["iterations"].item() == 3 and out["radius"].item() == 2.0
    assert history[0]["z"][0, 0].item() < -0.3
    assert out["final"][0, 0].item() == pytest.approx(-0.4)  # clipped at -clip_z
    assert torch.equal(out["z"], torch.tensor([[-0.3, 0.0]]))  # the radius never grew: the start is reported
    assert out["rejected"].item() == 0 and out["growths"].item() == 0 and not out["capped"].item()


class ScriptedLabels:
    """label_fn for one latent of class 0: the k-th sphere gets ``outside[k]`` points labelled 1 (the
    first ones), the k-th step is accepted iff ``accept[k]``; records every sphere and step it sees."""

    def __init__(self, outside: list[int], accept: list[bool]):
        self.outside, self.accept, self.spheres, self.steps = outside, accept, [], []

    def __call__(self, z: torch.Tensor, slots) -> torch.Tensor:
        if len(z) == 1:  # the step's check
            self.steps.append(z.clone())
            return torch.tensor([0 if self.accept[len(self.steps) - 1] else 1])
        self.spheres.append(z.clone())
        labels = torch.zeros(len(z), dtype=torch.long)
        labels[: self.outside[len(self.spheres) - 1]] = 1
        return labels


def test_brep_grows_the_radius_on_the_authors_plus_minus_one_statistic():
    # 14 of 16 inside: +-1 labels average 0.75, not above the threshold (a fraction inside of 0.875 is)
    inside = torch.tensor([[True] * 14 + [False] * 2, [True] * 15 + [False]])
    assert brep.growth_statistic(inside).tolist() == [0.75, 0.875]
    script = ScriptedLabels(outside=[2, 1], accept=[True, True])
    history = []
    brep.boundary_repulsion(
        torch.zeros(1, 2), torch.tensor([0]), script, torch.Generator().manual_seed(0), sphere_points=16,
        clip_z=10.0, max_iterations=2, history=history,
    )  # fmt: skip
    assert [h["grew"].item() for h in history] == [False, True]
    assert [h["radius"].item() for h in history] == [2.0, 2.0]


def test_brep_step_that_leaves_the_class_resamples_at_the_same_point_and_radius():
    # round 1 steps out of the class (rejected); round 2 samples a new sphere around the same point
    # with the same radius and keeps going; rejected rounds do not count toward the stall rule
    script = ScriptedLabels(outside=[8, 8, 8, 8], accept=[False, True, False, True])
    z0 = torch.tensor([[0.1, -0.2]])
    history = []
    out = brep.boundary_repulsion(
        z0, torch.tensor([0]), script, torch.Generator().manual_seed(0), sphere_points=16, clip_z=10.0,
        max_iters_at_radius=2, history=history,
    )  # fmt: skip
    first, second = script.spheres[0], script.spheres[1]
    assert torch.allclose((first - z0).norm(dim=1), torch.full((16,), 2.0))
    assert torch.allclose((second - z0).norm(dim=1), torch.full((16,), 2.0))  # same centre, same radius
    assert not torch.allclose(first, second)  # a new sphere
    assert torch.equal(history[0]["z"], z0) and not history[0]["accepted"].item()
    assert not torch.equal(history[1]["z"], z0)  # round 2's step was taken from z0
    # two accepted steps in four rounds end the run: the rejected ones did not advance the count
    assert out["iterations"].item() == 4 and out["steps"].item() == 2 and out["rejected"].item() == 2
    assert torch.equal(out["final"], script.steps[3])


def test_brep_divides_the_direction_by_the_grown_radius_and_reports_the_point_at_the_last_growth():
    # round 1: 1 of 16 outside -> R grows; rounds 2-4: half outside -> no growth, steps accepted
    script = ScriptedLabels(outside=[1, 8, 8, 8], accept=[True] * 4)
    z0 = torch.tensor([[0.1, -0.2]])
    out = brep.boundary_repulsion(
        z0, torch.tensor([0]), script, torch.Generator().manual_seed(0), sphere_points=16, clip_z=10.0,
        max_iters_at_radius=3,
    )  # fmt: skip
    u = (script.spheres[0] - z0) / 2.0
    g = -u[:1].sum(0) / 16  # phi = -1 on the one point outside
    expected = z0 + (2.0 / 3.0) * g / 1.3  # step from the radius before growth, direction over the grown one
    assert torch.allclose(script.steps[0], expected, atol=1e-6)
    u2 = (script.spheres[1] - script.steps[0]) / 2.6
    assert torch.allclose(u2.norm(dim=1), torch.ones(16), atol=1e-5)  # round 2 at the grown radius
    g2 = -u2[:8].sum(0) / 16
    assert torch.allclose(script.steps[1], script.steps[0] + (2.6 / 3.0) * g2, atol=1e-6)  # no division
    assert out["growths"].item() == 1 and out["radius"].item() == pytest.approx(2.6)
    assert out["iterations"].item() == 4 and out["steps"].item() == 3
    assert torch.equal(out["z"], script.steps[0])  # the point at the last growth, not the last point
    assert torch.equal(out["final"], script.steps[3]) and not torch.equal(out["z"], out["final"])


# --- RLB-MI ------------------------------------------------------------------------------


def test_rlb_reward_by_hand():
    ps = torch.tensor([[0.5, 0.3, 0.2]])
    pa = torch.tensor([[0.25, 0.25, 0.5]])
    r0 = rlb.rlb_reward(ps, pa, 0).item()
    assert r0 == pytest.approx(2 * math.log(0.5) + 2 * math.log(0.25) + 8 * math.log(0.2), rel=1e-5)
    r2 = rlb.rlb_reward(ps, pa, 2).item()  # p_y below the runner-up: margin clipped to 1e-7
    assert r2 == pytest.approx(2 * math.log(0.2) + 2 * math.log(0.5) + 8 * math.log(1e-7), rel=1e-5)
    # output processing zeroes probabilities (label-only: one-hot): floored at 1e-7, never -inf
    onehot_state, onehot_action = torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    r = rlb.rlb_reward(onehot_state, onehot_action, 0).item()
    assert r == pytest.approx(2 * math.log(1e-7) + 2 * math.log(1.0) + 8 * math.log(1e-7), rel=1e-5)


def test_sac_soft_target_update_and_learning_a_toy_reward():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    agent = rlb.SAC(1, 1, gen, hidden=32, lr=5e-3, batch_size=32, buffer_size=1000)
    s = torch.zeros(1, 1)
    for _ in range(32):
        a = agent.act(s)
        agent.store(s, a, -10 * (a - 0.5).pow(2).sum(1), s, [1.0])
    before_t = [p.clone() for p in agent.q_target.parameters()]
    stats = agent.update()
    assert stats is not None
    for p, pt, b in zip(agent.q.parameters(), agent.q_target.parameters(), before_t):
        assert torch.allclose(pt, 0.99 * b + 0.01 * p, atol=1e-6)
    for _ in range(200):
        a = agent.act(s)
        agent.store(s, a, -10 * (a - 0.5).pow(2).sum(1), s, [1.0])
        agent.update()
    mean_action = agent.act(s, deterministic=True).item()
    assert mean_action == pytest.approx(0.5, abs=0.15)


# --- tiny fixtures for attack smokes -----------------------------------------------------


def _tiny_setup(tmp_path: Path, access: str, k: int = 3, top_k=None):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    target = MCNN(k, 1, 8, width=4).eval()
    public = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=gen)
    store.save_tensors(tmp_path / "public.safetensors", {"public_x": public})  # the public view
    ctx = AttackContext(
        num_classes=k, channels=1, resolution=8, classes=list(range(k)), device=torch.device("cpu"),
        gen=gen, public_dir=str(tmp_path),
    )  # fmt: skip
    ctx.oracle = Oracle(target, access, top_k=top_k)
    return ctx


def _gan_prior(z_dim=8):
    G, D = Generator(z_dim, 8, 1, 8).eval(), Critic(8, 1, 8).eval()
    for p in [*G.parameters(), *D.parameters()]:
        p.requires_grad_(False)
    return GANPrior(G, D, z_dim)


def _check(result, ctx, n, extra_queries=0):
    assert result.images.shape == (n, 1, 8, 8) and result.labels.shape == (n,)
    assert result.images.min() >= -1 and result.images.max() <= 1
    assert sorted(set(result.labels.tolist())) == ctx.classes
    q = result.extras["queries"]
    assert q.shape == (n,) and q.sum().item() == pytest.approx(ctx.oracle.queries + extra_queries)
    assert ctx.target is None


def test_brep_attack_smoke(tmp_path):
    ctx = _tiny_setup(tmp_path, "label")
    ctx.prior = _gan_prior()
    res = brep.run_attack(ctx, 2, 8, 2.0, 1.3, 0.75, 3.0, 1.5, 2, 4, 32, 3)
    _check(res, ctx, 6)
    assert res.info["init_found"] == int(res.extras["init_found"].sum())


def test_rlb_attack_smoke(tmp_path):
    ctx = _tiny_setup(tmp_path, "probabilities")
    ctx.prior = _gan_prior()
    res = rlb.run_attack(ctx, 2, 6, 1, 0.0, 16, 0.99, 0.01, 5e-4, 4, 100)
    _check(res, ctx, 6)
    assert ctx.oracle.queries == 3 * 6 * 3  # 2 per step + 1 test per episode, 3 classes


def test_secretgen_attack_smoke(tmp_path):
    ctx = _tiny_setup(tmp_path, "label")
    ctx.prior = _gan_prior()
    res = secretgen.run_attack(ctx, 2, 64, 4, 0.02, 2)
    _check(res, ctx, 6)
    assert ctx.oracle.shared_queries == 64
    sel, ys, found = secretgen.select_by_label(
        torch.zeros(5, 2), torch.tensor([0, 1, 1, 0, 1]), [0, 1, 2], 2, torch.Generator()
    )
    assert ys.tolist() == [0, 0, 1, 1, 2, 2] and found.tolist() == [True, True, True, True, False, False]
    assert set(sel[:2].tolist()) == {0, 3} and sel[4:].tolist() == [-1, -1]


def test_learning_inversion_smoke_and_encoding(tmp_path):
    from mibench_core.attacks.blackbox import record_queries

    ctx = _tiny_setup(tmp_path, "top-k", top_k=2)
    # the answers a trusted job computes on 6 private samples: all the attack sees of its victims
    answers = Oracle(MCNN(3, 1, 8, width=4).eval(), "top-k", top_k=2)
    outputs = answers(torch.rand(6, 1, 8, 8) * 2 - 1, slots=torch.arange(6))
    ctx.victims = VictimAnswers(outputs, answers.slot_counts(6), "top-k", 2, "victims-test")
    res = learning_inversion.run_attack(ctx, 2, 2, 50.0, 4, 1, 16, 2e-4, 0.5, 0.999, 30)
    assert res.images.shape == (6, 1, 8, 8) and res.images.abs().max() <= 1
    assert res.extras["victim"].tolist() == list(range(6)) and "private_index" not in res.extras
    assert torch.equal(res.labels, outputs.argmax(1))  # the classes the answers name
    assert ctx.oracle.queries == 30  # the public set; the victims' queries were the answers job's
    record_queries(res, ctx.oracle, ctx.victims)
    assert res.info["queries"] == 36 and res.info["queries_victims"] == 6
    assert res.extras["queries"].tolist() == pytest.approx([30 / 6 + 1] * 6)
    with pytest.raises(ValueError, match="top-3 answers"):  # answers at another truncation
        learning_inversion.run_attack(ctx, 2, 3, 50.0, 4, 1, 16, 2e-4, 0.5, 0.999, 30)
    enc = learning_inversion.prediction_encoding(torch.tensor([[0.7, 0.2, 0.1]]), 2, 50.0)
    assert enc[0, 2] == 0 and enc[0, 0].item() == pytest.approx(math.log(0.7) + 50)


def test_lokt_trains_only_through_label_oracle_and_attacks(tmp_path, monkeypatch):
    ctx = _tiny_setup(tmp_path, "label")
    calls = []

    class Spy(MCNN):
        def forward(self, x):
            calls.append(len(x))
            return super().forward(x)

    spy = Spy(3, 1, 8, width=4).eval()
    # the prior stage: build_oracle loads the model; training code must receive only the oracle
    tdir = tmp_path / "target"
    store.write_json(tdir / "manifest.json", {"results": {"num_classes": 3}})
    monkeypatch.setattr("mibench_core.models.train.load_classifier", lambda d, device="cpu": spy)
    real_train = lokt_tacgan.train_tacgan
    received = []

    def guarded(public, oracle, params, device, gen):
        received.extend([public, oracle, params, device, gen])
        return real_train(public, oracle, params, device, gen)

    monkeypatch.setattr(lokt_tacgan, "train_tacgan", guarded)
    params = {"z_dim": 8, "dim": 8, "steps": 2, "batch_size": 8, "n_dis": 2}
    params.update(lr=2e-4, beta1=0.0, beta2=0.9, lambda_cls=1.0, public_samples=None)
    job = {
        "device": "cpu", "seed": 0, "outdir": str(tmp_path / "prior"), "spec": {"params": params},
        "inputs": {"data": {"dir": str(tmp_path)}, "target": {"dir": str(tdir)}},
    }  # fmt: skip
    files, results, _ = lokt_tacgan.train_prior(job)
    assert received and not any(isinstance(a, nn.Module) for a in received)
    assert received[1].access == "label"
    # public set labelled once + one generated batch per D step, all through the oracle
    assert results["queries"] == sum(calls) == 40 + 2 * 2 * 8
    with pytest.raises(TypeError, match="label-only"):
        real_train(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), Oracle(spy, "probabilities"), params, "cpu", None)

    store.write_json(tmp_path / "prior" / "manifest.json", {"spec": job["spec"], "results": results})
    ctx.prior = lokt_tacgan.load(tmp_path / "prior")
    res = lokt.run_attack(ctx, 2, 2, 4, 32, 1, 16, 1e-3, 3, 0.1, 2)
    assert res.info["queries_prior"] == results["queries"]
    assert ctx.oracle.queries == 32 + 6  # surrogate set + final check
    from mibench_core.attacks.blackbox import record_queries

    record_queries(res, ctx.oracle)
    _check(res, ctx, 6, extra_queries=results["queries"])
    assert res.info["queries"] == ctx.oracle.queries + results["queries"]


def test_lokt_prior_queries_through_the_runs_output_processing(tmp_path, monkeypatch):
    # rounding to 0 decimals: a near-uniform answer becomes all zeros, whose arg-max is class 0
    from mibench_core.defenses.output import rounding

    _tiny_setup(tmp_path, "label")
    model = MCNN(3, 1, 8, width=4).eval()
    tdir = tmp_path / "target"
    store.write_json(tdir / "manifest.json", {"results": {"num_classes": 3}})
    monkeypatch.setattr("mibench_core.models.train.load_classifier", lambda d, device="cpu": model)
    seen = []
    real_train = lokt_tacgan.train_tacgan
    monkeypatch.setattr(lokt_tacgan, "train_tacgan", lambda public, oracle, *a: seen.append(oracle) or real_train(
        public, oracle, *a))  # fmt: skip
    params = {"z_dim": 8, "dim": 8, "steps": 1, "batch_size": 8, "n_dis": 1, "lr": 2e-4, "beta1": 0.0,
              "beta2": 0.9, "lambda_cls": 1.0, "public_samples": None}  # fmt: skip
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        raw = model(x).softmax(1)
    for output in (None, {"name": "rounding", "params": {"decimals": 0}}):
        job = {
            "device": "cpu", "seed": 0, "outdir": str(tmp_path / f"prior-{output is None}"),
            "spec": {"name": "lokt-tacgan", "params": params, **({"output": output} if output else {})},
            "inputs": {"data": {"dir": str(tmp_path)}, "target": {"dir": str(tdir)}},
        }  # fmt: skip
        lokt_tacgan.train_prior(job)
    plain, rounded = (oracle(x) for oracle in seen)
    assert torch.equal(plain, raw.argmax(1)) and torch.equal(rounded, rounding(raw, 0).argmax(1))
    assert not torch.equal(plain, rounded)  # what the attacker sees differs, and so does what the prior saw


def test_max_margin_loss_by_hand():
    logits = torch.tensor([[2.0, 5.0, 1.0], [0.0, -1.0, 3.0]])
    assert lokt.max_margin_loss(logits, torch.tensor([1, 0])).tolist() == [-5.0 + 2.0, 0.0 + 3.0]


# --- the attack stage gives black-box attacks an oracle, never the model ------------------


def test_attack_stage_wires_an_oracle(tmp_path, monkeypatch):
    from whitebox_tiny import write_answers

    from mibench_core.attacks import common

    model = MCNN(3, 1, 8, width=4)
    tdir, ddir = tmp_path / "target", tmp_path / "data"
    store.save_tensors(tdir / "model.safetensors", model.state_dict())
    store.write_json(
        tdir / "manifest.json",
        {
            "spec": {"arch": "mcnn", "arch_params": {"width": 4}, "defense": {"name": "none", "params": {}}},
            "results": {"num_classes": 3, "channels": 1, "resolution": 8},
        },
    )
    store.save_tensors(ddir / "public.safetensors", {"public_x": torch.zeros(2, 1, 8, 8, dtype=torch.uint8)})
    adir = write_answers(tmp_path / "answers", torch.rand(3, 3), top_k=2)
    seen = {}

    def fake_attack(ctx, **params):
        seen["target"], seen["access"], seen["top_k"] = ctx.target, ctx.oracle.access, ctx.oracle.top_k
        seen["victims"] = len(ctx.victims)
        ctx.oracle(torch.zeros(5, 1, 8, 8))
        return common.AttackResult(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), {"victim": torch.tensor([2, 0])})

    monkeypatch.setattr(learning_inversion, "run_attack", fake_attack)
    job = {
        "device": "cpu", "seed": 0, "name": "learning-inversion", "outdir": str(tmp_path / "out"),
        "spec": {"params": {"top_k": 2}},
        "inputs": {"target": {"dir": str(tdir)}, "data": {"dir": str(ddir)}, "answers": {"dir": str(adir)}},
    }  # fmt: skip
    files, info, _ = common.run(job)
    assert seen == {"target": None, "access": "top-k", "top_k": 2, "victims": 3}
    assert info["queries"] == 5 + 3 and info["queries_victims"] == 3 and info["victims_id"] == "victims-test"
    recon = common.load_reconstructions(tmp_path / "out")
    assert recon["queries"].tolist() == [3.5, 3.5]  # a share of the 5 shared queries + its victim's one


def test_queries_chart(tmp_path):
    import pandas as pd

    from mibench_core.report.figures import queries_chart

    df = pd.DataFrame(
        {
            "run": ["a.gmi", "a.brep", "a.rlb"],
            "attack": ["gmi", "brep-mi", "rlb-mi"],
            "queries": [None, 1200, 90000],
            "acc1": [0.5, 0.25, None],
        }
    )
    df.to_parquet(tmp_path / "attacks.parquet")
    queries_chart(str(tmp_path / "attacks.parquet"), str(tmp_path / "q.png"))
    assert (tmp_path / "q.png").stat().st_size > 1000
