"""The StyleGAN2-style prior: its layers against reference formulations, P space, the training
losses, training and loading; the safe conversion of NVIDIA StyleGAN2-ADA pickles."""

from __future__ import annotations

import collections
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from mibench_core import store
from mibench_core.priors import load_prior, stylegan, stylegan2_ada, stylegan_pickle
from mibench_core.priors.stylegan import Discriminator, Generator, StyleGANPrior

TINY_G = {"z_dim": 8, "w_dim": 8, "img_resolution": 16, "img_channels": 1, "mapping_layers": 2,
          "mapping_lr_multiplier": 0.01, "channel_base": 64, "channel_max": 16, "conv_clamp": 256.0}  # fmt: skip
TINY_D = {"img_resolution": 16, "img_channels": 1, "channel_base": 64, "channel_max": 16, "conv_clamp": 256.0,
          "mbstd_group_size": 4}  # fmt: skip


def _randomised(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial values everywhere (noise strengths and biases start at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return net.eval()


# ------------------------------------------------------------------ layers


def test_upsampling_modulated_conv_equals_the_reference_formulation():
    # reference: scale by styles, zero-insertion 2x upsampling, pad (3, 2), FIR with gain 4, a true
    # convolution (flipped kernel) without padding, then demodulation computed from the modulated weight
    torch.manual_seed(0)
    x, weight, styles = torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3), torch.rand(2, 3) + 0.5
    f = stylegan.fir_filter()
    got = stylegan.modulated_conv(x, weight, styles, up=2, f=f)
    up = torch.zeros(2, 3, 10, 10)
    up[:, :, ::2, ::2] = x * styles[:, :, None, None]
    ref = F.conv2d(stylegan._depthwise(up, f, (3, 2, 3, 2), gain=4.0), weight.flip([2, 3]))
    w = weight[None] * styles[:, None, :, None, None]
    ref = ref * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None]
    assert got.shape == (2, 4, 10, 10)
    assert torch.allclose(got, ref, atol=1e-5)


def test_fir_filter_and_upsampling_keep_a_constant():
    f = stylegan.fir_filter()
    assert f.shape == (4, 4) and f.sum().item() == pytest.approx(1.0)
    assert torch.allclose(f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    up = stylegan.upsample2x(torch.ones(1, 1, 4, 4), f)
    assert up.shape == (1, 1, 8, 8) and torch.allclose(up[0, 0, 1:-1, 1:-1], torch.ones(6, 6))


def test_shapes_style_inputs_and_block_features():
    G = _randomised(Generator(**TINY_G))
    assert G.num_ws == 6  # 16 px: b4 (conv1), b8, b16 (conv0, conv1) + the last toRGB
    ws = G.mapping(torch.randn(3, 8))
    assert ws.shape == (3, 6, 8) and torch.equal(ws[:, 0], ws[:, 5])
    img = G.synthesis(ws, "const")
    assert img.shape == (3, 1, 16, 16)
    # running the blocks piecewise from intermediate features reproduces the image
    x, part = G.synthesis.run_blocks(ws, end=2, noise_mode="const")
    assert x.shape == (3, 8, 8, 8) and part.shape == (3, 1, 8, 8)  # channel_base 64 / 8
    _, again = G.synthesis.run_blocks(ws, start=2, x=x, img=part, noise_mode="const")
    assert torch.allclose(again, img, atol=1e-6)
    D = _randomised(Discriminator(**TINY_D))
    assert D(img).shape == (3,) and D.features(img).shape == (3, 16 * 16)


def test_truncation_moves_w_towards_the_running_mean():
    G = _randomised(Generator(**TINY_G))
    G.mapping.w_avg.copy_(torch.randn(8))
    z = torch.randn(2, 8)
    w, wt = G.mapping(z)[:, 0], G.mapping(z, truncation_psi=0.5)
    assert torch.allclose(wt[:, 0], G.mapping.w_avg + 0.5 * (w - G.mapping.w_avg), atol=1e-6)
    cut = G.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], wt[:, :2]) and torch.allclose(cut[:, 2:], G.mapping(z)[:, 2:])


