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
