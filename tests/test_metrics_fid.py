"""FID end to end with randomly initialised backbones
saved where the real weights are looked for (the loading and verification
code is the real one; only the expected digest is the test file's)."""

import numpy as np
import pytest
import torch

from tests.pretrained import metric_ctx, metric_data


def _random_fid_inception_state():
    import pytorch_fid.inception as pfi

    torch.manual_seed(0)
    # the architecture of pytorch_fid.inception.fid_inception_v3, without its download
    inc = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    inc.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    inc.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    inc.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    inc.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    inc.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    inc.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    inc.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    inc.Mixed_7b = pfi.FIDInceptionE_1(1280)
    inc.Mixed_7c = pfi.FIDInceptionE_2(2048)
    state = inc.state_dict()
    for key, value in state.items():  # variance-preserving init, so that random features still differ
        if key.endswith("conv.weight"):
            torch.nn.init.kaiming_normal_(value, nonlinearity="relu")
    return state


def test_fid_end_to_end_matches_pytorch_fid_features_and_a_direct_frechet(homes, save_expected, monkeypatch):
    import pytorch_fid.inception as pfi

    from mibench_core.metrics.fid import fid

    state = _random_fid_inception_state()
    hub = homes / "torch" / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    save_expected("fid-inception", state, hub)
    recon, labels, px, py = metric_data(res=16, n=2, m=2, classes=(0,))  # 2 reconstructions, 2 private images
    res = fid(metric_ctx(recon, labels, px, py))
    assert res.missing == {}, res.missing
    assert str(hub) in res.notes["fid_weights"]

    # independent: pytorch-fid's own InceptionV3 with the same file, as torch hub would hand it over
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: torch.load(hub, weights_only=True))
    model = pfi.InceptionV3([3]).eval()
    with torch.no_grad():
        fake = model(((recon + 1) / 2).clamp(0, 1).expand(-1, 3, -1, -1))[0].flatten(1).double().numpy()
        real = model((px.float() / 255).expand(-1, 3, -1, -1))[0].flatten(1).double().numpy()
    # Frechet distance with the sample covariances; Tr((S1 S2)^(1/2)) from the eigenvalues of the
    # small similar matrix X1 S2 X1^T / (n1 - 1) (a 2048 x 2048 sqrtm takes minutes on a CPU)
    mu1, mu2 = fake.mean(0), real.mean(0)
    s1, s2 = np.cov(fake, rowvar=False), np.cov(real, rowvar=False)
    x1 = fake - mu1
    eig = np.clip(np.linalg.eigvalsh(x1 @ s2 @ x1.T / (len(fake) - 1)), 0, None)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum()
    assert expected > 1e-3  # the random network's features differ: the comparison is not between zeros
    assert res.overall["fid"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_fid_without_weights_is_missing_not_zero(homes):
    from mibench_core.metrics.fid import fid

    recon, labels, px, py = metric_data(res=16)
    res = fid(metric_ctx(recon, labels, px, py))
    assert res.overall["fid"] is None
    assert "pt_inception-2015-12-05-6726825d.pth" in res.missing["fid"]
    assert str(homes / "torch" / "hub" / "checkpoints") in res.missing["fid"]
