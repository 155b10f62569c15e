"""Signals and fitting helpers shared by the membership-inference attacks.

* augmented queries: shifts of the image by whole pixels (reflect padding),
  the same transformation the training code's augmentation applies
  (:func:`mibench_core.models.train.augment_batch`), in a fixed order:
  index 0 is the image itself, then (+1, 0), (-1, 0), (0, +1), (0, -1),
  the four diagonal shifts, then shifts by 2, ...;
* per-example signals of a probability vector ``p`` and label ``y``: the
  cross-entropy loss ``-log p_y``, LiRA's logit-scaled confidence
  ``log p_y - log sum_{j != y} p_j``, Song & Mittal's modified entropy;
* what an attacker sees of its *own* shadow models: their softmax passed
  through the target API's output processing and access truncation
  (:func:`release`), exactly as the query oracle treats the target;
* thresholds fitted on shadow members / non-members (Song & Mittal's rule:
  the candidate value maximising balanced accuracy), globally or per class;
* small attack classifiers (scikit-learn MLP / logistic regression).

Every signal is computed in float64 from the released (float32) vector as
log-probabilities: the sum of the classes other than ``y`` is the sum of
their entries (never ``1 - p_y`` or ``p.sum() - p_y``, which round to 0 once
``p_y`` rounds to 1), ``log p_y = log1p(-sum_{j != y} p_j)`` for confident
answers, so the loss, LiRA's signal and the modified entropy keep their exact
values at logit margins up to ~100 (where float32 entries underflow);
logarithms are floored at 1e-30 (Song & Mittal's constant) for entries that
are exactly 0 (top-k truncation).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from mibench_core.attacks.oracle import truncate_top_k
from mibench_core.data.common import to_model_range

TINY = 1e-30


def shifts(n: int) -> list[tuple[int, int]]:
    """The first ``n`` augmentation offsets (dx, dy); index 0 is the identity."""
    out = [(0, 0)]
    radius = 1
    while len(out) < n:
        ring = [(radius, 0), (-radius, 0), (0, radius), (0, -radius)]
        ring += [(radius, radius), (-radius, -radius), (radius, -radius), (-radius, radius)]
        out += ring
        radius += 1
    return out[:n]


def shift_images(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate ``[N, C, H, W]`` by (dx, dy) pixels with reflect padding (content moves right / down)."""
    if dx == 0 and dy == 0:
        return x
    pad = max(abs(dx), abs(dy))
    h, w = x.shape[-2:]
    if pad >= min(h, w):
        raise ValueError(f"a shift of {pad} pixels needs images larger than {h}x{w}")
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    top, left = pad - dy, pad - dx
    return padded[..., top : top + h, left : left + w]


