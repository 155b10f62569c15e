"""Membership attacks' building blocks against known answers."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from mibench_core.membership import metrics as M
from mibench_core.membership import signals
from mibench_core.membership.attacks import blindmi, label_only, lira, ppv, risk_score, rmia, shapley

SIGMA = math.sqrt(2 / 3)  # std (ddof 0) of three equally spaced values one apart


def test_lira_likelihood_ratio_on_a_gaussian_case_with_a_known_answer():
    # one example, three IN references (1, 2, 3) and three OUT ones (-1, 0, 1): medians 2 and 0, equal std;
    # at phi = 1.5 the log likelihood ratio is ((1.5 - 0)^2 - (1.5 - 2)^2) / (2 sigma^2) = 2 / (4 / 3) = 1.5
    ref = np.array([[[1.0], [2.0], [3.0], [-1.0], [0.0], [1.0]]])  # [A=1, R=6, n=1]
    ref_in = np.array([[True], [True], [True], [False], [False], [False]])
    score = lira.online_scores(np.array([[1.5]]), ref, ref_in, fix_variance=False)
    assert score[0] == pytest.approx(1.5)
    offline = lira.offline_scores(np.array([[1.5]]), ref[:, 3:], ~ref_in[3:], fix_variance=False)
    assert offline[0] == pytest.approx(stats.norm.logcdf(1.5 / SIGMA))


def test_lira_online_recovers_the_true_ratio_with_many_references():
    rng = np.random.default_rng(0)
    n, r = 50, 400
    mu_in, mu_out, sd = rng.normal(3, 1, n), rng.normal(0, 1, n), 1.0
    ref_in = np.zeros((r, n), bool)
    ref_in[: r // 2] = True
    ref = np.where(ref_in, rng.normal(mu_in, sd, (r, n)), rng.normal(mu_out, sd, (r, n)))[None]
    obs = rng.normal(1.5, 1, n)[None]
    got = lira.online_scores(obs, ref, ref_in, fix_variance=False)
    true = stats.norm.logpdf(obs[0], mu_in, sd) - stats.norm.logpdf(obs[0], mu_out, sd)
    assert np.corrcoef(got, true)[0, 1] > 0.99 and np.abs(got - true).mean() < 0.35


def test_lira_online_refuses_examples_without_in_and_out_references():
    with pytest.raises(ValueError, match="with and without"):
        lira.online_scores(np.zeros((1, 2)), np.zeros((1, 2, 2)), np.array([[True, True], [True, False]]), True)


def test_signals_by_hand():
    p = np.array([[0.7, 0.2, 0.1], [0.25, 0.5, 0.25]])
    y = np.array([0, 2])
    assert signals.ce_loss(p, y) == pytest.approx(-np.log([0.7, 0.25]))
    assert signals.logit_confidence(p, y) == pytest.approx(np.log([0.7 / 0.3, 0.25 / 0.75]))
    # modified entropy, row 0: -(0.3) log 0.7 - 0.2 log 0.8 - 0.1 log 0.9
    want = -0.3 * np.log(0.7) - 0.2 * np.log(0.8) - 0.1 * np.log(0.9)
    assert signals.m_entropy(p, y)[0] == pytest.approx(want)
    assert np.isfinite(signals.logit_confidence(np.array([[1.0, 0.0]]), np.array([0]))).all()  # saturated stays finite


def test_threshold_fitting_maximises_balanced_accuracy():
    t = signals.fit_threshold(np.array([3.0, 4.0, 5.0]), np.array([1.0, 2.0, 3.5]))
    assert t in (3.0, 4.0)  # both separate with balanced accuracy 5/6
    per_class = signals.fit_class_thresholds(np.array([1.0, 9.0]), np.array([0, 1]), np.array([0.0, 8.0]),
                                             np.array([0, 1]), 3)  # fmt: skip
    assert per_class[0] == 1.0 and per_class[1] == 9.0 and per_class[2] == signals.fit_threshold([1.0, 9.0], [0, 8])


def test_shifts_move_content_and_start_with_the_identity():
    assert signals.shifts(5) == [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    moved = signals.shift_images(x, 1, -1)  # right by one, up by one
    assert moved[0, 0, 1, 3] == 1.0 and moved.sum() == 1.0
    assert label_only.offsets(1) == [(0, 0), (-1, 0), (0, -1), (0, 1), (1, 0)]
    assert len(label_only.offsets(2)) == 9 and all(abs(i) + abs(j) == 2 for i, j in label_only.offsets(2)[1:])


def test_release_mirrors_the_oracle():
    from mibench_core.attacks.oracle import Oracle

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.randn(6, 1, 2, 2)
    with torch.no_grad():
        probs = torch.softmax(model(x), 1).double().numpy()
    for access, k in (("probabilities", None), ("top-k", 2), ("label", None)):
        got = signals.release(probs, access, k)
        want = Oracle(model, access, top_k=k)(x).numpy()
        assert np.allclose(got, want, atol=1e-6)


def test_risk_score_posterior_from_histograms():
    rng = np.random.default_rng(1)
    tr = rng.uniform(0.01, 0.1, 200)  # shadow members: low modified entropy
    te = rng.uniform(0.5, 2.0, 200)
    lab = np.zeros(200, int)
    r = risk_score.risk_scores(tr, lab, te, lab, np.array([0.05, 1.0, 5.0, 0.0]), np.zeros(4, int), 2)
    assert r[0] == 1.0 and r[1] == 0.0 and r[2] == 0.0 and r[3] == 1.0  # out-of-range values use the end bins
    r2 = risk_score.risk_scores(tr, lab, te, lab, np.array([0.05]), np.array([1]), 2)
    assert r2[0] == 0.5  # a class without shadow values


def test_knn_shapley_equals_the_exact_shapley_value():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 2)), np.array([0, 1, 0, 1, 1])
    tx, ty = rng.normal(size=(3, 2)), np.array([0, 1, 1])
    k = 2

    def utility(subset, t, label):
        if not subset:
            return 0.0
        d = [((x[i] - t) ** 2).sum() for i in subset]
        near = [subset[j] for j in np.argsort(d, kind="mergesort")[:k]]
        return sum(y[i] == label for i in near) / k

    exact = np.zeros(5)
    perms = list(itertools.permutations(range(5)))
    for t, label in zip(tx, ty):
        for perm in perms:
            for pos, i in enumerate(perm):
                exact[i] += utility(list(perm[: pos + 1]), t, label) - utility(list(perm[:pos]), t, label)
    exact /= len(perms) * len(tx)
    assert shapley.knn_shapley(x, y, tx, ty, k) == pytest.approx(exact)


def test_blindmi_batch_distances_match_the_direct_mmd():
    rng = np.random.default_rng(3)
    batch, ref = rng.random((6, 3)), rng.random((10, 3))
    kb = blindmi._Batch(batch, ref, float(blindmi.kernel(ref, ref).sum()))
    moved = np.array([1, 0, 0, 0, 1, 0], bool)
    members = np.array([0, 1, 1, 0, 0, 1], bool)
    assert kb.dist(moved, members) == pytest.approx(blindmi.mmd(np.r_[ref, batch[moved]], batch[members]))


def test_blindmi_separates_members_from_non_members():
    rng = np.random.default_rng(4)
    members = np.c_[rng.uniform(0.95, 1, 40), rng.uniform(0.95, 1, 40), rng.uniform(0, 0.03, 40)]
    non = np.c_[rng.uniform(0.2, 0.7, 40), rng.uniform(0.6, 0.8, 40), rng.uniform(0.1, 0.3, 40)]
    ref = np.c_[rng.uniform(0.2, 0.7, 60), rng.uniform(0.6, 0.8, 60), rng.uniform(0.1, 0.3, 60)]
    feats, truth = np.r_[members, non], np.r_[np.ones(40, bool), np.zeros(40, bool)]
    dec, score = blindmi.blindmi_diff(feats, ref, 20, 100, np.random.default_rng(0))
    assert (dec == truth).mean() > 0.9
    assert score[truth].mean() > score[~truth].mean()


def test_rmia_score_is_the_fraction_of_dominated_population_samples():
    got = rmia.rmia_scores(np.array([0.5, 2.0, 10.0]), np.array([1.0, 1.5, 3.0, 4.0]), gamma=1.0)
    assert got.tolist() == [0.0, 0.5, 1.0]
    # LR(x, z) > gamma strictly (ml_privacy_meter's run_rmia: ratios > 1.0): LR = 2 / 1 = gamma does not count
    assert rmia.rmia_scores(np.array([2.0]), np.array([1.0, 1.5, 3.0, 4.0]), gamma=2.0).tolist() == [0.0]
    assert rmia.rmia_scores(np.array([2.0]), np.array([1.0, 1.5, 3.0, 4.0]), gamma=1.5).tolist() == [0.25]
    # offline: Pr(x) = ((1 + a) Pr_out + (1 - a)) / 2 over the OUT references only
    pr = np.array([[0.2], [0.6]])
    assert rmia._marginal(pr, np.array([[False], [True]]), 0.5)[0] == pytest.approx(0.5 * (1.5 * 0.2 + 0.5))


def test_ppv_threshold_prefers_precision():
    s_in, s_out = np.array([1.0, 0.9, 0.5, 0.4]), np.array([0.6, 0.5, 0.3, 0.2])
    t, value = ppv.ppv_threshold(s_in, s_out, min_fraction=0.25)
    assert t == 0.9 and value == 1.0  # the highest precision flagging >= 1 member
    t, value = ppv.ppv_threshold(s_in, s_out, min_fraction=0.75)
    assert t == 0.4 and value == pytest.approx(4 / 6)


def test_merlin_counts_loss_increases():
    def answer(x):  # loss grows with |x|: the origin is a minimum
        r = x.flatten(1).norm(dim=1).numpy()
        return np.c_[np.exp(-r), 1 - np.exp(-r)]

    x = torch.full((2, 1, 2, 2), 127.5).to(torch.uint8)
    x[1] = 255  # far from the minimum
    out = ppv.merlin(answer, x, np.array([0, 0]), 50, 0.05, torch.Generator().manual_seed(0))
    assert out[0] == 1.0 and 0.2 < out[1] < 0.8


@pytest.mark.parametrize("margin", [10, 17, 20, 25, 37, 40, 50, 60])
def test_signals_are_exact_at_large_logit_margins(margin):
    # five classes, logits (m, 0, 0, 0, 0), released as float32 probabilities (what the oracle returns)
    logits = np.array([[float(margin), 0.0, 0.0, 0.0, 0.0]])
    p = signals.release(signals.softmax(logits), "probabilities")
    y = np.array([0])
    e = math.exp(-margin)
    loss = math.log1p(4 * e)  # -log p_y
    q = e / (1 + 4 * e)  # each other class
    assert signals.ce_loss(p, y)[0] == pytest.approx(loss, rel=1e-5)
    assert signals.logit_confidence(p, y)[0] == pytest.approx(margin - math.log(4), rel=1e-6)
    want_ment = 4 * q * loss - 4 * q * math.log1p(-q)
    assert signals.m_entropy(p, y)[0] == pytest.approx(want_ment, rel=1e-5)
    # a wrong class saturated: the true label's entry is tiny, 1 - p_wrong is the sum of the others
    p2 = signals.release(signals.softmax(logits), "probabilities")
    y2 = np.array([1])
    p0 = 1 / (1 + 4 * e)
    want2 = -(1 - q) * math.log(q) - p0 * math.log(4 * q) - 3 * q * math.log1p(-q)
    assert signals.m_entropy(p2, y2)[0] == pytest.approx(want2, rel=1e-5)


def test_lira_fixed_variance_shares_one_sd_and_is_monotone_in_the_signal():
    # IN signals spread more than OUT ones (per example and overall): one global sd, that of the IN signals
    rng = np.random.default_rng(5)
    n, r = 30, 8
    ref_in = np.zeros((r, n), bool)
    ref_in[: r // 2] = True
    ref = np.where(ref_in, rng.normal(8.0, 3.0, (r, n)), rng.normal(0.0, 1.0, (r, n)))[None]
    sd = np.std(ref[0][ref_in])
    mu_in = np.nanmedian(np.where(ref_in, ref[0], np.nan), axis=0)
    mu_out = np.nanmedian(np.where(~ref_in, ref[0], np.nan), axis=0)
    phi = np.array([-10.0, 0.0, 5.0, 10.0, 25.0, 60.0])
    scores = np.stack([lira.online_scores(np.full((1, n), v), ref, ref_in, fix_variance=True) for v in phi])
    want = stats.norm.logpdf(phi[:, None], mu_in, sd) - stats.norm.logpdf(phi[:, None], mu_out, sd)
    assert scores == pytest.approx(want)
    assert (np.diff(scores, axis=0) > 0).all()  # a more confident candidate always scores higher
    off = np.stack([lira.offline_scores(np.full((1, n), v), ref, ~ref_in, fix_variance=True) for v in phi])
    sd_out = np.std(ref[0][~ref_in])
    assert off == pytest.approx(stats.norm.logcdf((phi[:, None] - mu_out) / sd_out))


def test_lira_variance_is_chosen_from_the_number_of_reference_models():
    assert lira.use_global_variance(None, 4) and lira.use_global_variance(None, 63)
    assert not lira.use_global_variance(None, 64) and not lira.use_global_variance(False, 4)
    assert lira.METHODS[0]["defaults"]["fix_variance"] is None and lira.METHODS[1]["defaults"]["fix_variance"] is None
    with pytest.raises(ValueError, match="fix_variance"):
        lira.use_global_variance("yes", 4)


def _signal_context(target_phi, ref_phi, ref_in, pop_phi=None, pop_in=None):
    """A two-class MIAContext whose answers have the given LiRA signals (``phi`` = logit of class 0, label 0)."""
    from mibench_core.membership.context import MIAContext, Reference

    def logits(phi):  # [n] -> [1, n, 2]
        return torch.from_numpy(np.stack([phi, np.zeros_like(phi)], -1)[None])

    n = len(target_phi)
    pop_phi = np.zeros((len(ref_phi), 4)) if pop_phi is None else pop_phi
    pop_in = np.zeros((len(ref_phi), pop_phi.shape[1]), bool) if pop_in is None else pop_in
    refs = [
        Reference(f"r{i}", "online", logits(pop_phi[i]), logits(ref_phi[i]), pop_in[i], ref_in[i])
        for i in range(len(ref_phi))
    ]
    ctx = MIAContext(
        num_classes=2, channels=1, resolution=2, device=torch.device("cpu"), seed=0, access="probabilities",
        top_k=None, oracle=None, candidates_x=torch.zeros(n, 1, 2, 2, dtype=torch.uint8),
        candidates_y=torch.zeros(n, dtype=torch.int64), population_x=torch.zeros(pop_phi.shape[1], 1, 2, 2),
        population_y=torch.zeros(pop_phi.shape[1], dtype=torch.int64), online=refs, offline=refs,
    )  # fmt: skip
    ctx._cache[("cand", 0)] = signals.release(signals.softmax(logits(target_phi)[0]), "probabilities")
    return ctx


def test_lira_online_decision_threshold_is_calibrated_on_the_references():
    # per example IN ~ N(mu + 2, 3^2), OUT ~ N(mu, 1): "likelihood ratio > 1" flags far more non-members than the
    # balanced-accuracy threshold of the pseudo-targets; the target (same process) must match the references
    rng = np.random.default_rng(6)
    r = 8
    combos = list(itertools.combinations(range(r), r // 2))  # each example IN 4 references, each reference IN n/2
    n = 30 * len(combos)
    mu = rng.normal(0, 2, n)
    ref_in = np.zeros((r, n), bool)
    for j in range(n):
        ref_in[list(combos[j % len(combos)]), j] = True
    ref_phi = np.where(ref_in, rng.normal(mu + 2, 3, (r, n)), rng.normal(mu, 1, (r, n)))
    member = rng.random(n) < 0.5
    target_phi = np.where(member, rng.normal(mu + 2, 3), rng.normal(mu, 1))
    ctx = _signal_context(target_phi, ref_phi, ref_in)
    res = lira.run_online(ctx, augmentations=1, fix_variance=None, samples=None)
    # the threshold by hand: every reference as the target, the others as its references (on the signals as
    # the attacker sees them, from float32 answers)
    seen = np.stack([signals.logit_confidence(ctx.shadow_answers(ref, "cand"), np.zeros(n, int)) for ref in ctx.online])
    assert seen == pytest.approx(ref_phi, rel=1e-5, abs=1e-5)
    ref_phi = seen
    s_in, s_out = [], []
    for i in range(r):
        others = [k for k in range(r) if k != i]
        sc = lira.online_scores(ref_phi[i][None], ref_phi[others][None], ref_in[others], True)
        s_in.append(sc[ref_in[i]])
        s_out.append(sc[~ref_in[i]])
    s_in, s_out = np.concatenate(s_in), np.concatenate(s_out)
    tau = signals.fit_threshold(s_in, s_out)
    assert res.info["threshold"] == pytest.approx(tau, rel=1e-6, abs=1e-9)
    fpr_ref = (s_out > tau).mean()
    fpr_target = res.decisions[~member].mean()
    assert abs(fpr_target - fpr_ref) < 0.05
    assert (res.scores[~member] > 0).mean() - fpr_target > 0.1  # the fixed rule would not have transferred


def test_blindmi_scores_are_defined_for_every_sample_and_agree_with_the_decisions():
    # members slightly more confident than non-members: many batches end with no member, or one
    rng = np.random.default_rng(7)
    n = 400
    member = rng.random(n) < 0.5
    py = np.clip(np.where(member, rng.beta(6, 2, n), rng.beta(5, 2, n)), 0, 1)
    second = (1 - py) * rng.uniform(0.5, 1, n)
    feats = np.c_[py, np.maximum(py, second), np.minimum(py, second)]
    ref = feats[~member][:100]
    dec, score = blindmi.blindmi_diff(feats, ref, 20, 100, np.random.default_rng(0))
    assert np.isfinite(score).all()
    assert (score[dec] >= 0).all() and (score[~dec] < 0).all()
    assert (score == 0).sum() <= 2  # no placeholder value shared by whole batches
    assert len(np.unique(score)) > 0.95 * n
    # a batch that ends with no member: every sample still has its own (negative) score
    batch = feats[:20]
    d, s = blindmi.diff_batch(
        batch, np.r_[batch, batch], float(blindmi.kernel(np.r_[batch, batch], np.r_[batch, batch]).sum()), 100
    )
    assert np.isfinite(s).all() and ((s < 0) == ~d).all() and len(np.unique(s)) == 20


def _sig(phi):
    return 1 / (1 + np.exp(-phi))


def _rmia_offline_context(seed=8, n_pop=240, n_cand=60, r=4):
    """Offline references on a population; the target answers population images through an index-decoding
    oracle (images carry their index), candidates through the cache."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 1, n_pop)
    pop_in = np.zeros((r, n_pop), bool)
    combos = list(itertools.combinations(range(r), r // 2))  # each reference IN exactly half the population
    for j in range(n_pop):
        pop_in[list(combos[j % len(combos)]), j] = True
    pop_phi = np.where(pop_in, mu + 1.5 + rng.normal(0, 0.5, (r, n_pop)), mu + rng.normal(0, 0.5, (r, n_pop)))
    cmu = rng.normal(0, 1, n_cand)
    member = np.arange(n_cand) < n_cand // 2
    cand_phi = cmu + rng.normal(0, 0.5, (r, n_cand))
    target_phi = cmu + 1.5 * member + rng.normal(0, 0.5, n_cand)
    target_pop_phi = mu + rng.normal(0, 0.5, n_pop)
    ctx = _signal_context(target_phi, cand_phi, np.zeros((r, n_cand), bool), pop_phi, pop_in)
    for ref in ctx.offline:
        ref.mode = "offline"
    ctx.online = []
    codes = np.stack([np.arange(n_pop) // 256, np.arange(n_pop) % 256, np.zeros(n_pop), np.zeros(n_pop)], 1)
    ctx.population_x = torch.from_numpy(codes.reshape(n_pop, 1, 2, 2).astype(np.uint8))

    def oracle(x):
        code = torch.round((x.flatten(1) + 1) * 127.5).long()
        i = (code[:, 0] * 256 + code[:, 1]).numpy()
        phi = torch.from_numpy(target_pop_phi[i])
        return torch.softmax(torch.stack([phi, torch.zeros_like(phi)], 1), 1).float()

    ctx.oracle = oracle
    return ctx, dict(pop_phi=pop_phi, pop_in=pop_in, cand_phi=cand_phi, target_phi=target_phi,
                     target_pop_phi=target_pop_phi)  # fmt: skip


def test_rmia_offline_uses_the_out_approximation_for_x_and_z_and_a_tuned_a():
    ctx, d = _rmia_offline_context()
    res = rmia.run_offline(ctx, augmentations=1, gamma=1.0, offline_a=None, population_samples=100, samples=40)
    a = res.info["offline_a"]
    assert res.info["offline_a_tuned"] and a in [round(v, 1) for v in np.arange(0, 1.1, 0.1)]
    # the tuning by hand: reference 0 attacked by the others on its population points, AUC per a
    z = np.sort(ctx.rng(8).choice(240, 100, replace=False))
    pr = _sig(d["pop_phi"])
    t, others = 0, [1, 2, 3]
    ins, outs = signals.balanced_indices(d["pop_in"][t], 40, ctx.rng(10))
    pidx = np.r_[ins, outs]
    zz = np.setdiff1d(z[~d["pop_in"][t][z]], pidx)  # never the pseudo-target's own training points
    assert len(zz) > 10 and not d["pop_in"][t][zz].any()

    def marginal(idx, aa):
        out = ~d["pop_in"][others][:, idx]
        return 0.5 * ((1 + aa) * (pr[others][:, idx] * out).sum(0) / out.sum(0) + 1 - aa)

    aucs = []
    for aa in np.round(np.arange(0, 1.1, 0.1), 1):
        rx = pr[t, pidx] / marginal(pidx, aa)
        rz = pr[t, zz] / marginal(zz, aa)
        sc = (rx[:, None] / rz[None] > 1).mean(1)
        aucs.append(M.auc(sc, np.r_[np.ones(len(ins), bool), np.zeros(len(outs), bool)]))
    assert a == pytest.approx(np.round(np.arange(0, 1.1, 0.1), 1)[int(np.argmax(aucs))])
    # the target's scores: Pr(x) and Pr(z) both from the OUT references with the same approximation
    prc = _sig(d["cand_phi"])
    mx = 0.5 * ((1 + a) * prc.mean(0) + 1 - a)
    out_z = ~d["pop_in"][:, z]
    mz = 0.5 * ((1 + a) * (pr[:, z] * out_z).sum(0) / out_z.sum(0) + 1 - a)
    want = ((_sig(d["target_phi"]) / mx)[:, None] / (_sig(d["target_pop_phi"][z]) / mz)[None] > 1).mean(1)
    assert res.scores == pytest.approx(want, abs=1e-6)


def _answers(rng, member, labels, k=3):
    """Probability vectors: members confident on their label, non-members less so."""
    conf = np.where(member, rng.uniform(0.85, 1.0, len(labels)), rng.uniform(0.34, 0.9, len(labels)))
    p = np.tile(((1 - conf) / (k - 1))[:, None], (1, k))
    p[np.arange(len(labels)), labels] = conf
    return p


def test_shapley_threshold_is_fitted_at_each_scenarios_composition():
    from mibench_core.membership.context import MIAContext, Reference

    rng = np.random.default_rng(9)
    n_pop, n_cand = 2000, 1200
    py, cy = rng.integers(0, 3, n_pop), rng.integers(0, 3, n_cand)
    pop_in = rng.random(n_pop) < 0.5
    cand_member = np.arange(n_cand) < 600
    sh = _answers(rng, pop_in, py)
    tgt = _answers(rng, cand_member, cy)
    logits = lambda p: torch.from_numpy(np.log(p)[None])  # noqa: E731 - softmax(log p) = p
    ref = Reference("s", "offline", logits(sh), logits(tgt), pop_in, np.zeros(n_cand, bool))
    ctx = MIAContext(
        num_classes=3, channels=1, resolution=2, device=torch.device("cpu"), seed=0, access="probabilities",
        top_k=None, oracle=None, candidates_x=torch.zeros(n_cand, 1, 2, 2, dtype=torch.uint8),
        candidates_y=torch.from_numpy(cy), population_x=torch.zeros(n_pop, 1, 2, 2), population_y=torch.from_numpy(py),
        offline=[ref],
    )  # fmt: skip
    ctx._cache[("cand", 0)] = signals.release(tgt, "probabilities")
    nonmem = np.arange(600, 1200)
    scen = {
        "balanced": {"targets": np.r_[np.arange(200), nonmem[:200]], "reference": nonmem[400:500], "n_members": 200},
        "few": {"targets": np.r_[np.arange(10), nonmem[:200]], "reference": nonmem[400:500], "n_members": 10},
    }
    ctx.scenarios = scen
    res = shapley.run(ctx, k=5, samples=None)
    th = res.info["thresholds"]
    assert set(th) == {"200/200/100", "10/200/100"} and th["200/200/100"] != th["10/200/100"]
    # each threshold: the shadow's own members and non-members at that composition, valued against as many
    # other non-members as the scenario's reference set
    released = signals.release(sh, "probabilities")
    for i, comp in enumerate([(200, 200, 100), (10, 200, 100)]):
        want = shapley.shadow_threshold(released, py, pop_in, *comp, 5, ctx.rng(15 + i))
        assert th["/".join(map(str, comp))] == pytest.approx(want)
    for sid, s in scen.items():
        v = shapley.knn_shapley(tgt[s["targets"]], cy[s["targets"]], tgt[s["reference"]], cy[s["reference"]], 5)
        tau = th[f"{s['n_members']}/200/100"]
        assert (res.per_scenario[sid]["decisions"] == (v * len(s["targets"]) >= tau)).all()


def test_merlin_noise_is_the_papers_scale_in_zero_one_units():
    # the paper adds N(0, 0.01^2) to features in [0, 1]; the model range is [-1, 1], twice as wide
    seen = []

    def answer(x):
        seen.append(x.clone())
        return np.tile([0.9, 0.1], (len(x), 1))

    x = torch.full((4, 1, 8, 8), 128, dtype=torch.uint8)
    std = ppv.METHODS[0]["defaults"]["noise_std"]
    ppv.merlin(answer, x, np.zeros(4, int), 50, std, torch.Generator().manual_seed(0))
    noise01 = (seen[1] - seen[0].repeat_interleave(50, 0)) / 2  # back to [0, 1] units
    assert float(noise01.std()) == pytest.approx(0.01, rel=0.05)
