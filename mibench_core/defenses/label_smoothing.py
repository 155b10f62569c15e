"""Negative label smoothing (Struppek, Hintersdorf, Kersting 2024, "Be Careful
What You Smooth For: Label Smoothing Can Be a Privacy Shield but Also a
Catalyst for Model Inversion Attacks", ICLR; code:
LukasStruppek/Plug-and-Play-Attacks, ``train_model.py``,
``losses/label_smoothing.py``).

Loss with smoothing factor ``a``: ``(1 - a) * NLL + a * mean_k(-log p_k)``
(cross-entropy against the smoothed target ``(1 - a) * onehot + a / K``).
A negative ``a`` pushes the non-target probabilities towards zero, which
flattens the gradients model-inversion attacks follow.

Schedule, per epoch as in the authors' ``ls_scheduler`` (100 epochs: ``a = 0``
before epoch 50, ``alpha * (e + 1 - 50) / (100 - 50)`` for epochs 50-74, the
full ``alpha`` from epoch 75 on): with ``E`` epochs, smoothing starts at
epoch ``s = round(warmup_fraction * E)``, ramps as ``alpha * (e + 1 - s) /
(E - s)`` and is ``alpha`` from epoch ``f = round((warmup_fraction +
ramp_fraction) * E)`` on (epochs 0-based; for ``E = 100`` exactly the
authors' schedule).

Checkpoint selection: best-validation selection only considers the
checkpoints trained with the defense at full strength (epochs ``>= f``), so
a checkpoint from before smoothing started is never deployed as negative
LS; the manifest records the selected epoch (``selected_epoch``) and the
smoothing factor it was trained with (``results.defense``).

Strength: ``alpha`` (paper: -0.05 on FaceScrub/CelebA; default -0.05).
Deviations: the schedule is expressed as fractions of training
(``warmup_fraction`` 0.5, ``ramp_fraction`` 0.25) so that it scales with the
epochs of a CPU config; the learning rate follows our cosine schedule
rather than the authors' MultiStepLR (decays at epochs 75 and 90), so on a
short run the smoothed epochs see a lower learning rate than in the paper;
the authors select the best validation epoch over all epochs (their best
lies in the smoothed epochs of a 100-epoch run; we enforce it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mibench_core.models.train import Defense

METHODS = [
    {
        "name": "negative-ls",
        "kind": "defense",
        "call": "negative_label_smoothing",
        "description": "negative label smoothing (Struppek et al. 2024), ramped in after a warm-up of plain CE",
        "defaults": {"alpha": -0.05, "warmup_fraction": 0.5, "ramp_fraction": 0.25},
        "bounds": {"alpha": "[-1, 1)", "warmup_fraction": "[0, 1]", "ramp_fraction": "[0, 1]"},
        "strength": ["alpha"],
    }
]


def schedule_epochs(epochs: int, warmup_fraction: float, ramp_fraction: float) -> tuple[int, int]:
    """(first smoothed epoch, first epoch at the full factor), 0-based, rounded half up."""
    start = min(epochs - 1, math.floor(warmup_fraction * epochs + 0.5))
    full = min(epochs - 1, max(start, math.floor((warmup_fraction + ramp_fraction) * epochs + 0.5)))
    return start, full


def smoothing_factor(alpha: float, epoch: int, epochs: int, warmup_fraction: float, ramp_fraction: float) -> float:
    """The factor of (0-based) ``epoch``: 0, then the authors' ramp, then ``alpha``."""
    start, full = schedule_epochs(epochs, warmup_fraction, ramp_fraction)
    if epoch < start:
        return 0.0
    if epoch >= full:
        return alpha
    return alpha * (epoch + 1 - start) / (epochs - start)


def label_smoothing_loss(logits: torch.Tensor, y: torch.Tensor, a: float) -> torch.Tensor:
    """(1 - a) * NLL + a * mean over classes of -log p_k, averaged over the batch."""
    logp = F.log_softmax(logits, dim=1)
    nll = -logp.gather(1, y[:, None]).squeeze(1)
    uniform = -logp.mean(dim=1)
    return ((1.0 - a) * nll + a * uniform).mean()


class NegativeLabelSmoothing(Defense):
    def __init__(self, **params):
        super().__init__(**params)
        self.factor = 0.0
        self.epochs = None
        self.factors: list[float] = []

    def _factor(self, epoch: int, epochs: int) -> float:
        p = self.params
        return smoothing_factor(p["alpha"], epoch, epochs, p["warmup_fraction"], p["ramp_fraction"])

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.epochs = epochs
        self.factor = self._factor(epoch, epochs)
        self.factors.append(self.factor)

    def selectable(self, epoch: int, epochs: int) -> bool:
        p = self.params
        return epoch >= schedule_epochs(epochs, p["warmup_fraction"], p["ramp_fraction"])[1]

    def loss(self, model, x, y, progress):
        logits = model(x)
        return label_smoothing_loss(logits, y, self.factor), logits

    def results(self, model, tensors, device) -> dict:
        out: dict = {"smoothing_per_epoch": list(self.factors)}
        if self.selected_epoch is not None and self.factors:
            out.update(selected_epoch=self.selected_epoch, selected_smoothing=self.factors[self.selected_epoch - 1])
        return out


def negative_label_smoothing(**params) -> Defense:
    return NegativeLabelSmoothing(**params)
