import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # test this checkout's library, whatever is installed


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def smoke_local(tmp_path_factory):
    """One local run of config/smoke.yaml per test session (Slurm and report tests compare with it)."""
    from tests.smoke import run_local

    workdir = tmp_path_factory.mktemp("smoke-local")
    run_local(workdir)
    return workdir


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """Empty places to look for weight files: HOME and TORCH_HOME under tmp_path, no MIBENCH_WEIGHTS."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("MIBENCH_WEIGHTS", raising=False)
    return tmp_path


@pytest.fixture
def save_expected(monkeypatch):
    """save(name, state, path): a state dict saved where a weight file is looked for, its digest the expected one."""
    import dataclasses
    import hashlib

    import torch

    from mibench_core import weights

    def save(name, state, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        monkeypatch.setitem(weights.KNOWN, name, dataclasses.replace(weights.KNOWN[name], sha256=digest))
        return path

    return save