def test_p_space_is_the_last_pre_activation_and_clipping_round_trips():
    G = _randomised(Generator(**TINY_G))
    z = torch.randn(500, 8)
    p = G.mapping.p_space(z)
    w = G.mapping(z)[:, 0]
    assert torch.allclose(stylegan.p_to_w(p), w, atol=1e-6)
    assert torch.allclose(stylegan.w_to_p(w), p, atol=1e-5)  # w -> p inverts the LeakyReLU exactly
    mean, std = stylegan.p_statistics(G.mapping, 500, torch.Generator().manual_seed(0), "cpu")
    prior = StyleGANPrior(G, None, mean, std)
    lo, hi = prior.p_bounds(1.0)
    inside = stylegan.p_to_w(mean + 0.5 * std * torch.tensor([1.0, -1] * 4))
    assert torch.allclose(prior.clip_w(inside[None]), inside[None], atol=1e-6)  # inside the box: unchanged
    far = stylegan.p_to_w(mean + 3 * std * torch.tensor([1.0, -1] * 4))[None]
    clipped = stylegan.w_to_p(prior.clip_w(far))
    assert torch.allclose(clipped, torch.where(torch.tensor([1.0, -1] * 4) > 0, hi, lo), atol=1e-5)
    once = prior.clip_w(w)
    assert torch.allclose(prior.clip_w(once), once, atol=1e-6)  # idempotent
    assert (stylegan.w_to_p(once) >= lo - 1e-5).all() and (stylegan.w_to_p(once) <= hi + 1e-5).all()


