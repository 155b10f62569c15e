"""MID: mutual-information regularisation through a variational information
bottleneck (Wang, Gu, Chen, Zhang 2021, "Improving Robustness to Model
Inversion Attacks via Mutual Information Regularization", AAAI).

The layer before the classifier outputs ``mu`` and ``s`` (one linear layer,
``2k`` outputs, ``k = feat_dim // 2`` as in the authors' code); ``sigma =
softplus(s - 5)``; in training ``z = mu + sigma * eps`` with ``eps ~ N(0, I)``,
at test time ``z = mu``; a new linear head maps ``z`` to the logits. The loss
is ``CE + beta * KL(N(mu, sigma^2) || N(0, I))``, the KL summed over the ``k``
dimensions and averaged over the batch.

Strength: ``beta`` (paper: 0.003-0.01 on CelebA and MNIST; default 0.003).
Deviations: none in the algorithm (one ``eps`` sample per training forward
pass, the mean at test time). The saved model is the wrapped one, so
``load_classifier`` rebuilds the bottleneck through ``prepare``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core.models.classifiers import Classifier
from mibench_core.models.train import Defense

METHODS = [
    {
        "name": "mid",
        "kind": "defense",
        "call": "mid",
        "description": "MID (Wang et al. 2021): variational information bottleneck before the head, CE + beta*KL",
        "defaults": {"beta": 0.003},
        "bounds": {"beta": "[0, inf)"},
        "strength": ["beta"],
    }
]


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) per sample: 0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2)."""
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).sum(dim=1)


class VIBClassifier(Classifier):
    """A classifier whose penultimate features pass through a stochastic bottleneck."""

    def __init__(self, base: Classifier, k: int | None = None):
        super().__init__()
        self.base = base
        self.k = k or max(1, base.feat_dim // 2)
        self.st_layer = nn.Linear(base.feat_dim, 2 * self.k)
        num_classes = base.fc.out_features
        base.fc = nn.Identity()  # the base's own head is replaced by ours
        self.fc = nn.Linear(self.k, num_classes)
        self.feat_dim = self.k

    def stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        st = self.st_layer(self.base.features(x))
        mu, s = st[:, : self.k], st[:, self.k :]
        return mu, F.softplus(s - 5.0)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        mu, sigma = self.stats(x)
        if self.training:
            return mu + sigma * torch.randn_like(sigma)
        return mu


class MID(Defense):
    def prepare(self, model: Classifier) -> Classifier:
        return VIBClassifier(model)

    def loss(self, model: VIBClassifier, x, y, progress):
        mu, sigma = model.stats(x)
        z = mu + sigma * torch.randn_like(sigma)
        logits = model.head(z)
        kl = gaussian_kl(mu, sigma).mean()
        return F.cross_entropy(logits, y) + self.params["beta"] * kl, logits


def mid(**params) -> Defense:
    return MID(**params)
