"""The metric stage's own metrics (accuracy, feature-space) on a known evaluation model."""

import torch
from torch import nn

from mibench_core.metrics import accuracy, feature_space
from mibench_core.metrics.common import MetricContext


class IdentityEval(nn.Module):
    """Features = the flattened image; logits pick class by argmax of the first pixels."""

    def features(self, x):
        return x.flatten(1)

    def head(self, f):
        return f[:, :3]


def ctx(recon, labels, private, plabels):
    return MetricContext(recon, labels, private, plabels, IdentityEval(), torch.device("cpu"), torch.Generator())


def test_accuracy_and_missing_acc5():
    recon = torch.zeros(4, 1, 1, 3)
    recon[0, 0, 0, 0] = recon[1, 0, 0, 1] = recon[2, 0, 0, 0] = recon[3, 0, 0, 2] = 1
    labels = torch.tensor([0, 1, 1, 2])
    res = accuracy.compute(ctx(recon, labels, torch.zeros(1, 1, 1, 3, dtype=torch.uint8), torch.tensor([0])))
    assert res.overall["acc1"] == 0.75
    assert res.per_class[1]["acc1"] == 0.5
    assert res.overall["acc5"] is None and "top-5" in res.missing["acc5"]


def test_knn_and_feature_distance_use_the_class_of_each_reconstruction():
    # private (uint8) maps to [-1, 1]: 0 -> -1, 255 -> 1
    private = torch.tensor([[0, 0], [255, 255], [0, 255]], dtype=torch.uint8).view(3, 1, 1, 2)
    plabels = torch.tensor([0, 0, 1])
    recon = torch.tensor([[-1.0, -0.5], [0.0, 1.0]]).view(2, 1, 1, 2)
    labels = torch.tensor([0, 1])
    c = ctx(recon, labels, private, plabels)
    knn = feature_space.knn_distance(c)
    # class 0: nearest of (-1,-1),(1,1) to (-1,-.5) is (-1,-1): 0.25 ; class 1: (0,1) vs (-1,1): 1
    assert abs(knn.per_class[0]["knn_dist"] - 0.25) < 1e-9 and abs(knn.overall["knn_dist"] - 0.625) < 1e-9
    fd = feature_space.feature_distance(c)
    # class 0 centroid (0,0): |(-1,-.5)| = sqrt(1.25)
    assert abs(fd.per_class[0]["feat_dist"] - 1.25**0.5) < 1e-9


def test_eval_frechet_is_exact_and_takes_no_matrix_square_root(monkeypatch):
    """High-dimensional features, a few reconstructions a class: the d x d sqrtm of the rank-deficient
    covariance product took tens of seconds a class with the face models' 512-d features."""
    import scipy.linalg

    from mibench_core.metrics.functional import feature_stats, frechet_distance

    g = torch.Generator().manual_seed(0)
    recon = torch.rand(6, 2, 8, 8, generator=g) * 2 - 1  # 128 features per image
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    private = torch.randint(0, 256, (10, 2, 8, 8), generator=g, dtype=torch.uint8)
    plabels = torch.tensor([0] * 5 + [1] * 5)
    c = ctx(recon, labels, private, plabels)
    fake, real = recon.flatten(1), private.float().div(127.5).sub(1).flatten(1)
    expected = {"all": frechet_distance(*feature_stats(fake), *feature_stats(real))}
    for k in (0, 1):
        expected[k] = frechet_distance(*feature_stats(fake[labels == k]), *feature_stats(real[plabels == k]))

    def refuse(*_a, **_k):
        raise AssertionError("eval_frechet called scipy.linalg.sqrtm")

    monkeypatch.setattr(scipy.linalg, "sqrtm", refuse)
    res = feature_space.eval_frechet(c)
    assert abs(res.overall["eval_fd"] - expected["all"]) < 1e-6 * expected["all"]
    for k in (0, 1):
        assert abs(res.per_class[k]["eval_fd"] - expected[k]) < 1e-6 * expected[k]


def test_eval_frechet_missing_with_a_reason():
    recon = torch.zeros(3, 1, 1, 2)
    recon[2] = float("nan")
    labels = torch.tensor([0, 1, 1])
    private = torch.zeros(4, 1, 1, 2, dtype=torch.uint8)
    res = feature_space.eval_frechet(ctx(recon, labels, private, torch.tensor([0, 0, 1, 1])))
    assert res.per_class[0]["eval_fd"] is None  # one reconstruction: fewer than 2 samples
    assert res.overall["eval_fd"] is None and "non-finite" in res.missing["eval_fd"]
