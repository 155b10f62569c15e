"""Membership attacks' building blocks against known answers."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

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
    assert rmia.rmia_scores(np.array([2.0]), np.array([1.0, 1.5, 3.0, 4.0]), gamma=2.0).tolist() == [0.25]
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
