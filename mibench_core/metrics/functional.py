"""Pure metric functions on tensors; each is tested against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import torch


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Per-sample 0/1: is the label among the top-k predictions."""
    topk = logits.topk(k, dim=1).indices
    return (topk == labels[:, None]).any(1).float()


def pairwise_sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``[len(a), len(b)]`` (float64 for stability)."""
    a, b = a.double(), b.double()
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return d.clamp_min(0)


def knn_min_sq_dist(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """For each fake feature, the minimum squared L2 distance to any real feature."""
    out = []
    for i in range(0, len(fake), 1024):
        out.append(pairwise_sq_dists(fake[i : i + 1024], real).min(1).values)
    return torch.cat(out)


def centroid_dist(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L2 distance of each fake feature to the centroid of the real features."""
    return (fake.double() - real.double().mean(0)).norm(dim=1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al. 2017).

    As in pytorch-fid, a singular product gets eps on the diagonals, and a
    numerically imaginary square root is reduced to its real part (an error
    if the imaginary part is not negligible).
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if not all(np.isfinite(a).all() for a in (mu1, sigma1, mu2, sigma2)):
        # scipy's sqrtm can run for hours on NaN input instead of failing
        raise ValueError("non-finite feature statistics")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Frechet distance: imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_stats(feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    x = feats.double().cpu().numpy()
    return x.mean(0), np.cov(x, rowvar=False)


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = 3, per_fake: bool = False):
    """Precision, recall, density, coverage (Naeem et al., ICML 2020).

    Radii are each sample's distance to its k-th nearest neighbour within
    its own set (excluding itself). With ``per_fake``, also each fake
    sample's precision (0/1: inside some real ball) and density (the number
    of real balls it is in, over k), whose means are precision and density:
    ``(values, {"precision": [F], "density": [F]})``.
    """
    d_rr = pairwise_sq_dists(real, real).sqrt()
    d_ff = pairwise_sq_dists(fake, fake).sqrt()
    d_rf = pairwise_sq_dists(real, fake).sqrt()  # [R, F]
    r_real = d_rr.kthvalue(k + 1, dim=1).values  # +1: the zero self-distance
    r_fake = d_ff.kthvalue(k + 1, dim=1).values
    in_real_ball = d_rf < r_real[:, None]  # real i's ball contains fake j
    precision = in_real_ball.any(0).double().mean().item()
    recall = (d_rf < r_fake[None, :]).any(1).double().mean().item()
    density = (1.0 / k) * in_real_ball.double().sum(0).mean().item()
    coverage = (d_rf.min(1).values < r_real).double().mean().item()
    values = {"precision": precision, "recall": recall, "density": density, "coverage": coverage}
    if not per_fake:
        return values
    return values, {"precision": in_real_ball.any(0).double(), "density": in_real_ball.double().sum(0) / k}


def frechet_distance_features(fake: torch.Tensor, real: torch.Tensor) -> float:
    """The Frechet distance between the Gaussians fitted to two feature sets, exactly.

    Same value as ``frechet_distance(*feature_stats(fake), *feature_stats(real))``
    without a d x d matrix square root: with centred features X1 [n1, d], X2
    [n2, d] and S_i = X_i^T X_i / (n_i - 1), the non-zero eigenvalues of S1 S2
    are the squared singular values of X1 X2^T / sqrt((n1 - 1)(n2 - 1)), so
    Tr((S1 S2)^(1/2)) is that matrix's nuclear norm. For InceptionV3's 2048-d
    features and a few hundred samples this takes milliseconds where
    ``scipy.linalg.sqrtm`` of the rank-deficient product takes minutes on a CPU
    and needs pytorch-fid's eps fallback.
    """
    x1, x2 = fake.double().cpu(), real.double().cpu()
    n1, n2 = len(x1), len(x2)
    if n1 < 2 or n2 < 2:
        raise ValueError("the Frechet distance needs at least 2 samples on each side")
    mu1, mu2 = x1.mean(0), x2.mean(0)
    c1, c2 = x1 - mu1, x2 - mu2
    tr1 = (c1 * c1).sum().item() / (n1 - 1)
    tr2 = (c2 * c2).sum().item() / (n2 - 1)
    cross = torch.linalg.svdvals(c1 @ c2.T).sum().item() / ((n1 - 1) * (n2 - 1)) ** 0.5
    return float(((mu1 - mu2) ** 2).sum().item() + tr1 + tr2 - 2 * cross)


def _double_centre(a: np.ndarray) -> np.ndarray:
    """H A H for a stack of square matrices (H = I - 11^T / n)."""
    return a - a.mean(axis=1, keepdims=True) - a.mean(axis=2, keepdims=True) + a.mean(axis=(1, 2), keepdims=True)


def frechet_distance_resampled(fake: torch.Tensor, real: torch.Tensor, resamples: np.ndarray) -> np.ndarray:
    """The Frechet distance of each resample of ``fake`` (rows of ``resamples``, ``[B, n]``) to ``real``.

    Exact, without a d x d square root per resample: with the real set's covariance S2 and a
    resample's centred features C1 = H X[idx] (H the centring matrix), the non-zero eigenvalues
    of S1 S2 are those of C1 S2 C1^T / (n - 1) = H Q[idx, idx] H / (n - 1), where
    Q = X C2^T C2 X^T / (m - 1) is computed once; the means and Tr S1 come from X mu2 and the Gram
    matrix X X^T the same way. So each resample costs an n x n eigendecomposition, for any feature
    dimension (tested equal to :func:`frechet_distance` on every resample).
    """
    x, y = fake.double().cpu(), real.double().cpu()
    n, m = resamples.shape[1], len(y)
    if n < 2 or m < 2:
        raise ValueError("the Frechet distance needs at least 2 samples on each side")
    mu2 = y.mean(0)
    c2 = y - mu2
    tr2 = (c2 * c2).sum().item() / (m - 1)
    k = x @ c2.T  # [N, m]
    q = (k @ k.T).numpy() / (m - 1)
    gram = (x @ x.T).numpy()
    xmu2 = (x @ mu2).numpy()
    mu2_sq = float(mu2 @ mu2)
    out = np.empty(len(resamples))
    step = max(1, (1 << 23) // (n * n))  # about 64 MB per [chunk, n, n] array
    for s in range(0, len(resamples), step):
        idx = resamples[s : s + step]
        rows = idx[:, :, None], idx[:, None, :]
        g_r, q_r = gram[rows], q[rows]  # [chunk, n, n]
        mu1_sq = g_r.mean(axis=(1, 2))
        mu1_mu2 = xmu2[idx].mean(axis=1)
        tr1 = (np.trace(g_r, axis1=1, axis2=2) - n * mu1_sq) / (n - 1)  # trace of H G H
        eig = np.linalg.eigvalsh(_double_centre(q_r))
        cross = np.sqrt(np.clip(eig, 0.0, None)).sum(axis=1) / math.sqrt(n - 1)
        out[s : s + step] = mu1_sq - 2 * mu1_mu2 + mu2_sq + tr1 + tr2 - 2 * cross
    return out
