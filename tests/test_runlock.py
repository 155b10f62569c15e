"""A Snakemake lock whose run is dead is removed by the next run; a live run's lock is kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLAIM = "import sys; from mibench_core import runlock; print(runlock.claim(sys.argv[1]), flush=True)"


def _claim(snakemake_dir: Path) -> str:
    """runlock.claim in a fresh process (each process holds its own lock until it exits)."""
    out = subprocess.run([sys.executable, "-c", CLAIM, str(snakemake_dir)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _holder(snakemake_dir: Path) -> subprocess.Popen:
    """A live 'run': claims, then sleeps holding the lock."""
    code = CLAIM + "; import time; time.sleep(120)"
    cmd = [sys.executable, "-c", code, str(snakemake_dir)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # it has claimed
    return proc


def _stale_locks(snakemake_dir: Path) -> list[Path]:
    locks = snakemake_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    paths = [locks / "0.input.lock", locks / "0.output.lock"]
    for p in paths:
        p.write_text("results/x/manifest.json\n")
    return paths


def test_nothing_to_do_without_locks(tmp_path):
    assert _claim(tmp_path / ".snakemake") == "None"


def test_locks_of_a_dead_run_are_removed_with_a_notice(tmp_path):
    sm = tmp_path / ".snakemake"
    paths = _stale_locks(sm)
    notice = _claim(sm)
    assert notice.startswith("MIBench: removed 2 stale Snakemake lock file(s)") and "\n" not in notice
    assert not any(p.exists() for p in paths)


def test_a_live_runs_locks_are_kept_until_it_is_killed(tmp_path):
    sm = tmp_path / ".snakemake"
    holder = _holder(sm)
    try:
        paths = _stale_locks(sm)  # as if the live run had locked its files
        assert _claim(sm) == "None" and all(p.exists() for p in paths)
        second = _holder(sm)  # two live runs: still nobody clears
        assert _claim(sm) == "None" and all(p.exists() for p in paths)
        os.kill(second.pid, signal.SIGKILL)
        second.wait()
        assert _claim(sm) == "None" and all(p.exists() for p in paths)
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # kill -9: the kernel drops its lock
        holder.wait()
    assert _claim(sm).startswith("MIBench: removed 2 stale")
    assert not any(p.exists() for p in paths)


def test_claim_is_idempotent_in_one_process(tmp_path):
    from mibench_core import runlock

    sm = tmp_path / ".snakemake"
    try:
        assert runlock.claim(sm) is None
        _stale_locks(sm)
        assert runlock.claim(sm) is None  # this process already holds it: its own locks are not stale
        assert _claim(sm) == "None"  # and others see it alive
    finally:
        runlock.release(sm)
    assert _claim(sm).startswith("MIBench: removed")