def test_p_statistics_are_the_population_mean_and_std():
    G = _randomised(Generator(**TINY_G))
    mean, std = stylegan.p_statistics(G.mapping, 300, torch.Generator().manual_seed(1), "cpu", batch=128)
    p = G.mapping.p_space(torch.randn(300, 8, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(mean, p.mean(0), atol=1e-5) and torch.allclose(std, p.std(0, unbiased=False), atol=1e-4)


def test_adapt_crops_resizes_and_converts_channels():
    prior = StyleGANPrior(Generator(**TINY_G), None, torch.zeros(8), torch.ones(8), center_crop=8)
    rgb = torch.zeros(1, 3, 16, 16)
    rgb[:, 0, 4:12, 4:12] = 1.0  # red centre square: the crop keeps only it
    gray = prior.adapt(rgb, 4, 1)
    assert gray.shape == (1, 1, 4, 4) and torch.allclose(gray, torch.full_like(gray, 0.299))
    assert prior.adapt(torch.zeros(2, 1, 16, 16), 16, 3).shape == (2, 3, 16, 16)


# ------------------------------------------------------------------ losses and training


def test_r1_penalty_and_ema_beta_by_hand():
    a = torch.tensor([1.0, -2.0, 3.0, 0.5])
    x = torch.randn(2, 1, 2, 2, requires_grad=True)
    d = (x.flatten(1) * a).sum(1)  # linear D: its gradient is a for every sample
    assert torch.allclose(stylegan.r1_penalty(d, x), torch.full((2,), (a**2).sum().item()))
    assert stylegan.ema_beta(32, 10**9, 10.0, None) == pytest.approx(0.5 ** (32 / 10000))
    assert stylegan.ema_beta(64, 6400, 500.0, 0.05) == pytest.approx(0.5 ** (64 / 320))  # ramp-up: 5% of 6,400


def test_minibatch_std_layer_by_hand():
    layer = stylegan.MinibatchStd(2)
    x = torch.tensor([0.0, 2.0, 1.0, 1.0]).view(4, 1, 1, 1)  # groups {0, 2} and {1, 3} (strided)
    out = layer(x)
    assert out.shape == (4, 2, 1, 1)
    assert torch.allclose(out[:, 1].flatten(), torch.tensor([0.5, 0.5, 0.5, 0.5]), atol=1e-4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from whitebox_tiny import build_data

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("stylegan")
    return root, build_data(root)


def test_prior_trains_saves_and_loads(tiny):
    from whitebox_tiny import build_prior

    root, data = tiny
    out = build_prior(root, "stylegan", data, None, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64,
                      channel_max=16, steps=3, batch_size=8, p_samples=200, r1_interval=2)  # fmt: skip
    manifest = store.read_manifest(out)
    assert {"generator.safetensors", "discriminator.safetensors", "pspace.safetensors", "samples.png"} <= set(
        manifest["files"]
    )
    assert store.verify(out) == []
    assert manifest["results"]["num_ws"] == 6 and "r1" in manifest["results"]["history"][0]
    prior = load_prior(out)
    assert isinstance(prior, StyleGANPrior) and not any(p.requires_grad for p in prior.generator.parameters())
    ws = prior.mapping(prior.sample_z(4))
    assert prior.images(ws, 16, 1).shape == (4, 1, 16, 16)
    assert prior.p_std.shape == (8,) and (prior.p_std > 0).all()


# ------------------------------------------------------------------ NVIDIA pickles, read safely

NVIDIA_NAMES = {
    "Generator": "Generator", "Mapping": "MappingNetwork", "Synthesis": "SynthesisNetwork",
    "SynthesisBlock": "SynthesisBlock", "SynthesisLayer": "SynthesisLayer", "ToRGB": "ToRGBLayer",
    "FullyConnected": "FullyConnectedLayer", "Conv2dLayer": "Conv2dLayer", "Discriminator": "Discriminator",
    "DiscriminatorBlock": "DiscriminatorBlock", "Epilogue": "DiscriminatorEpilogue",
    "MinibatchStd": "MinibatchStdLayer",
}  # fmt: skip


def _fake_nvidia_modules(monkeypatch):
    """Stand-ins for torch_utils.persistence and dnnlib.util, present only while the test pickles."""
    persistence, util = types.ModuleType("torch_utils.persistence"), types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - never called
        raise AssertionError("called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    for name, mod in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                      ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)):  # fmt: skip
        monkeypatch.setitem(sys.modules, name, mod)
    return _reconstruct_persistent_obj, EasyDict


class _Persistent:
    """Pickles like a torch_utils.persistence object: _reconstruct_persistent_obj(meta)."""

    def __init__(self, reconstruct, meta):
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self):
        return (self.reconstruct, (self.meta,))


def _as_nvidia(module, reconstruct, module_src, init_kwargs=None):
    state = dict(module.__dict__)
    state["_modules"] = collections.OrderedDict(
        (k, _as_nvidia(v, reconstruct, module_src)) for k, v in module._modules.items()
    )
    state["_parameters"] = collections.OrderedDict(
        (k, None if v is None else torch.nn.Parameter(v.detach().clone(), requires_grad=False))
        for k, v in module._parameters.items()
    )
    for key in ("weight_gain", "bias_gain", "act_gain"):  # NVIDIA keeps these as NumPy scalars
        if key in state:
            state[key] = np.float64(state[key])
    state["_init_args"], state["_init_kwargs"] = (), init_kwargs or {}
    meta = {"type": "class", "version": 6, "module_src": module_src,
            "class_name": NVIDIA_NAMES[type(module).__name__], "state": state}  # fmt: skip
    return _Persistent(reconstruct, meta)


def nvidia_pickle(path, G, D, monkeypatch, module_src="pass"):
    """Write G and D in the layout of an NVIDIA StyleGAN2-ADA network pickle (protocol 3)."""
    reconstruct, EasyDict = _fake_nvidia_modules(monkeypatch)
    g_kwargs = {"z_dim": G.z_dim, "c_dim": 0, "w_dim": G.w_dim, "img_resolution": G.img_resolution,
                "img_channels": G.img_channels, "mapping_kwargs": EasyDict(num_layers=G.mapping.num_layers),
                "synthesis_kwargs": EasyDict(channel_base=TINY_G["channel_base"], channel_max=TINY_G["channel_max"],
                                             num_fp16_res=0, conv_clamp=256)}  # fmt: skip
    d_kwargs = {"c_dim": 0, "img_resolution": 16, "img_channels": 1, "architecture": "resnet", "channel_base": 64,
                "channel_max": 16, "num_fp16_res": 0, "conv_clamp": 256, "cmap_dim": None, "block_kwargs": {},
                "mapping_kwargs": {}, "epilogue_kwargs": EasyDict(mbstd_group_size=4)}  # fmt: skip
    data = {
        "G": _as_nvidia(G, reconstruct, module_src, g_kwargs),
        "D": _as_nvidia(D, reconstruct, module_src, d_kwargs),
        "G_ema": _as_nvidia(G, reconstruct, module_src, g_kwargs),
        "augment_pipe": None,
        "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "resolution": 16},
    }
    path.write_bytes(pickle.dumps(data, protocol=3))
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        monkeypatch.delitem(sys.modules, name)


def test_nvidia_pickle_converts_without_running_its_code(tmp_path, monkeypatch):
    G, D = _randomised(Generator(**TINY_G)), _randomised(Discriminator(**TINY_D), seed=1)
    marker = tmp_path / "module_src_ran"
    pkl = tmp_path / "network.pkl"
    nvidia_pickle(pkl, G, D, monkeypatch, module_src=f"open({str(marker)!r}, 'w').write('ran')")
    assert b"torch_utils.persistence" in pkl.read_bytes() and b"numpy" in pkl.read_bytes()
    G2, D2, g_kw, d_kw = stylegan_pickle.read_networks(pkl)
    assert g_kw == TINY_G and d_kw == TINY_D
    assert not marker.exists() and "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    z = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.equal(G2(z, noise_mode="const"), G.eval()(z, noise_mode="const"))
        x = G(z, noise_mode="const")
        assert torch.equal(D2(x), D(x))
    # the safetensors file and its digest
    out = tmp_path / "converted.safetensors"
    digest = stylegan_pickle.convert(pkl, out)
    assert digest == store.sha256_file(out)
    assert (tmp_path / "converted.safetensors.sha256").read_text().split()[0] == digest
    G3, D3, g3, d3, meta = stylegan_pickle.read_converted(out)
    assert g3 == TINY_G and meta["source_sha256"] == store.sha256_file(pkl)
    with torch.no_grad():
        assert torch.equal(G3(z, noise_mode="const"), G2(z, noise_mode="const"))
    assert not marker.exists()


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickles_are_refused_and_their_payload_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    top = tmp_path / "top.pkl"
    top.write_bytes(pickle.dumps({"G_ema": _Hostile(marker)}, protocol=3))
    with pytest.raises(stylegan_pickle.UnsafePickleError, match=r"(posix|os|nt)\.system"):
        stylegan_pickle.read_networks(top)
    # hidden inside a network's state, in the NVIDIA layout
    G = Generator(**TINY_G)
    nested = tmp_path / "nested.pkl"
    reconstruct, _ = _fake_nvidia_modules(monkeypatch)
    evil = _as_nvidia(G, reconstruct, "pass", {"z_dim": 8, "payload": _Hostile(marker)})
    nested.write_bytes(pickle.dumps({"G_ema": evil}, protocol=3))
    with pytest.raises(stylegan_pickle.UnsafePickleError, match="system"):
        stylegan_pickle.load_restricted(nested)
    # other classes are refused too, e.g. a torch module pickled whole
    whole = tmp_path / "module.pkl"
    whole.write_bytes(pickle.dumps({"G_ema": torch.nn.Linear(2, 2)}, protocol=3))
    with pytest.raises(stylegan_pickle.UnsafePickleError, match="torch.nn.modules.linear.Linear"):
        stylegan_pickle.load_restricted(whole)
    with pytest.raises(stylegan_pickle.UnsafePickleError, match="builtins.eval"):
        bad = tmp_path / "eval.pkl"
        bad.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
        stylegan_pickle.load_restricted(bad)
    assert not marker.exists()


def test_safe_but_unsupported_networks_fail_clearly(tmp_path, monkeypatch):
    pkl = tmp_path / "network.pkl"
    nvidia_pickle(pkl, Generator(**TINY_G), Discriminator(**TINY_D), monkeypatch)
    data = stylegan_pickle.load_restricted(pkl)
    data["G_ema"].state["_init_kwargs"]["c_dim"] = 10
    with pytest.raises(stylegan_pickle.ConversionError, match="c_dim"):
        stylegan_pickle.generator_kwargs(data["G_ema"])
    data["G_ema"].state["_init_kwargs"]["c_dim"] = 0
    data["G_ema"].state["_init_kwargs"]["synthesis_kwargs"]["architecture"] = "resnet"
    with pytest.raises(stylegan_pickle.ConversionError, match="synthesis architecture"):
        stylegan_pickle.generator_kwargs(data["G_ema"])
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"weights": torch.zeros(2)}, protocol=3))
    with pytest.raises(stylegan_pickle.ConversionError, match="no G_ema"):
        stylegan_pickle.read_networks(other)


