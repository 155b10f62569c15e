"""Label-only attack (Choquette-Choo, Tramer, Carlini, Papernot 2021, "Label-only membership inference
attacks", ICML): robustness of the predicted label to augmentation and noise.

The target answers labels only (access ``label``: the oracle returns the
arg-max class and nothing else). Each candidate is queried as is and under
every translation by ``max_shift`` pixels (all shifts ``(i, j)`` with
``|i| + |j| = max_shift``, the paper's translation attack: ``4 d + 1``
queries) and, when ``noise_samples`` > 0, under that many Gaussian
perturbations of standard deviation ``noise_std`` (in the model's [-1, 1]
range; the paper's noise-robustness attack); the feature vector says which of
those predictions equal the true label. Members are classified correctly more
robustly. An attack model (logistic regression, as the paper's "simple attack
model") is trained on the same vectors of ``shadows`` offline shadow models
(the attacker's own, queried the same way, labels only) on ``samples`` of their
members and as many non-members. Member when its probability is at least 1/2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mibench_core.data.common import to_model_range
from mibench_core.membership.attacks.common import require, shadow_sets
from mibench_core.membership.context import MIAContext, MIAResult
from mibench_core.membership.signals import shift_images, softmax, train_classifier

METHODS = [
    {
        "name": "label-only",
        "kind": "mia",
        "call": "run",
        "description": "Label-only (Choquette-Choo et al. 2021): label robustness to shifts / noise, labels only",
        "defaults": {"max_shift": 1, "noise_samples": 0, "noise_std": 0.1, "shadows": 1, "samples": 1000},
        "bounds": {"max_shift": "[0, inf)", "noise_samples": "[0, inf)", "noise_std": "[0, inf)"},
        "access": "label",
        "aux": ["offline"],
    }
]


def offsets(d: int) -> list[tuple[int, int]]:
    """The identity and every translation with ``|i| + |j| == d`` (``4 d`` of them)."""
    if d == 0:
        return [(0, 0)]
    ring = {(i, s * (d - abs(i))) for i in range(-d, d + 1) for s in (1, -1)}
    return [(0, 0), *sorted(ring)]


def correctness(
    predict: Callable[[torch.Tensor], np.ndarray],
    x_uint8: torch.Tensor,
    y: np.ndarray,
    shifts: list[tuple[int, int]],
    noise_samples: int,
    noise_std: float,
    gen: torch.Generator,
    batch: int = 512,
) -> np.ndarray:
    """``[n, Q]`` bool: is each query's predicted label the true label (shifts, then noisy copies)."""
    cols = []
    for i in range(0, len(x_uint8), batch):
        xb = to_model_range(x_uint8[i : i + batch])
        yb = y[i : i + batch]
        parts = [predict(shift_images(xb, dx, dy)) == yb for dx, dy in shifts]
        for _ in range(noise_samples):
            noisy = (xb + noise_std * torch.randn(xb.shape, generator=gen)).clamp(-1, 1)
            parts.append(predict(noisy) == yb)
        cols.append(np.stack(parts, axis=1))
    return np.concatenate(cols).astype(np.float64)


def run(
    ctx: MIAContext, max_shift: int, noise_samples: int, noise_std: float, shadows: int | None, samples: int | None
) -> MIAResult:
    require(ctx.offline, 1, "label-only")
    moves = offsets(int(max_shift))
    gen = torch.Generator().manual_seed(ctx.seed)
    y = ctx.candidates_y.numpy()
    target_vec = correctness(ctx.query_float, ctx.candidates_x, y, moves, noise_samples, noise_std, gen)
    f_in, f_out = [], []
    py = ctx.population_y.numpy()
    for ref, ins, outs in shadow_sets(ctx, ctx.offline[: shadows or len(ctx.offline)], samples, salt=13):
        model = ref.model(ctx.device)

        @torch.no_grad()
        def predict(x, model=model):
            return ctx.release(softmax(model(x.to(ctx.device)).cpu()))

        for idx, out in ((ins, f_in), (outs, f_out)):
            xs = ctx.population_x[torch.from_numpy(idx)]
            out.append(correctness(predict, xs, py[idx], moves, noise_samples, noise_std, gen))
    f_in, f_out = np.concatenate(f_in), np.concatenate(f_out)
    clf = train_classifier(f_in, f_out, ctx.seed, "logistic")
    score = clf.predict_proba(target_vec)[:, 1]
    return MIAResult(score, score >= 0.5, info={"queries_per_candidate": len(moves) + noise_samples,
                                                "shadow_points": len(f_in) + len(f_out)})  # fmt: skip
