"""IR-152 / FaceNet64 / FaceNet112 of the paper configs. Built on the meta device
(shapes only, no memory or init time) except one small real forward pass."""

from __future__ import annotations

import pytest
import torch

from mibench_core import store
from mibench_core.models import classifiers, face


def _meta(arch, **kw):
    with torch.device("meta"):
        return classifiers.build(arch, kw, num_classes=1000, in_channels=3, resolution=64)


def _units(model):
    return [m for m in model.modules() if isinstance(m, face.BottleneckIR)]


@pytest.mark.parametrize(
    "arch,depth,size",
    [("ir152", 152, 64), ("facenet64", 50, 64), ("facenet112", 50, 112)],
)
def test_architecture_shapes(arch, depth, size):
    model = _meta(arch)
    assert model.input_size == size
    assert len(_units(model)) == sum(face.DEPTHS[depth])  # 3-8-36-3 = 50 units for IR-152, 24 for IR-50
    lin = model.feature.output_layer[3]
    assert lin.in_features == 512 * (size // 16) ** 2 and lin.out_features == 512  # 4x4 at 64 px, 7x7 at 112
    x = torch.empty(2, 3, 64, 64, device="meta")
    assert model.features(x).shape == (2, 512)
    assert model(x).shape == (2, 1000)


def test_ir_se_adds_squeeze_excitation():
    model = _meta("facenet64", mode="ir_se")
    assert sum(isinstance(m, face.SqueezeExcite) for m in model.modules()) == 24


def test_published_key_names_map_to_ours():
    model = _meta("ir152")
    ours = set(model.state_dict())
    kedmi = {}
    for k in ours:  # the KEDMI / PLG-MI checkpoint layout (DataParallel)
        k2 = k.replace("feature.output_layer.", "output_layer.").replace("fc.", "fc_layer.", 1)
        kedmi["module." + k2] = 0
    assert set(face._published_keys(kedmi)) == ours
    evolve = {k.removeprefix("feature."): 0 for k in ours if k.startswith("feature.")}  # face.evoLVe backbone
    assert set(face._published_keys(evolve)) == {k for k in ours if k.startswith("feature.")}


def test_real_forward_and_backbone_loading(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    small = face.IRClassifier(50, 16, num_classes=3, in_channels=1).eval()  # 16 px: 1x1 output map
    x = torch.randn(2, 1, 20, 20)  # other sizes are resized
    with torch.no_grad():
        out = small(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    # a 112 px backbone (face.evoLVe naming) under a 64 px model: convolutions load, output layer is fresh
    src = face.IRBackbone(50, 112, in_channels=3)
    path = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    model = face.facenet64(num_classes=4, pretrained_weights=str(path), pretrained_sha256=store.sha256_file(path))
    got = model.state_dict()
    assert torch.equal(got["feature.input_layer.0.weight"], src.state_dict()["input_layer.0.weight"])
    assert torch.equal(got["feature.body.23.res_layer.1.weight"], src.state_dict()["body.23.res_layer.1.weight"])
    assert got["feature.output_layer.3.weight"].shape == (512, 512 * 16)
