"""PSNR / SSIM / SoK metrics against scikit-image and brute-force loops."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mibench_core.metrics.pixel import mse_matrix, psnr, psnr_ssim, sok, ssim, ssim_matrix
from tests.pretrained import metric_ctx, metric_data


def sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The reference: Wang et al.'s Gaussian SSIM as scikit-image computes it; a, b: [C, H, W] in [0, 1]."""
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=0
    )


def sk_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return peak_signal_noise_ratio(a, b, data_range=1.0)


def make_ctx(recon, labels, private_x, private_y, extras=None, source_index=None, seed=0):
    return metric_ctx(recon, labels, private_x, private_y, extras=extras, source_index=source_index, seed=seed)


def unit(x_model: torch.Tensor) -> np.ndarray:
    return x_model.double().add(1).div(2).clamp(0, 1).numpy()


@pytest.mark.parametrize("shape", [(4, 1, 16, 16), (3, 3, 20, 13), (2, 1, 11, 11)])
def test_ssim_and_psnr_match_scikit_image(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    y = (x + 0.15 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    got_s, got_p = ssim(x, y), psnr(x, y)
    for i in range(shape[0]):
        assert got_s[i].item() == pytest.approx(sk_ssim(x[i].numpy(), y[i].numpy()), abs=1e-10)
        assert got_p[i].item() == pytest.approx(sk_psnr(x[i].numpy(), y[i].numpy()), abs=1e-10)


def test_ssim_matrix_and_mse_matrix_match_pairwise_computation():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 14, 14, generator=g, dtype=torch.float64)
    refs = torch.rand(7, 1, 14, 14, generator=g, dtype=torch.float64)
    s, m = ssim_matrix(x, refs, chunk=3), mse_matrix(x, refs, chunk=4)
    for i in range(3):
        for j in range(7):
            assert s[i, j].item() == pytest.approx(sk_ssim(x[i].numpy(), refs[j].numpy()), abs=1e-10)
            assert m[i, j].item() == pytest.approx(((x[i] - refs[j]) ** 2).mean().item(), rel=1e-9)


def test_ssim_of_identical_images_is_one_and_psnr_is_capped():
    x = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(psnr(x, x), torch.full((2,), 100.0, dtype=torch.float64))


def _data(seed=3, res=16, n_per_class=3, m_per_class=6, classes=(0, 1)):
    return metric_data(res, n_per_class, m_per_class, classes, seed)


def test_psnr_ssim_nearest_in_class_matches_a_brute_force_loop():
    recon, labels, px, py = _data()
    # make reconstruction 0 a noisy copy of private image 4 (class 0): it must be found as the nearest
    recon[0] = (px[4].float() / 127.5 - 1) + 0.05 * torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(9))
    res = psnr_ssim(make_ctx(recon, labels, px, py))
    assert res.notes["psnr_ssim_mode"].startswith("nearest-in-class")
    best_s, best_p = [], []
    for i in range(len(recon)):
        refs = [px[j].double().numpy() / 255 for j in range(len(px)) if py[j] == labels[i]]
        best_s.append(max(sk_ssim(unit(recon[i]), r) for r in refs))
        best_p.append(max(sk_psnr(unit(recon[i]), r) for r in refs))
    assert res.overall["ssim"] == pytest.approx(np.mean(best_s), abs=1e-10)
    assert res.overall["psnr"] == pytest.approx(np.mean(best_p), abs=1e-10)
    assert res.per_class[1]["ssim"] == pytest.approx(np.mean(best_s[3:]), abs=1e-10)
    assert best_s[0] > 0.9


def test_psnr_ssim_per_sample_uses_private_index_of_the_data_artifact():
    recon, labels, px, py = _data()
    # the data artifact's private_train_x has extra rows of an unattacked class before ours
    source_index = torch.arange(len(px)) * 2 + 1
    targets = torch.tensor([3, 1, 5, 7, 9, 11])  # data-artifact rows: ctx rows 1, 0, 2, 3, 4, 5
    extras = {"private_index": targets}
    res = psnr_ssim(make_ctx(recon, labels, px, py, extras, source_index))
    assert res.notes["psnr_ssim_mode"].startswith("per-sample")
    rows = [1, 0, 2, 3, 4, 5]
    exp_s = [sk_ssim(unit(recon[i]), px[r].double().numpy() / 255) for i, r in enumerate(rows)]
    exp_p = [sk_psnr(unit(recon[i]), px[r].double().numpy() / 255) for i, r in enumerate(rows)]
    assert res.overall["ssim"] == pytest.approx(np.mean(exp_s), abs=1e-10)
    assert res.overall["psnr"] == pytest.approx(np.mean(exp_p), abs=1e-10)


