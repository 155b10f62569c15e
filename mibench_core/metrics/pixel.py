"""Pixel-space similarity of reconstructions to private images: PSNR, SSIM and
the SoK sample-level metrics.

Images are compared in [0, 1]: reconstructions (stored in [-1, 1]) as
``(x + 1) / 2`` clamped to [0, 1], private images as ``uint8 / 255``; the
data range is 1.

* PSNR = ``10 log10(1 / MSE)`` with the MSE over all pixels and channels
  (as ``skimage.metrics.peak_signal_noise_ratio(data_range=1)``). An exact
  copy would give infinity; the MSE is floored at 1e-10, so PSNR is capped
  at 100 dB.
* SSIM: Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from
  error visibility to structural similarity", IEEE TIP 2004, with the
  paper's Gaussian window: 11x11, sigma 1.5, K1 0.01, K2 0.03, population
  (not sample) covariances; the SSIM map is averaged over the positions
  where the whole window fits, then over channels. This is exactly
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=0)``. Images
  smaller than the window get no SSIM (missing, with the reason).

``psnr_ssim`` has two modes, named in the result's notes:

* ``per-sample``: the attack targets specific private images (its victims)
  and the reconstructions' extras say which, ``private_index`` (int64
  ``[N]``, rows of the data artifact's ``private_train_x``; the metric stage
  sets it from the victim each reconstruction names, as attacks never see
  private indices); each reconstruction is compared with its own target.
* ``nearest-in-class`` (otherwise): each reconstruction's best value over the
  private images of its class (highest SSIM; highest PSNR, i.e. lowest MSE;
  each metric picks its own nearest image). ``max_reference_per_class``
  caps the private images searched per class with a seeded random subset
  (null: all of them).

``sok``: the sample-level metrics of Wen, Liu, Backes, Zhang, "SoK: Data
Reconstruction Attacks Against Machine Learning Models: Definition,
Metrics, and Benchmark", USENIX Security 2025. Each reconstruction is matched
to its most similar target sample of the same class under d in {SSIM, PSNR,
MSE}; S-Dis_d is the mean matched value over reconstructions and coverage
alpha_d = |distinct matched targets| / |targets|. The paper requires
|D_rec| = |D_tar|; we set the target set per class: with ``private_index``
the distinct targeted private images of the class, otherwise a random subset
(seeded by the metric's seed) of the class's private images of the same size
as the class's reconstructions. If a class has fewer private images than
reconstructions, all its images are targets (and the notes say so). The
overall S-Dis averages over all reconstructions; the overall alpha pools the
classes (distinct matched targets over all targets).

Intervals: PSNR, SSIM and S-Dis are means over reconstructions and get the
stage's bootstrap interval; coverage alpha counts distinct matched targets,
which a resample (repeating reconstructions) cannot reach, so it gets none.
"""

from __future__ import annotations

import torch

from mibench_core.metrics.common import MetricContext, MetricResult
from mibench_core.metrics.functional import pairwise_sq_dists

METHODS = [
    {
        "name": "psnr_ssim",
        "kind": "metric",
        "call": "psnr_ssim",
        "description": "PSNR and Gaussian SSIM (Wang et al. 2004) to the targeted or nearest private image of the "
        "class",
        "columns": {
            "psnr": {"label": "PSNR (dB)", "better": "higher", "meaning": "closer"},
            "ssim": {"label": "SSIM", "better": "higher", "meaning": "closer"},
        },
        "defaults": {"max_reference_per_class": None},
        "bounds": {"max_reference_per_class": "[1, inf)"},
    },
    {
        "name": "sok",
        "kind": "metric",
        "call": "sok",
        "description": "SoK sample-level metrics (Wen et al. 2025): S-Dis and coverage alpha under SSIM, PSNR, MSE",
        "columns": {
            "sok_ssim": {"label": "SoK S-Dis (SSIM)", "better": "higher", "meaning": "closer"},
            "sok_psnr": {"label": "SoK S-Dis (PSNR)", "better": "higher", "meaning": "closer"},
            "sok_mse": {"label": "SoK S-Dis (MSE)", "better": "lower", "meaning": "closer"},
            "sok_alpha_ssim": {
                "label": "SoK coverage alpha (SSIM)",
                "better": "higher",
                "meaning": "more targets recovered",
            },
            "sok_alpha_psnr": {
                "label": "SoK coverage alpha (PSNR)",
                "better": "higher",
                "meaning": "more targets recovered",
            },
            "sok_alpha_mse": {
                "label": "SoK coverage alpha (MSE)",
                "better": "higher",
                "meaning": "more targets recovered",
            },
        },
    },
]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
MSE_FLOOR = 1e-10  # caps PSNR at 100 dB for an exact copy


def recon_to_unit(x: torch.Tensor) -> torch.Tensor:
    """Reconstructions in [-1, 1] -> float64 in [0, 1]."""
    return x.double().add(1.0).div(2.0).clamp(0.0, 1.0)


