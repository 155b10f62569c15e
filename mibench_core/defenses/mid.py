"""MID: mutual-information regularisation through a variational information
bottleneck (Wang, Gu, Chen, Zhang 2021, "Improving Robustness to Model
Inversion Attacks via Mutual Information Regularization", AAAI; code:
Jiachen-T-Wang/mi-defense, ``gmi/target/model.py``, ``train_vib.py``).

The layer before the classifier outputs ``mu`` and ``s`` (one linear layer,
``2k`` outputs, ``k = feat_dim // 2`` as in the authors' code); ``sigma =
softplus(s - 5)``; in training ``z = mu + sigma * eps`` with ``eps ~ N(0, I)``;
a new linear head maps ``z`` to the logits. The loss is ``CE + beta *
KL(N(mu, sigma^2) || N(0, I))``, the KL summed over the ``k`` dimensions and
averaged over the batch.

Deployment (``inference``):

* ``sampled`` (the paper setting, the default): the bottleneck is sampled at
  every call, in eval mode too, so every query and every gradient an attack
  takes goes through a fresh ``eps`` draw. This is what the authors' code
  deploys (``VGG16_vib.forward`` and ``predict`` both sample; their GMI
  attack queries the sampled output) and what the ToolBox's ``VibWrapper``
  does (ffhibnese/Model-Inversion-Attack-ToolBox).
* ``mean``: the deterministic ``fc(mu)``, the stricter evaluation (no
  gradient noise that obfuscates the attack; MID is weaker there than in
  its paper's evaluation).

The tables label which one they show through the strength
(``inference=sampled`` / ``inference=mean``). Attacks draw the noise from
the global generator their job seeds, so a run is reproducible.

Strength: ``beta`` (paper: 0.003-0.01 on CelebA and MNIST; default 0.003).
Deviations: none in the training algorithm (one ``eps`` sample per training
forward pass); with ``inference: mean`` the deployment differs from the
authors'. The saved model is the wrapped one, so ``load_classifier``
rebuilds the bottleneck (and its deployment) through ``prepare``.
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
        "defaults": {"beta": 0.003, "inference": "sampled"},
        "bounds": {"beta": "[0, inf)"},
        "choices": {"inference": ["sampled", "mean"]},
        "strength": ["beta", "inference"],
    }
]


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) per sample: 0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2)."""
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).sum(dim=1)


class VIBClassifier(Classifier):
    """A classifier whose penultimate features pass through a stochastic bottleneck."""

    def __init__(self, base: Classifier, k: int | None = None, sample_at_inference: bool = True):
        super().__init__()
        self.base = base
        self.sample_at_inference = sample_at_inference
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
        if self.training or self.sample_at_inference:
            return mu + sigma * torch.randn_like(sigma)
        return mu


class MID(Defense):
    def prepare(self, model: Classifier) -> Classifier:
        return VIBClassifier(model, sample_at_inference=self.params["inference"] == "sampled")

    def loss(self, model: VIBClassifier, x, y, progress):
        mu, sigma = model.stats(x)
        z = mu + sigma * torch.randn_like(sigma)
        logits = model.head(z)
        kl = gaussian_kl(mu, sigma).mean()
        return F.cross_entropy(logits, y) + self.params["beta"] * kl, logits


INFERENCE = ("sampled", "mean")


def mid(**params) -> Defense:
    if params.get("inference", "sampled") not in INFERENCE:
        raise ValueError(f"MID inference must be one of {list(INFERENCE)}, got {params.get('inference')!r}")
    return MID(**{"inference": "sampled", **params})