def test_psnr_ssim_rejects_private_index_outside_the_attacked_classes():
    recon, labels, px, py = _data()
    extras = {"private_index": torch.tensor([0, 2, 4, 6, 8, 999])}
    with pytest.raises(ValueError, match="private_index"):
        psnr_ssim(make_ctx(recon, labels, px, py, extras, torch.arange(len(px)) * 2))


def test_ssim_is_missing_with_a_reason_on_images_smaller_than_the_window():
    recon, labels, px, py = _data(res=8)
    res = psnr_ssim(make_ctx(recon, labels, px, py))
    assert res.overall["ssim"] is None and "11x11" in res.missing["ssim"]
    assert res.overall["psnr"] is not None


def test_psnr_ssim_reference_cap_searches_a_seeded_subset():
    recon, labels, px, py = _data()
    a = psnr_ssim(make_ctx(recon, labels, px, py, seed=1), max_reference_per_class=2)
    b = psnr_ssim(make_ctx(recon, labels, px, py, seed=1), max_reference_per_class=2)
    full = psnr_ssim(make_ctx(recon, labels, px, py))
    assert a.overall == b.overall
    assert a.overall["psnr"] <= full.overall["psnr"] + 1e-12
    assert "<= 2" in a.notes["psnr_ssim_mode"]


def _brute_sok(recon, labels, px, targets_by_class):
    """Wen et al.: match each reconstruction to its most similar target of the class; loops and scikit-image."""
    vals = {"ssim": [], "psnr": [], "mse": []}
    matched = {"ssim": 0, "psnr": 0, "mse": 0}
    n_t = 0
    for c, rows in targets_by_class.items():
        tgt = [px[r].double().numpy() / 255 for r in rows]
        picks = {"ssim": set(), "psnr": set(), "mse": set()}
        for i in range(len(recon)):
            if labels[i] != c:
                continue
            x = unit(recon[i])
            s = [sk_ssim(x, t) for t in tgt]
            p = [sk_psnr(x, t) for t in tgt]
            m = [float(((x - t) ** 2).mean()) for t in tgt]
            for name, scores, best in (("ssim", s, np.argmax), ("psnr", p, np.argmax), ("mse", m, np.argmin)):
                j = int(best(scores))
                vals[name].append(scores[j])
                picks[name].add(j)
        for name in picks:
            matched[name] += len(picks[name])
        n_t += len(rows)
    return {n: np.mean(v) for n, v in vals.items()}, {n: matched[n] / n_t for n in matched}


def test_sok_matches_brute_force_with_the_same_random_target_subset():
    recon, labels, px, py = _data(n_per_class=3, m_per_class=6)
    res = sok(make_ctx(recon, labels, px, py, seed=5))
    # the target subset the metric draws: per class, randperm of the class's rows, as many as reconstructions
    g = torch.Generator().manual_seed(5)
    targets = {}
    for c in (0, 1):
        rows = torch.nonzero(py == c).squeeze(1)
        targets[c] = rows[torch.randperm(len(rows), generator=g)[:3]].tolist()
    sdis, alpha = _brute_sok(recon, labels, px, targets)
    for d in ("ssim", "psnr", "mse"):
        assert res.overall[f"sok_{d}"] == pytest.approx(sdis[d], abs=1e-10), d
        assert res.overall[f"sok_alpha_{d}"] == pytest.approx(alpha[d], abs=1e-12), d
    assert "random subset" in res.notes["sok_targets"]


def test_sok_coverage_is_one_for_exact_copies_of_every_target_and_lower_for_duplicates():
    _, _, px, py = _data(m_per_class=4)
    rows = torch.tensor([0, 1, 2, 3])  # class 0 targets
    copies = px[rows].float() / 127.5 - 1
    labels = torch.zeros(4, dtype=torch.long)
    res = sok(make_ctx(copies, labels, px, py, extras={"private_index": rows}, source_index=torch.arange(len(px))))
    assert res.overall["sok_alpha_ssim"] == 1 and res.overall["sok_alpha_mse"] == 1
    assert res.overall["sok_ssim"] == pytest.approx(1.0, abs=1e-6) and res.overall["sok_psnr"] == 100.0
    dup = copies[[0, 0, 1, 1]]
    res = sok(make_ctx(dup, labels, px, py, extras={"private_index": rows}, source_index=torch.arange(len(px))))
    assert res.overall["sok_alpha_ssim"] == 0.5 and res.overall["sok_alpha_psnr"] == 0.5
    assert "private_index" in res.notes["sok_targets"]