def uint8_to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.double().div(255.0)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(r**2) / (2 * sigma**2))
    return w / w.sum()


def _band(n: int, window: torch.Tensor) -> torch.Tensor:
    """``[n - k + 1, n]`` matrix whose rows apply the window at each valid position."""
    k = len(window)
    m = torch.zeros(n - k + 1, n, dtype=window.dtype)
    for i in range(n - k + 1):
        m[i, i : i + k] = window
    return m


def _filter(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of ``[N, C, H, W]``, valid positions only (as two matrix products:
    float64 matmuls are far faster on a CPU than float64 convolutions)."""
    window = window.to(x)
    return _band(x.shape[-2], window) @ x @ _band(x.shape[-1], window).T


def _ssim_from_stats(mu_x, mu_y, xx, yy, xy, data_range: float) -> torch.Tensor:
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    vx, vy, vxy = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * vxy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def ssim_possible(shape: tuple[int, ...], window: int = SSIM_WINDOW) -> bool:
    return shape[-1] >= window and shape[-2] >= window


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM of paired ``[N, C, H, W]`` images (float, in [0, data_range])."""
    if not ssim_possible(x.shape):
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(x.shape[-2:])}")
    x, y = x.double(), y.double()
    win = gaussian_window()
    return _ssim_from_stats(
        _filter(x, win), _filter(y, win), _filter(x * x, win), _filter(y * y, win), _filter(x * y, win), data_range
    )


def ssim_matrix(x: torch.Tensor, refs: torch.Tensor, data_range: float = 1.0, chunk: int = 512) -> torch.Tensor:
    """SSIM of every image of ``x`` [n] against every image of ``refs`` [M]: ``[n, M]``.

    The references' filtered statistics are computed once per chunk and shared by all of ``x``.
    """
    if not ssim_possible(x.shape):
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(x.shape[-2:])}")
    x = x.double()
    win = gaussian_window()
    mu_x, xx = _filter(x, win), _filter(x * x, win)
    out = torch.empty(len(x), len(refs), dtype=torch.float64)
    for start in range(0, len(refs), chunk):
        y = refs[start : start + chunk].double()
        mu_y, yy = _filter(y, win), _filter(y * y, win)
        for i in range(len(x)):
            xy = _filter(x[i : i + 1] * y, win)
            out[i, start : start + len(y)] = _ssim_from_stats(mu_x[i : i + 1], mu_y, xx[i : i + 1], yy, xy, data_range)
    return out


