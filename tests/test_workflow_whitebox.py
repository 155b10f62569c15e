"""End-to-end: the whole workflow on a tiny config with every white-box attack of issue 4 (slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "tests" / "configs" / "whitebox_tiny.yaml"


@pytest.mark.slow
def test_tiny_workflow_runs_every_whitebox_attack(tmp_path):
    import pandas as pd

    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
        "--configfile", str(CONFIG), "--cores", "2", "-q",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    df = pd.read_parquet(tmp_path / "results" / "tables" / "attacks.parquet")
    expected = {"gmi", "kedmi", "plgmi", "lomma-gmi", "lomma-kedmi", "vmi", "deepinversion", "secretgen"}
    assert set(df["attack"]) == expected and len(df) == len(expected)
    assert df["acc1"].between(0, 1).all()
    figures = tmp_path / "reports" / "figures"
    assert len(list((figures / "reconstructions").glob("*.png"))) == len(expected)
    assert len(list((figures / "priors").glob("*.png"))) == 4
