"""Negative label smoothing (Struppek, Hintersdorf, Kersting 2024, "Be Careful
What You Smooth For: Label Smoothing Can Be a Privacy Shield but Also a
Catalyst for Model Inversion Attacks", ICLR).

Loss with smoothing factor ``a``: ``(1 - a) * NLL + a * mean_k(-log p_k)``
(cross-entropy against the smoothed target ``(1 - a) * onehot + a / K``).
A negative ``a`` pushes the non-target probabilities towards zero, which
flattens the gradients model-inversion attacks follow. Because the negative
term is unbounded below, training first runs plain cross-entropy (warm-up)
and then ramps ``a`` linearly to its final value, as the authors' code does:
zero for the first half of training, a linear ramp over the next quarter,
the full value for the last quarter (their 100-epoch schedule: 0 until epoch
50, ramp until 75).

Strength: ``alpha`` (paper: -0.05 on FaceScrub/CelebA; default -0.05).
Deviation: the schedule is expressed as fractions of training
(``warmup_fraction`` 0.5, ``ramp_fraction`` 0.25) so that it scales with the
epochs of a CPU config; the ramp is per step rather than per epoch.
"""

from __future__ import annotations

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


def smoothing_factor(alpha: float, progress: float, warmup_fraction: float, ramp_fraction: float) -> float:
    """The factor at ``progress`` (fraction of training done): 0, then a linear ramp, then ``alpha``."""
    if progress < warmup_fraction:
        return 0.0
    if ramp_fraction <= 0:
        return alpha
    return alpha * min(1.0, (progress - warmup_fraction) / ramp_fraction)


def label_smoothing_loss(logits: torch.Tensor, y: torch.Tensor, a: float) -> torch.Tensor:
    """(1 - a) * NLL + a * mean over classes of -log p_k, averaged over the batch."""
    logp = F.log_softmax(logits, dim=1)
    nll = -logp.gather(1, y[:, None]).squeeze(1)
    uniform = -logp.mean(dim=1)
    return ((1.0 - a) * nll + a * uniform).mean()


class NegativeLabelSmoothing(Defense):
    def loss(self, model, x, y, progress):
        p = self.params
        a = smoothing_factor(p["alpha"], progress, p["warmup_fraction"], p["ramp_fraction"])
        logits = model(x)
        return label_smoothing_loss(logits, y, a), logits


def negative_label_smoothing(**params) -> Defense:
    return NegativeLabelSmoothing(**params)
