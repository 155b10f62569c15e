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