def mse_matrix(x: torch.Tensor, refs: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Mean squared error of every image of ``x`` against every image of ``refs``: ``[n, M]``."""
    d = x[0].numel()
    xf = x.double().reshape(len(x), -1)
    parts = [pairwise_sq_dists(xf, refs[s : s + chunk].double().reshape(-1, d)) for s in range(0, len(refs), chunk)]
    return torch.cat(parts, dim=1) / d if parts else torch.empty(len(x), 0, dtype=torch.float64)


def psnr_from_mse(mse: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    return 10.0 * torch.log10(data_range**2 / mse.clamp_min(MSE_FLOOR))


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR of paired ``[N, ...]`` images."""
    mse = (x.double() - y.double()).pow(2).reshape(len(x), -1).mean(1)
    return psnr_from_mse(mse, data_range)


def per_sample_targets(ctx: MetricContext) -> torch.Tensor | None:
    """Rows of ``ctx.private_x`` each reconstruction targets, or None when the attack names none."""
    idx = ctx.attack_extras.get("private_index")
    if idx is None:
        return None
    idx = idx.long().reshape(-1)
    if len(idx) != len(ctx.recon):
        raise ValueError(f"attack extras 'private_index' has {len(idx)} entries for {len(ctx.recon)} reconstructions")
    source = ctx.private_source_index
    if source is None:
        return idx
    pos = torch.searchsorted(source, idx).clamp_max(len(source) - 1)
    if not bool((source[pos] == idx).all()):
        raise ValueError("attack extras 'private_index' points outside the private images of the attacked classes")
    return pos


def class_references(ctx: MetricContext, c: int, cap: int | None) -> torch.Tensor:
    """Private images of class ``c`` (uint8), a seeded random subset of ``cap`` if given."""
    ref = ctx.private_x[ctx.private_y == c]
    if cap is not None and len(ref) > cap:
        ref = ref[torch.randperm(len(ref), generator=ctx.gen)[:cap]]
    return ref


def _mean(t: torch.Tensor) -> float:
    return t.mean().item()


def psnr_ssim(ctx: MetricContext, max_reference_per_class: int | None = None) -> MetricResult:
    res = MetricResult()
    x = recon_to_unit(ctx.recon)
    has_ssim = ssim_possible(x.shape)
    targets = per_sample_targets(ctx)
    p_all = torch.empty(len(x), dtype=torch.float64)
    s_all = torch.full((len(x),), float("nan"), dtype=torch.float64)
    if targets is not None:
        res.notes["psnr_ssim_mode"] = "per-sample (attack extras private_index)"
        y = uint8_to_unit(ctx.private_x[targets])
        p_all = psnr(x, y)
        if has_ssim:
            s_all = ssim(x, y)
    else:
        cap = max_reference_per_class
        res.notes["psnr_ssim_mode"] = "nearest-in-class" + (f" (seeded subset of <= {cap} per class)" if cap else "")
        for c in ctx.classes:
            m = ctx.recon_labels == c
            ref = class_references(ctx, c, cap)
            if len(ref) == 0:
                p_all[m] = float("nan")
                continue
            ref = uint8_to_unit(ref)
            p_all[m] = psnr_from_mse(mse_matrix(x[m], ref).min(1).values)
            if has_ssim:
                s_all[m] = ssim_matrix(x[m], ref).max(1).values
    for c in ctx.classes:
        m = ctx.recon_labels == c
        res.per_class[c] = {"psnr": _mean(p_all[m]), "ssim": _mean(s_all[m]) if has_ssim else None}
    res.overall["psnr"] = _mean(p_all)
    res.per_sample["psnr"] = p_all
    if has_ssim:
        res.overall["ssim"] = _mean(s_all)
        res.per_sample["ssim"] = s_all
    else:
        res.set_missing(
            "ssim", f"images of {tuple(x.shape[-2:])} are smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} window"
        )
    return res


SOK_DISTANCES = ("ssim", "psnr", "mse")


def sok_match(x: torch.Tensor, targets: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """For each d in SSIM/PSNR/MSE: (matched value per reconstruction, matched target index)."""
    mse = mse_matrix(x, targets)
    out = {}
    if ssim_possible(x.shape):
        s = ssim_matrix(x, targets)
        out["ssim"] = s.max(1)
    best = mse.min(1)
    out["psnr"] = (psnr_from_mse(best.values), best.indices)  # PSNR is monotone in MSE: same match
    out["mse"] = (best.values, best.indices)
    return {k: (v[0], v[1]) for k, v in out.items()}


SOK_ALPHA_NO_INTERVAL = (
    "counts distinct targets matched by the set of reconstructions: a resample repeats reconstructions, "
    "which match no new targets, so its bootstrap distribution is biased low; no interval"
)


def sok(ctx: MetricContext) -> MetricResult:
    res = MetricResult()
    x_all = recon_to_unit(ctx.recon)
    per_sample = per_sample_targets(ctx)
    has_ssim = ssim_possible(x_all.shape)
    values = {d: [] for d in SOK_DISTANCES}
    per_recon = {d: torch.full((len(x_all),), float("nan"), dtype=torch.float64) for d in SOK_DISTANCES}
    matched = {d: 0 for d in SOK_DISTANCES}
    n_targets = 0
    short = []
    for c in ctx.classes:
        m = ctx.recon_labels == c
        x = x_all[m]
        if per_sample is not None:
            rows = per_sample[m].unique()
        else:
            rows = torch.nonzero(ctx.private_y == c).squeeze(1)
            if len(rows) < len(x):
                short.append(c)
            rows = rows[torch.randperm(len(rows), generator=ctx.gen)[: len(x)]]
        if len(rows) == 0:
            short.append(c)
            continue
        targets = uint8_to_unit(ctx.private_x[rows])
        match = sok_match(x, targets)
        res.per_class[c] = {}
        for d in SOK_DISTANCES:
            if d not in match:
                res.per_class[c].update({f"sok_{d}": None, f"sok_alpha_{d}": None})
                continue
            val, idx = match[d]
            values[d].append(val)
            per_recon[d][m] = val.double()
            distinct = len(idx.unique())
            matched[d] += distinct
            res.per_class[c].update({f"sok_{d}": _mean(val), f"sok_alpha_{d}": distinct / len(targets)})
        n_targets += len(targets)
    for d in SOK_DISTANCES:
        if not values[d]:
            why = "images smaller than the SSIM window" if d == "ssim" and not has_ssim else "no class has targets"
            res.set_missing(f"sok_{d}", why)
            res.set_missing(f"sok_alpha_{d}", why)
            continue
        res.overall[f"sok_{d}"] = _mean(torch.cat(values[d]))
        res.overall[f"sok_alpha_{d}"] = matched[d] / n_targets
        if not torch.isnan(per_recon[d]).any():  # every reconstruction matched: S-Dis is their mean
            res.per_sample[f"sok_{d}"] = per_recon[d]
        res.ci_notes[f"sok_alpha_{d}"] = SOK_ALPHA_NO_INTERVAL
    if per_sample is not None:
        res.notes["sok_targets"] = "the distinct private images named by the attack's private_index, per class"
    else:
        res.notes["sok_targets"] = "per class, a seeded random subset of private images, as many as reconstructions"
    if short:
        res.notes["sok_short_classes"] = (
            f"classes {short} have fewer private images than reconstructions: |D_tar| < |D_rec| there"
        )
    return res