def augment(x: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th augmentation of images in model range."""
    dx, dy = shifts(k + 1)[k]
    return shift_images(x, dx, dy)


@torch.no_grad()
def model_probs(
    model: torch.nn.Module, x_uint8: torch.Tensor, device: torch.device, aug: int = 0, batch: int = 1024
) -> np.ndarray:
    """Softmax of a model (the attacker's own) on uint8 images under augmentation ``aug``, float64 ``[N, K]``."""
    model.eval()
    out = []
    for i in range(0, len(x_uint8), batch):
        xb = augment(to_model_range(x_uint8[i : i + batch]).to(device), aug)
        out.append(F.softmax(model(xb).double(), dim=1).cpu())
    if not out:
        return np.zeros((0, 0))
    return torch.cat(out).numpy()


def release(
    probs: np.ndarray,
    access: str,
    top_k: int | None = None,
    postprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> np.ndarray:
    """What the target API would return for these probabilities (output processing, then truncation).

    Mirrors :class:`mibench_core.attacks.oracle.Oracle`: ``label`` access gives int64 labels ``[N]``."""
    t = torch.from_numpy(np.asarray(probs, dtype=np.float32))
    if postprocess is not None:
        t = postprocess(t)
    if access == "label":
        return t.argmax(1).numpy().astype(np.int64)
    if access == "top-k":
        t = truncate_top_k(t, int(top_k))
    return t.double().numpy()


def softmax(logits: np.ndarray | torch.Tensor) -> np.ndarray:
    t = torch.as_tensor(logits).double()
    return F.softmax(t, dim=-1).numpy()


def true_prob(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.asarray(p, dtype=np.float64)[np.arange(len(y)), np.asarray(y)]


def rest_prob(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``sum_{j != y} p_j``: the other entries summed (the label's entry zeroed), never ``p.sum() - p_y``.

    A float32 answer whose ``p_y`` rounds to 1 still carries the other entries to full relative precision
    (Carlini et al.'s ``score.py`` sums them the same way)."""
    q = np.array(p, dtype=np.float64, copy=True)
    q[np.arange(len(y)), np.asarray(y)] = 0.0
    return q.sum(1)


def log_true_prob(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``log p_y`` in float64 from the released vector: ``log1p(-sum_{j != y} p_j)`` where ``p_y > 1/2``
    (where the rounding of ``p_y`` itself hides the value), ``log p_y`` elsewhere (floored)."""
    py, rest = true_prob(p, y), rest_prob(p, y)
    near_one = py > 0.5
    out = np.log(np.maximum(py, TINY))
    out[near_one] = np.log1p(-np.minimum(rest[near_one], 0.5))
    return out


def ce_loss(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cross-entropy ``-log p_y`` (:func:`log_true_prob`: exact for confident answers, floored at 1e-30)."""
    return -log_true_prob(p, y)


def logit_confidence(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LiRA's logit scaling ``log p_y - log sum_{j != y} p_j`` (Carlini et al. 2022), the sum over the other
    entries (:func:`rest_prob`), both terms floored at 1e-30."""
    return log_true_prob(p, y) - np.log(np.maximum(rest_prob(p, y), TINY))


def m_entropy(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Song & Mittal's modified entropy: ``-(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j)``.

    ``1 - p_y`` is the other entries' sum where ``p_y > 1/2``; ``log(1 - p_j)`` is ``log1p(-p_j)``, or for a
    wrong class with ``p_j > 1/2`` the log of the sum of the entries other than ``j``."""
    p = np.asarray(p, dtype=np.float64)
    rows, y = np.arange(len(y)), np.asarray(y)
    py, rest = true_prob(p, y), rest_prob(p, y)
    one_minus_py = np.where(py > 0.5, rest, 1.0 - py)
    log_rev = np.log1p(-np.minimum(p, 0.5))  # exact for p_j <= 1/2
    top = p.argmax(1)
    big = (p[rows, top] > 0.5) & (top != y)
    if big.any():
        log_rev[rows[big], top[big]] = np.log(np.maximum(rest_prob(p[big], top[big]), TINY))
    log_rev[rows, y] = 0.0
    return -one_minus_py * log_true_prob(p, y) - (p * log_rev).sum(1)


def sorted_desc(p: np.ndarray) -> np.ndarray:
    return -np.sort(-np.asarray(p, dtype=np.float64), axis=1)


def fit_threshold(in_values: np.ndarray, out_values: np.ndarray) -> float:
    """Song & Mittal's threshold: the value ``t`` maximising ``(P_in[v >= t] + P_out[v < t]) / 2``.

    Members are assumed to have *higher* values (negate a loss first). With
    no values on one side the threshold is the median of the other."""
    in_values, out_values = np.asarray(in_values, float), np.asarray(out_values, float)
    if len(in_values) == 0 or len(out_values) == 0:
        both = np.concatenate([in_values, out_values])
        return float(np.median(both)) if len(both) else 0.0
    cand = np.unique(np.concatenate([in_values, out_values]))
    ins, outs = np.sort(in_values), np.sort(out_values)
    tpr = 1.0 - np.searchsorted(ins, cand, side="left") / len(ins)  # P_in[v >= t]
    tnr = np.searchsorted(outs, cand, side="left") / len(outs)  # P_out[v < t]
    best = int(np.argmax(tpr + tnr))
    return float(cand[best])


def fit_class_thresholds(
    in_values: np.ndarray, in_y: np.ndarray, out_values: np.ndarray, out_y: np.ndarray, num_classes: int
) -> np.ndarray:
    """One :func:`fit_threshold` per class (Song & Mittal); a class without shadow values gets the global one."""
    glob = fit_threshold(in_values, out_values)
    out = np.full(num_classes, glob)
    for c in range(num_classes):
        a, b = in_values[in_y == c], out_values[out_y == c]
        if len(a) and len(b):
            out[c] = fit_threshold(a, b)
    return out


def train_classifier(features_in: np.ndarray, features_out: np.ndarray, seed: int, kind: str = "mlp", **kw):
    """An attack classifier on shadow members (label 1) vs non-members (label 0); returns a fitted estimator."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([features_in, features_out]).astype(np.float64)
    y = np.r_[np.ones(len(features_in)), np.zeros(len(features_out))]
    if kind == "mlp":
        est = MLPClassifier(
            hidden_layer_sizes=tuple(kw.get("hidden", (64,))),
            max_iter=int(kw.get("max_iter", 200)),
            learning_rate_init=float(kw.get("lr", 1e-3)),
            random_state=seed % (2**31),
        )
    else:
        est = LogisticRegression(max_iter=1000)
    model = make_pipeline(StandardScaler(), est)
    model.fit(x, y)
    return model


def balanced_indices(mask: np.ndarray, n: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` random indices where ``mask`` is true and as many where it is false (equal counts)."""
    ins, outs = np.flatnonzero(mask), np.flatnonzero(~mask)
    k = min(len(ins), len(outs)) if n is None else min(n, len(ins), len(outs))
    return np.sort(rng.choice(ins, k, replace=False)), np.sort(rng.choice(outs, k, replace=False))
