"""LPIPS end to end with randomly initialised backbones
saved where the real weights are looked for (the loading and verification
code is the real one; only the expected digest is the test file's)."""

import warnings

import numpy as np
import pytest
import torch

from tests.pretrained import metric_ctx, metric_data


def _lpips_with_random_backbone():
    """lpips's own model (the wheel's heads) with a random AlexNet, and that backbone as torchvision's state dict."""
    import lpips

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    # lpips keeps torchvision's features under slices: net.sliceK.<i>.<param> is features.<i>.<param>
    state = {"features." + k.split(".", 1)[1]: v.clone() for k, v in model.net.state_dict().items()}
    return model, state


def test_lpips_end_to_end_equals_lpips_forward_to_the_nearest_private_image(homes, save_expected):
    from mibench_core.metrics.perceptual import lpips_distance

    ref_model, state = _lpips_with_random_backbone()
    save_expected("lpips-alex", state, homes / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth")
    recon, labels, px, py = metric_data()
    res = lpips_distance(metric_ctx(recon, labels, px, py), net="alex", resize=64)
    assert res.missing == {}
    assert "alexnet-owt-7be5be79.pth" in res.notes["lpips_weights"]

    # independent: the lpips package's own forward (heads from the wheel, same backbone), pair by pair
    def up(x):  # grayscale -> 3 channels, 32 -> 64 bilinear, in [-1, 1]
        return torch.nn.functional.interpolate(x.expand(-1, 3, -1, -1), size=(64, 64), mode="bilinear")

    expected = []
    with torch.no_grad():
        for i in range(len(recon)):
            refs = [px[j : j + 1].float() / 127.5 - 1 for j in range(len(px)) if py[j] == labels[i]]
            expected.append(min(ref_model(up(recon[i : i + 1]), up(r)).item() for r in refs))
    assert min(expected) > 1e-3 and len(set(expected)) == len(expected)  # distinct, non-zero values
    assert res.overall["lpips"] == pytest.approx(np.mean(expected), rel=1e-5)
    assert res.per_class[0]["lpips"] == pytest.approx(np.mean(expected[:2]), rel=1e-5)


def test_lpips_without_backbone_is_missing_with_where_it_looked(homes):
    from mibench_core.metrics.perceptual import lpips_distance

    recon, labels, px, py = metric_data()
    res = lpips_distance(metric_ctx(recon, labels, px, py))
    assert res.overall["lpips"] is None
    assert "not found" in res.missing["lpips"] and str(homes / "torch" / "hub" / "checkpoints") in res.missing["lpips"]


def test_lpips_with_a_tampered_backbone_is_missing(homes, save_expected):
    from mibench_core.metrics.perceptual import lpips_distance

    path = homes / "mine.pth"
    save_expected("lpips-alex", {"features.0.weight": torch.zeros(3)}, path)
    with open(path, "ab") as fh:
        fh.write(b"\0")
    recon, labels, px, py = metric_data()
    res = lpips_distance(metric_ctx(recon, labels, px, py, {"lpips-alex": str(path)}))
    assert res.overall["lpips"] is None and "differs from the expected" in res.missing["lpips"]
