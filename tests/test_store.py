import json
import os
import stat

import pytest
import torch

from mibench_core import store


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a" / "file.bin"
    with pytest.raises(RuntimeError):
        with store.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert not target.exists()
    assert list((tmp_path / "a").iterdir()) == []


def test_atomic_write_replaces_existing_file(tmp_path):
    target = tmp_path / "f.json"
    store.write_json(target, {"a": 1})
    store.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}


def test_tensors_round_trip_and_manifest_hashes(tmp_path):
    job = {
        "id": "x-0123456789",
        "kind": "attack",
        "name": "x",
        "label": "lbl",
        "spec": {"p": 1},
        "inputs": {"target": {"id": "t-1", "kind": "model", "dir": "unused"}},
        "fingerprint": "abc",
        "seed": 7,
        "outdir": str(tmp_path),
    }
    t = {"a": torch.arange(6).view(2, 3), "b": torch.rand(4)}
    store.save_tensors(tmp_path / "t.safetensors", t)
    back = store.load_tensors(tmp_path / "t.safetensors")
    assert torch.equal(back["a"], t["a"]) and torch.equal(back["b"], t["b"])
    manifest = store.write_manifest(job, ["t.safetensors"], wall_time_s=1.23456, device="cpu", extra={"r": 1})
    assert manifest["files"]["t.safetensors"] == store.sha256_file(tmp_path / "t.safetensors")
    assert manifest["inputs"] == {"target": "t-1"} and manifest["seed"] == 7 and manifest["results"] == {"r": 1}
    assert "torch" in manifest["versions"]
    assert store.verify(tmp_path) == []
    (tmp_path / "t.safetensors").write_bytes(b"tampered")
    assert store.verify(tmp_path) == ["t.safetensors"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        store.write_json(tmp_path / "m.json", {"a": 1})
        store.save_tensors(tmp_path / "t.safetensors", {"a": torch.zeros(2)})
        with store.atomic_path(tmp_path / "p.png") as tmp:
            tmp.write_bytes(b"png")
    finally:
        os.umask(old)
    for name in ("m.json", "t.safetensors", "p.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
