"""Shared helpers for tests that run config/smoke.yaml end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "config" / "smoke.yaml"
ATTACKS = "results/smoke/tables/attacks.parquet"
# Columns that describe when, where and how long, not what was computed.
VOLATILE = ("wall_s", "host", "version.")
SBIN = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]


def which(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN]))


def ensure_installed(executables: dict[str, str], what: str) -> None:
    """apt-get install the Debian packages of missing executables (as root), or skip saying why.

    This is how `bash scripts/test.sh` on a fresh Debian machine (CI runs it as root) gets
    Slurm and Chromium: the tests that need them install them."""
    missing = sorted({pkg for exe, pkg in executables.items() if which(exe) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.skip(f"{what} is not installed (Debian: {' '.join(missing)}) and installing it needs root")
    if which("apt-get") is None:
        pytest.skip(f"{what} is not installed ({' '.join(missing)}) and there is no apt-get to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            pytest.skip(f"could not install {what} with `{' '.join(cmd)}`: {proc.stderr.strip()[-500:]}")
    still = [exe for exe in executables if which(exe) is None]
    if still:
        pytest.skip(f"installed {' '.join(missing)} but {', '.join(still)} is still missing")


def snakemake_cmd(workdir: Path, *configfiles: Path) -> list[str]:
    """snakemake on this checkout's Snakefile, the smoke config, results under ``workdir``."""
    files = [str(p) for p in (SMOKE, *configfiles)]
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", *files, "--nolock"]  # fmt: skip


def run_local(workdir: Path, cores: int = 2, timeout: int = 2400) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        snakemake_cmd(workdir) + ["--cores", str(cores)], cwd=workdir, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


def comparable(path: Path):
    """attacks.parquet without its timing / host columns, rows in a stable order."""
    import pandas as pd

    df = pd.read_parquet(path)
    keep = [c for c in df.columns if not any(v in c for v in VOLATILE)]
    return df[keep].sort_values("run").reset_index(drop=True)


def compare_attack_tables(got: Path, expected: Path) -> None:
    import pandas as pd

    a, b = comparable(got), comparable(expected)
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
