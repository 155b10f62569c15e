"""Output processing: what a black-box target releases instead of its full
probability vector. Pure functions on a ``[N, K]`` probability tensor
(registry kind ``output``), applied by the query oracle before the attack's
access level truncates further; the black-box access builder looks them up
through the registry like any other method
(:func:`mibench_core.attacks.blackbox.make_postprocess`). The same trained
model serves white-box rows (no processing) and black-box rows (processed).

* ``topk``: keep the ``k`` largest probabilities, zero the rest (not
  renormalised: the released numbers are the model's own).
* ``rounding``: round to ``decimals`` decimals (Fredrikson et al. 2015 studied
  rounded confidences as a countermeasure).
* ``noise``: add Gaussian noise of std ``std`` to the confidences, clip to
  [0, 1], renormalise to sum 1. Deterministic given the generator.
* ``label_only``: a one-hot vector of the argmax (the attack then sees only
  labels, whatever its access level).

A spec is ``{"name": ..., "params": {...}}`` (or ``None`` / ``"none"`` for
no processing); the names and defaults are in this module's ``METHODS``
literal. An entry's callable takes the probabilities and its parameters as
keywords; one that declares ``gen`` also receives a random stream of its own.
"""

from __future__ import annotations

import torch

METHODS = [
    {
        "name": "topk",
        "kind": "output",
        "call": "top_k",
        "description": "keep the k largest probabilities, zero the rest (not renormalised)",
        "defaults": {"k": 1},
        "bounds": {"k": "[1, inf)"},
    },
    {
        "name": "rounding",
        "kind": "output",
        "call": "rounding",
        "description": "round every probability to a number of decimals",
        "defaults": {"decimals": 2},
        "bounds": {"decimals": "[0, inf)"},
    },
    {
        "name": "noise",
        "kind": "output",
        "call": "confidence_noise",
        "description": "add N(0, std^2) noise to the probabilities, clip to [0, 1], renormalise",
        "defaults": {"std": 0.01},
        "bounds": {"std": "[0, inf)"},
    },
    {
        "name": "label_only",
        "kind": "output",
        "call": "label_only",
        "description": "return only the predicted label, as a one-hot vector",
    },
]


def top_k(probs: torch.Tensor, k: int) -> torch.Tensor:
    if k < 1:
        raise ValueError(f"top-k needs k >= 1, got {k}")
    k = min(k, probs.shape[1])
    idx = probs.topk(k, dim=1).indices
    return torch.zeros_like(probs).scatter(1, idx, probs.gather(1, idx))


def rounding(probs: torch.Tensor, decimals: int) -> torch.Tensor:
    return torch.round(probs, decimals=decimals)


def confidence_noise(probs: torch.Tensor, std: float, gen: torch.Generator | None = None) -> torch.Tensor:
    noise = torch.randn(probs.shape, generator=gen, dtype=probs.dtype).to(probs.device) * std
    noisy = (probs + noise).clamp(0.0, 1.0)
    total = noisy.sum(dim=1, keepdim=True)
    # an all-zero row (possible for huge noise) falls back to uniform
    uniform = torch.full_like(noisy, 1.0 / probs.shape[1])
    return torch.where(total > 0, noisy / total.clamp_min(1e-12), uniform)


def label_only(probs: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(probs).scatter(1, probs.argmax(dim=1, keepdim=True), 1.0)