def test_cli_converts_a_verified_pickle_and_the_pretrained_prior_loads_it(tmp_path, monkeypatch, capsys, tiny):
    from mibench_core.cli import main

    G, D = _randomised(Generator(**TINY_G)), _randomised(Discriminator(**TINY_D))
    pkl = tmp_path / "ffhq.pkl"
    nvidia_pickle(pkl, G, D, monkeypatch)
    cfg = tmp_path / "weights.yaml"
    cfg.write_text(yaml.safe_dump({"weights": {"stylegan2-ada-ffhq": {"path": str(pkl), "sha256": "0" * 64}}}))
    assert main(["weights", "convert", "stylegan2-ada-ffhq", "-c", str(cfg)]) == 1  # digest mismatch: refused
    assert "differs from the digest given in the config" in capsys.readouterr().err
    cfg.write_text(yaml.safe_dump({"weights": {"stylegan2-ada-ffhq": {"path": str(pkl),
                                                                     "sha256": store.sha256_file(pkl)}}}))  # fmt: skip
    out = tmp_path / "sg2.safetensors"
    assert main(["weights", "convert", "stylegan2-ada-ffhq", "-c", str(cfg), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    digest = store.sha256_file(out)
    assert f"sha256 {digest}" in printed
    assert main(["weights", "convert", "fid-inception", "-c", str(cfg)]) == 1  # absent here
    # the pretrained prior, from the converted file (verified) and from the pickle itself
    from whitebox_tiny import public_view

    root, data = tiny
    public = public_view(data)  # what a prior gets of the data
    for name, source, sha in (("converted", out, digest), ("pickle", pkl, None)):
        job = {"kind": "prior", "name": "stylegan2-ada", "seed": 0, "device": "cpu", "outdir": str(root / name),
               "spec": {"name": "stylegan2-ada", "params": {"weights_file": str(source), "sha256": sha,
                                                           "center_crop": 12, "p_samples": 100}},
               "inputs": {"data": {"dir": str(public)}}}  # fmt: skip
        files, results, _ = stylegan2_ada.train_prior(job)
        store.write_json(root / name / "manifest.json", {"name": "stylegan2-ada", "spec": job["spec"],
                                                         "results": results})  # fmt: skip
        prior = load_prior(root / name)
        assert prior.center_crop == 12 and results["generator_resolution"] == 16
        z = torch.randn(2, 8)
        with torch.no_grad():
            assert torch.equal(prior.generator(z, noise_mode="const"), G(z, noise_mode="const"))
    bad = dict(job["spec"]["params"], weights_file=str(out), sha256="1" * 64)
    with pytest.raises(Exception, match="does not match"):
        stylegan2_ada.train_prior(dict(job, spec={"params": bad}))


class _OversizedTensor:
    """A tensor record declaring more elements than its storage holds."""

    def __init__(self, size, stride=(1,), offset=0):
        self.size, self.stride, self.offset = size, stride, offset

    def __reduce__(self):
        storage = torch.zeros(4).storage()  # 4 floats, pickled through torch.storage._load_from_bytes
        args = (storage, self.offset, self.size, self.stride, False, collections.OrderedDict())
        return (torch._utils._rebuild_tensor_v2, args)


@pytest.mark.parametrize(
    "size,stride,offset",
    [((1048576,), (1,), 0), ((2, 2), (2, 1), 1), ((3,), (2,), 0), ((1,), (1,), 4), ((2,), (-1,), 1)],
)
def test_a_tensor_record_larger_than_its_storage_is_refused(tmp_path, size, stride, offset):
    path = tmp_path / "big.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _OversizedTensor(size, stride, offset)}, protocol=3))
    with pytest.raises(stylegan_pickle.UnsafePickleError, match="storage"):
        stylegan_pickle.load_restricted(path)


@pytest.mark.parametrize("size,stride,offset", [((4,), (1,), 0), ((2, 2), (2, 1), 0), ((2,), (2,), 1), ((0,), (1,), 9)])
def test_a_tensor_record_within_its_storage_loads(tmp_path, size, stride, offset):
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _OversizedTensor(size, stride, offset)}, protocol=3))
    t = stylegan_pickle.load_restricted(path)["G_ema"]
    assert tuple(t.shape) == size and t.untyped_storage().nbytes() == 16  # the storage was not grown
