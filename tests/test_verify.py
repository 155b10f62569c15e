"""Artifacts are checked against their manifests: by every job before it loads an input, by the
report steps, by `mibench verify` and `mibench show`. A flipped bit is caught whether the file's
mtime was kept (Snakemake sees nothing) or touched (Snakemake reruns what depends on it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from mibench_core import store
from mibench_core.cli import _load_config, main
from mibench_core.plan import build
from tests.smoke import SMOKE


def flip_bit(path: Path, offset: int | None = None, keep_mtime: bool = True) -> None:
    """Flip one bit of a file in place; keep its mtime (a silent corruption) or touch it (mtime now)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        os.utime(path)


def _artifact(folder: Path, files: dict[str, bytes], job_id: str = "x-0123456789", inputs: dict | None = None) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    job = {"id": job_id, "kind": "model", "name": "x", "label": "lbl", "spec": {}, "fingerprint": "f", "seed": 1,
           "outdir": str(folder), "inputs": inputs or {}}  # fmt: skip
    return store.write_manifest(job, list(files), wall_time_s=0.1, device="cpu")


@pytest.mark.parametrize("keep_mtime", [True, False])
def test_a_flipped_bit_is_a_problem_named_by_file(tmp_path, keep_mtime):
    folder = tmp_path / "mcnn-0123456789"
    _artifact(folder, {"model.safetensors": bytes(range(256)) * 4, "other.bin": b"ok"})
    assert store.problems(folder) == []
    flip_bit(folder / "model.safetensors", keep_mtime=keep_mtime)
    found = store.problems(folder)
    assert len(found) == 1 and found[0].startswith("model.safetensors: sha256 ")
    with pytest.raises(store.CorruptArtifact, match=r"model mcnn-0123456789 .*To rebuild it, delete the folder"):
        store.check(folder, "model")


def test_a_missing_file_an_edited_and_an_unreadable_manifest(tmp_path):
    _artifact(tmp_path, {"a.bin": b"a", "b.bin": b"b"})
    (tmp_path / "b.bin").unlink()
    assert store.problems(tmp_path) == ["b.bin is missing"]
    (tmp_path / "b.bin").write_bytes(b"b")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["results"] = {"test_acc": 0.99}  # a number changed by hand (or by a flipped bit)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert store.problems(tmp_path) == ["manifest.json does not match its own sha256 (edited or corrupted)"]
    assert store.problems(tmp_path, files=False) == store.problems(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    assert store.problems(tmp_path)[0].startswith("manifest.json cannot be read")


def test_a_manifest_survives_its_json_round_trip(tmp_path):
    import numpy as np

    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "f").write_bytes(b"x")
    job = {"id": "x-1", "kind": "metric", "name": "x", "spec": {"p": 0.1}, "fingerprint": "f", "seed": 1,
           "outdir": str(folder), "inputs": {}}  # fmt: skip
    store.write_manifest(job, ["f"], wall_time_s=0.1, device="cpu", extra={"v": np.float32(0.3), "n": float("nan")})
    assert store.problems(folder) == []


def test_the_consuming_job_refuses_a_corrupt_input_before_loading_it(tmp_path, capsys):
    data_dir = tmp_path / "results" / "data" / "d-1"
    _artifact(data_dir, {"data.safetensors": b"\x00" * 4096}, job_id="d-1")
    flip_bit(data_dir / "data.safetensors")  # mtime kept: only the check can tell
    outdir = tmp_path / "results" / "models" / "m-1"
    job = {"kind": "model", "id": "m-1", "name": "mcnn", "spec": {}, "seed": 0, "fingerprint": "f", "device": "cpu",
           "outdir": str(outdir), "options": {},
           "inputs": {"data": {"id": "d-1", "kind": "data", "dir": str(data_dir)}}}  # fmt: skip
    assert main(["run", "--job", json.dumps(job), "--label", "lbl"]) == 1
    err = capsys.readouterr().err
    assert "input 'data': data d-1" in err and "data.safetensors: sha256" in err
    assert f"delete the folder {data_dir}" in err
    assert not (outdir / "manifest.json").exists()


def _built(tmp_path):
    """A smoke plan whose results live under tmp_path, with its data and target artifacts 'built'."""
    override = tmp_path / "here.yaml"
    override.write_text(yaml.safe_dump({"results_dir": str(tmp_path / "results")}))
    configs = [str(SMOKE), str(override)]
    plan = build(_load_config(configs))
    built = {}
    for node in plan.nodes.values():
        if node.kind in ("data", "model"):
            job = node.job(plan)
            folder = Path(job["outdir"])
            folder.mkdir(parents=True)
            (folder / "main.bin").write_bytes(os.urandom(2048))
            store.write_manifest(job, ["main.bin"], wall_time_s=0.1, device="cpu")
            built[node.id] = folder
    return plan, configs, built


@pytest.mark.parametrize("keep_mtime", [True, False])
def test_mibench_verify_names_each_corrupt_artifact(tmp_path, capsys, keep_mtime):
    plan, configs, built = _built(tmp_path)
    args = ["verify", *(a for c in configs for a in ("-c", c))]
    assert main(args) == 0
    assert f"{len(built)} of {len(built)} built artifacts verified, 0 corrupt" in capsys.readouterr().out
    bad = sorted(built)[:2]
    for nid in bad:
        flip_bit(built[nid] / "main.bin", keep_mtime=keep_mtime)
    assert main(args) == 1
    out = capsys.readouterr().out
    for nid in built:
        assert (f"CORRUPT {plan.nodes[nid].kind} {nid}" in out) == (nid in bad), nid
    assert f"delete the folder {built[bad[0]]}" in out
    assert f"{len(built) - 2} of {len(built)} built artifacts verified, 2 corrupt" in out


def test_mibench_show_does_not_call_a_stale_digest_present(tmp_path, capsys):
    plan, configs, built = _built(tmp_path)
    nid = next(n for n in built if plan.nodes[n].kind == "data")
    flip_bit(built[nid] / "main.bin")
    assert main(["show", nid, *(a for c in configs for a in ("-c", c))]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if nid in ln and "[" in ln)
    assert "[CORRUPT]" in line and "present, verified" not in out
    assert "main.bin: sha256" in out and "does not describe the files" in out


def test_the_report_refuses_corrupt_metrics(tmp_path):
    from mibench_core.report import aggregate

    results = tmp_path / "results"
    met = results / "metrics" / "metrics-1"
    _artifact(met, {"metrics.json": json.dumps({"overall": {"acc1": 0.5}, "per_class": {}, "missing": {}}).encode()},
              job_id="metrics-1", inputs={"attack": {"id": "gmi-1", "kind": "attack", "dir": "unused"}})  # fmt: skip
    flip_bit(met / "metrics.json", offset=30)
    with pytest.raises(store.CorruptArtifact, match="metrics metrics-1"):
        aggregate.collect([str(met)])
