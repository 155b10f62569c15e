"""Weight-file registry: lookup order, sha256 verification, CLI, config plumbing."""

import dataclasses
import hashlib

import pytest

from mibench_core import weights
from mibench_core.cli import main


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """An empty HOME, TORCH_HOME and MIBENCH_WEIGHTS for each test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MIBENCH_WEIGHTS", str(tmp_path / "mw"))
    return tmp_path


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _expect(monkeypatch, name, **changes):
    monkeypatch.setitem(weights.KNOWN, name, dataclasses.replace(weights.KNOWN[name], **changes))


def test_lookup_order_explicit_then_env_then_mibench_cache_then_torch_hub(homes, monkeypatch):
    entry = weights.get("fid-inception")
    found = weights.candidates("fid-inception", {"fid-inception": "/x/my.pth"})
    assert [str(p) for p in found] == [
        "/x/my.pth",
        str(homes / "mw" / entry.filename),
        str(homes / "home" / ".cache" / "mibench" / "weights" / entry.filename),
        str(homes / "torch" / "hub" / "checkpoints" / entry.filename),
    ]
    # facenet-pytorch's own cache is searched too for its files
    assert weights.candidates("facenet-vggface2")[-1] == homes / "torch" / "checkpoints" / "20180402-114759-vggface2.pt"
    # the first existing file wins
    digest = _write(homes / "torch" / "hub" / "checkpoints" / entry.filename, b"hub")
    _expect(monkeypatch, "fid-inception", sha256=digest)
    assert weights.resolve("fid-inception").path == homes / "torch" / "hub" / "checkpoints" / entry.filename
    _write(homes / "mw" / entry.filename, b"env")
    res = weights.resolve("fid-inception")
    assert res.path == homes / "mw" / entry.filename and res.status == "mismatch"
    # a configured path is the only place looked at: a missing one is not replaced by a cached copy
    res = weights.resolve("fid-inception", {"fid-inception": str(homes / "nope.pth")})
    assert res.status == "missing" and res.searched == [homes / "nope.pth"]


def test_missing_weights_name_every_place_looked(homes):
    res = weights.resolve("lpips-alex")
    assert res.status == "missing" and not res.ok
    reason = res.reason()
    assert "alexnet-owt-7be5be79.pth" in reason and str(homes / "torch" / "hub" / "checkpoints") in reason
    with pytest.raises(weights.WeightsError, match="not found"):
        weights.require("lpips-alex")


def test_full_digest_is_checked(homes, monkeypatch):
    path = homes / "w.pth"
    digest = _write(path, b"weights")
    assert weights.resolve("fid-inception", {"fid-inception": str(path)}).status == "mismatch"
    _expect(monkeypatch, "fid-inception", sha256=digest)
    res = weights.resolve("fid-inception", {"fid-inception": str(path)})
    assert res.ok and res.sha256 == digest


def test_hub_prefix_user_digest_and_unverifiable(homes, monkeypatch):
    path = homes / "vgg.pth"
    digest = _write(path, b"vgg weights")
    user = {"lpips-vgg": str(path)}
    assert weights.resolve("lpips-vgg", user).status == "mismatch"  # prefix 397923af is not ours
    _expect(monkeypatch, "lpips-vgg", sha256_prefix=digest[:8])
    res = weights.resolve("lpips-vgg", user)
    assert res.ok and "prefix" in res.detail
    # a digest given in the config is used where no published digest is known
    assert weights.resolve("lpips-vgg", {"lpips-vgg": {"path": str(path), "sha256": "0" * 64}}).status == "mismatch"
    # no digest at all: found but not loaded
    casia = {"facenet-casia-webface": str(path)}
    assert weights.resolve("facenet-casia-webface", casia).status == "unverifiable"
    casia = {"facenet-casia-webface": {"path": str(path), "sha256": digest}}
    assert weights.resolve("facenet-casia-webface", casia).ok


def test_recorded_digests_begin_with_the_file_name_prefix():
    for entry in weights.KNOWN.values():
        if entry.sha256 and entry.sha256_prefix:
            assert entry.sha256.startswith(entry.sha256_prefix)
            assert entry.filename.rsplit(".", 1)[0].endswith(entry.sha256_prefix)


def test_cli_weights_list_verify_path(homes, monkeypatch, capsys):
    entry = weights.get("lpips-alex")
    path = homes / "torch" / "hub" / "checkpoints" / entry.filename
    digest = _write(path, b"alex")
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "fid-inception" in out and "absent" in out and "looked in:" in out
    assert "lpips-alex" in out and "present, mismatch" in out
    assert main(["weights", "verify", "lpips-alex"]) == 1
    assert "differs from the expected" in capsys.readouterr().out
    _expect(monkeypatch, "lpips-alex", sha256=digest)
    assert main(["weights", "verify"]) == 0
    assert "lpips-alex: ok" in capsys.readouterr().out
    assert main(["weights", "path", "lpips-alex"]) == 0
    assert capsys.readouterr().out.strip() == str(path)
    assert main(["weights", "path", "fid-inception"]) == 1
    assert main(["weights", "path", "nope"]) == 2


def _config(**extra):
    import yaml

    from mibench_core.config import validate

    with open(weights.Path(__file__).resolve().parent.parent / "config" / "smoke.yaml") as fh:
        cfg = yaml.safe_load(fh)
    with open(weights.Path(__file__).resolve().parent.parent / "config" / "config.yaml") as fh:
        base = yaml.safe_load(fh)
    base.update(cfg)
    base.update(extra)
    return validate(base)


def test_config_weights_mapping_reaches_metric_jobs_outside_their_ids():
    from mibench_core.config import ConfigError
    from mibench_core.plan import build

    plain = build(_config())
    given = build(_config(weights={"fid-inception": "/w/fid.pth", "lpips-alex": {"path": "/w/a.pth"}}))
    metrics_plain = sorted(n.id for n in plain.of_kind("metric"))
    metrics_given = sorted(n.id for n in given.of_kind("metric"))
    assert metrics_plain == metrics_given  # options are not part of the artifact id
    job = given.nodes[metrics_given[0]].job(given)
    assert job["options"]["weights"]["fid-inception"] == "/w/fid.pth"
    with pytest.raises(ConfigError, match="weights.nope"):
        _config(weights={"nope": "/w/x"})
    with pytest.raises(ConfigError, match="weights"):
        _config(weights={"fid-inception": {"path": "/w/x", "sha256": "abc"}})


def test_unverified_true_loads_a_file_no_digest_can_verify_and_says_so(homes):
    path = homes / "casia.pt"
    digest = _write(path, b"stand-in weights")
    named = {"facenet-casia-webface": {"path": str(path)}}
    assert weights.resolve("facenet-casia-webface", named).status == "unverifiable"
    unverified = {"facenet-casia-webface": {"path": str(path), "unverified": True}}
    res = weights.resolve("facenet-casia-webface", unverified)
    assert res.ok and "NOT verified" in res.detail and digest in res.detail
    # a copy found in a cache folder, not named by the config, is never loaded unchecked
    cached = homes / "mw" / weights.get("facenet-casia-webface").filename
    _write(cached, b"stand-in weights")
    assert weights.resolve("facenet-casia-webface", {}).status == "unverifiable"


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_weight_file_carrying_code_leaves_the_metric_missing_in_our_words(homes, save_expected):
    import torch

    from mibench_core.metrics.fid import fid
    from tests.pretrained import metric_ctx, metric_data

    marker = homes / "pwned"
    hub = homes / "torch" / "hub" / "checkpoints" / weights.get("fid-inception").filename
    save_expected("fid-inception", {"w": torch.zeros(1), "x": _Payload(marker)}, hub)  # its digest checks out
    res = fid(metric_ctx(*metric_data(res=16)))
    why = res.missing["fid"]
    assert res.overall["fid"] is None and "carries code" in why and "was not loaded" in why
    assert "weights_only" not in why and not marker.exists()
