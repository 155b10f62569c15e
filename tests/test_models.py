"""Architectures, training on tiny data, safe save/load."""

import pytest
import torch

from mibench_core import store
from mibench_core.models import classifiers
from mibench_core.models.train import Defense, accuracy, load_classifier, train_classifier
from mibench_core.weights import WeightsError, load_state_dict


@pytest.mark.parametrize(
    "arch, params, res",
    [("mcnn", {"width": 8}, 32), ("evalcnn", {"width": 4}, 32), ("resnet18", {}, 16), ("vgg16_bn", {}, 32)],
)
def test_architectures_give_logits_and_features(arch, params, res):
    m = classifiers.build(arch, params, num_classes=5, in_channels=1, resolution=res).eval()
    x = torch.randn(2, 1, res, res)
    f = m.features(x)
    assert f.shape == (2, m.feat_dim)
    assert torch.allclose(m(x), m.head(f))
    assert m(x).shape == (2, 5)


def test_torchvision_classifier_by_name_with_verified_weights(tmp_path):
    import torchvision

    net = torchvision.models.get_model("mobilenet_v3_small", weights=None)
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    digest = store.sha256_file(path)
    m = classifiers.torchvision_classifier(3, 1, 32, model="mobilenet_v3_small", pretrained_weights=str(path),
                                           pretrained_sha256=digest)  # fmt: skip
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    with pytest.raises(WeightsError, match="does not match"):
        load_state_dict(path, "0" * 64)


class _Payload:
    """Runs a command when unpickled: what a hostile weight file carries."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["object", "command"])
def test_weights_loader_refuses_pickled_code_in_its_own_words(tmp_path, payload):
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    obj = object.__new__(Defense) if payload == "object" else _Payload(marker)
    torch.save({"w": torch.zeros(2), "x": obj}, path)
    with pytest.raises(WeightsError) as err:
        load_state_dict(path)
    msg = str(err.value)
    assert str(path) in msg and "carries code" in msg and "was not loaded" in msg
    assert "weights_only" not in msg and err.value.__cause__ is None and err.value.__suppress_context__
    assert not marker.exists()


def test_pretrained_weights_need_a_digest_or_an_explicit_unverified(tmp_path):
    import torchvision

    from mibench_core.models import face
    from mibench_core.models.train import run  # noqa: F401 - the job that records it

    net = torchvision.models.get_model("mobilenet_v3_small", weights=None)
    path = tmp_path / "plain.pt"  # no torch hub hash in its name
    torch.save(net.state_dict(), path)
    kw = dict(model="mobilenet_v3_small", pretrained_weights=str(path))
    with pytest.raises(WeightsError, match="no digest to check it against.*pretrained_unverified: true"):
        classifiers.torchvision_classifier(3, 1, 32, **kw)
    m = classifiers.torchvision_classifier(3, 1, 32, **kw, pretrained_unverified=True)
    assert m.pretrained == {"path": str(path), "sha256": store.sha256_file(path),
                            "check": "NOT verified (unverified in the config)"}  # fmt: skip
    digest = store.sha256_file(path)
    hub = tmp_path / f"mobilenet-{digest[:8]}.pt"  # torch hub's convention: the name carries the digest's start
    hub.write_bytes(path.read_bytes())
    assert (
        "hash prefix"
        in classifiers.torchvision_classifier(3, 1, 32, **{**kw, "pretrained_weights": str(hub)}).pretrained["check"]
    )
    bad = tmp_path / "mobilenet-00000000.pt"
    bad.write_bytes(path.read_bytes())
    with pytest.raises(WeightsError, match="does not start with the file name's hash prefix"):
        classifiers.torchvision_classifier(3, 1, 32, **{**kw, "pretrained_weights": str(bad)})
    with pytest.raises(WeightsError, match="no digest"):
        face.ir152(5, pretrained_weights=str(path))


def tiny_data(n=120, res=8):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.randint(0, 60, (n, 1, res, res), generator=g, dtype=torch.uint8)
    x[y == 1, :, : res // 2] += 150  # class 1: bright top half
    return {
        "private_train_x": x,
        "private_train_y": y,
        "private_val_x": x[:20],
        "private_val_y": y[:20],
        "private_test_x": x[:20],
        "private_test_y": y[:20],
    }


def test_training_learns_a_separable_toy_task():
    torch.manual_seed(0)
    data = tiny_data()
    m = classifiers.build("mcnn", {"width": 4}, 2, 1, 8)
    cfg = dict(epochs=3, batch_size=32, optimizer="adam", lr=0.01, momentum=0.9, weight_decay=0.0, augment=True,
               select_best_on_val=True)  # fmt: skip
    m, res = train_classifier(m, Defense(), data, cfg, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert len(res["history"]) == 3
    assert accuracy(m, data["private_test_x"], data["private_test_y"], torch.device("cpu")) > 0.9


def test_load_classifier_round_trip(tmp_path):
    m = classifiers.build("mcnn", {"width": 4}, 3, 1, 16).eval()
    store.save_tensors(tmp_path / "model.safetensors", m.state_dict())
    job = {
        "id": "mcnn-x", "kind": "model", "name": "mcnn", "label": "l", "inputs": {}, "fingerprint": "f", "seed": 0,
        "outdir": str(tmp_path),
        "spec": {"role": "target", "arch": "mcnn", "arch_params": {"width": 4},
                 "defense": {"name": "none", "params": {}}},
    }  # fmt: skip
    store.write_manifest(job, ["model.safetensors"], wall_time_s=0, device="cpu",
                         extra={"num_classes": 3, "channels": 1, "resolution": 16})  # fmt: skip
    back = load_classifier(tmp_path)
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(back(x), m(x))
    assert not any(p.requires_grad for p in back.parameters()) and not back.training
