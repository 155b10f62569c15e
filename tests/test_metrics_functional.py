"""metrics/functional.py against independent computations."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from mibench_core.metrics.functional import (
    centroid_dist,
    feature_stats,
    frechet_distance,
    frechet_distance_features,
    knn_min_sq_dist,
    prdc,
    topk_accuracy,
)


def _direct_frechet(x: np.ndarray, y: np.ndarray) -> float:
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_matches_direct_scipy_computation_on_random_features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    y = rng.normal(loc=0.5, scale=1.5, size=(150, 6)) @ rng.normal(size=(6, 6))
    got = frechet_distance(*feature_stats(torch.from_numpy(x)), *feature_stats(torch.from_numpy(y)))
    assert got == pytest.approx(_direct_frechet(x, y), rel=1e-8)
    assert got > 1.0


def test_frechet_distance_of_two_1d_gaussians_is_the_closed_form():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2
    m1, s1, m2, s2 = 0.3, 2.0, -1.2, 0.5
    got = frechet_distance(np.array([m1]), np.array([[s1**2]]), np.array([m2]), np.array([[s2**2]]))
    assert got == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-12)


def test_frechet_distance_of_commuting_diagonal_covariances():
    mu1, mu2 = np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0, 5.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_of_identical_sets_is_zero_even_when_singular():
    x = torch.randn(5, 12, generator=torch.Generator().manual_seed(1))  # 5 samples, 12 dims: singular
    assert abs(frechet_distance(*feature_stats(x), *feature_stats(x))) < 1e-5


def _brute_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Naeem et al. 2020, eqs. (1)-(4), with explicit loops."""

    def dist(a, b):
        return math.sqrt(sum((ai - bi) ** 2 for ai, bi in zip(a, b)))

    def knn_radius(points, i):
        ds = sorted(dist(points[i], points[j]) for j in range(len(points)) if j != i)
        return ds[k - 1]

    r_real = [knn_radius(real, i) for i in range(len(real))]
    r_fake = [knn_radius(fake, j) for j in range(len(fake))]
    precision = sum(any(dist(f, real[i]) < r_real[i] for i in range(len(real))) for f in fake) / len(fake)
    recall = sum(any(dist(r, fake[j]) < r_fake[j] for j in range(len(fake))) for r in real) / len(real)
    density = sum(sum(dist(f, real[i]) < r_real[i] for i in range(len(real))) for f in fake) / (k * len(fake))
    coverage = sum(min(dist(real[i], f) for f in fake) < r_real[i] for i in range(len(real))) / len(real)
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("k", [1, 3])
def test_prdc_matches_brute_force_loops(k):
    g = torch.Generator().manual_seed(3)
    real = torch.randn(23, 4, generator=g)
    fake = torch.randn(17, 4, generator=g) * 1.3 + 0.4
    got = prdc(real, fake, k)
    expected = _brute_prdc(real.double().numpy(), fake.double().numpy(), k)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert 0 < got["precision"] < 1 and 0 < got["coverage"] < 1


def test_prdc_of_a_set_against_itself():
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(4))
    got = prdc(x, x, 3)
    # every fake sits at a real centre (distance 0 < radius): precision, recall, coverage are 1
    assert got["precision"] == 1 and got["recall"] == 1 and got["coverage"] == 1


def test_knn_min_sq_dist_matches_a_double_loop():
    g = torch.Generator().manual_seed(5)
    fake, real = torch.randn(7, 5, generator=g), torch.randn(11, 5, generator=g)
    expected = [min(float(((f - r) ** 2).sum()) for r in real) for f in fake]
    assert knn_min_sq_dist(fake, real).tolist() == pytest.approx(expected, rel=1e-6)


def test_knn_min_sq_dist_chunks_beyond_1024_rows():
    g = torch.Generator().manual_seed(6)
    fake, real = torch.randn(1030, 3, generator=g), torch.randn(9, 3, generator=g)
    expected = ((fake[:, None, :].double() - real[None].double()) ** 2).sum(-1).min(1).values
    assert torch.allclose(knn_min_sq_dist(fake, real), expected)


def test_centroid_dist_matches_a_loop():
    g = torch.Generator().manual_seed(7)
    fake, real = torch.randn(4, 3, generator=g), torch.randn(6, 3, generator=g)
    centre = [sum(float(r[d]) for r in real) / len(real) for d in range(3)]
    expected = [math.sqrt(sum((float(f[d]) - centre[d]) ** 2 for d in range(3))) for f in fake]
    assert centroid_dist(fake, real).tolist() == pytest.approx(expected, rel=1e-9)


def test_topk_accuracy_on_hand_checked_logits():
    logits = torch.tensor(
        [
            [0.1, 0.9, 0.0, 0.5],  # ranking 1, 3, 0, 2
            [2.0, 1.0, 3.0, 0.0],  # ranking 2, 0, 1, 3
            [0.0, 0.0, 0.1, 0.2],  # ranking 3, 2, then 0/1
        ]
    )
    labels = torch.tensor([1, 0, 0])
    assert topk_accuracy(logits, labels, 1).tolist() == [1.0, 0.0, 0.0]
    assert topk_accuracy(logits, labels, 2).tolist() == [1.0, 1.0, 0.0]
    assert topk_accuracy(logits, torch.tensor([2, 3, 3]), 3).tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("n1,n2,d", [(40, 60, 5), (6, 9, 20), (3, 30, 12)])
def test_frechet_distance_from_features_equals_the_sqrtm_formula(n1, n2, d):
    # covers full-rank covariances and the rank-deficient case of FID (fewer samples than dimensions)
    g = torch.Generator().manual_seed(n1 + d)
    fake = torch.randn(n1, d, generator=g, dtype=torch.float64) * 0.7 + 0.3
    real = torch.randn(n2, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64)
    expected = _direct_frechet(fake.numpy(), real.numpy())
    assert frechet_distance_features(fake, real) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert frechet_distance_features(real, real) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_refuses_non_finite_statistics_at_once():
    # scipy's sqrtm can run for hours on NaN input (seen on a diverged attack's features)
    mu, sigma = np.zeros(3), np.eye(3)
    bad = sigma.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(mu, bad, mu, sigma)
