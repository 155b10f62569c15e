"""The smoke config through a real single-node Slurm.

Brings up munged, slurmctld and slurmd (Debian's ``slurm-wlm`` and ``munge``,
installed with apt-get by this test when missing) with every state, spool,
pid, log and socket file in a temporary folder and free ports, runs
``config/smoke.yaml`` narrowed to one prior and a white-box and a black-box
attack (every stage, a fraction of the jobs) with ``--profile
workflow/profiles/slurm``, compares its ``attacks.parquet`` with the same
rows of the local smoke run of this session, checks that the jobs were
Slurm jobs, and stops every daemon it started by pid.

There is no accounting database here, so the command line adds
``--slurm-status-command squeue --slurm-no-account`` (kept out of the profile:
real clusters have sacct). Skipped only where Slurm cannot be installed (not
root, or no apt-get).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.smoke import ATTACKS, REPO, SBIN, SMOKE, comparable, ensure_installed, snakemake_cmd, which

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

PACKAGES = {"slurmctld": "slurm-wlm", "slurmd": "slurm-wlm", "sbatch": "slurm-wlm", "munged": "munge"}
ATTACKS_RUN = ("gmi", "rlb-mi")  # white-box and black-box (through the oracle), one shared prior


def narrowed_smoke() -> dict:
    """An overlay of config/smoke.yaml keeping its GMI prior and two of its attacks, as they are there."""
    smoke = yaml.safe_load(SMOKE.read_text())
    return {
        "priors": [p for p in smoke["priors"] if p["name"] == "gmi-gan"],
        "attacks": [a for a in smoke["attacks"] if a["name"] in ATTACKS_RUN],
        "membership": {"enabled": False},
        "split_inference": {"targets": []},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_pid(path: Path, timeout: float = 30) -> int:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists() and path.read_text().strip():
            return int(path.read_text().split()[0])
        time.sleep(0.2)
    raise RuntimeError(f"daemon wrote no pid file {path}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(pid: int, timeout: float = 20) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if not _alive(pid):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


class MiniSlurm:
    """munged + slurmctld + slurmd in one folder; ``env`` points clients at it."""

    def __init__(self, root: Path, cpus: int = 2, mem_mb: int = 16000):
        self.root = root
        self.cpus = cpus
        self.mem_mb = mem_mb
        self.pids: dict[str, int] = {}
        self.munge_parent: Path | None = None
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        # Inside a job, snakemake-executor-plugin-slurm-jobstep runs `srun` with every SLURM_*
        # variable removed (SLURM_CONF included), so srun would look for /etc/slurm/slurm.conf.
        # Rather than write a system file, an `srun` first on PATH (exported to jobs) names ours.
        self.bin = root / "bin"
        self.env["PATH"] = os.pathsep.join(
            [str(self.bin), str(Path(sys.executable).parent), self.env.get("PATH", ""), *SBIN]
        )

    def start(self) -> None:
        r = self.root
        for d in (r / "state", r / "spool", r / "log", self.bin):
            d.mkdir(parents=True, exist_ok=True)
        srun = self.bin / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {which("srun")} "$@"\n')
        srun.chmod(0o755)
        # munged runs as the munge user, who cannot enter pytest's private tmp folders
        self.munge_parent = Path(tempfile.mkdtemp(prefix="mibench-munge-"))
        self.munge_parent.chmod(0o711)
        munge_dir = self.munge_parent / "munge"
        munge_dir.mkdir(mode=0o700)
        shutil.chown(munge_dir, "munge", "munge")
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run([which("mungekey") or "mungekey", "--create", f"--keyfile={key}"], check=True)
            shutil.chown(key, "munge", "munge")
            key.chmod(0o400)
        sock = munge_dir / "munge.socket"
        subprocess.run(
            [
                "runuser", "-u", "munge", "--", which("munged"), "--force",
                f"--socket={sock}", f"--pid-file={munge_dir / 'munged.pid'}",
                f"--log-file={munge_dir / 'munged.log'}", f"--seed-file={munge_dir / 'munged.seed'}",
            ],
            check=True, env=self.env, timeout=60,
        )  # fmt: skip
        self.pids["munged"] = _read_pid(munge_dir / "munged.pid")
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=mibench-test",
                    f"SlurmctldHost={self.host}(127.0.0.1)",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={sock}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool'}",
                    f"SlurmctldPidFile={r / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'slurmd.pid'}",
                    f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb} State=UNKNOWN",
                    f"PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        subprocess.run([which("slurmctld"), "-f", str(self.conf)], check=True, env=self.env, timeout=60)
        self.pids["slurmctld"] = _read_pid(r / "slurmctld.pid")
        subprocess.run([which("slurmd"), "-f", str(self.conf)], check=True, env=self.env, timeout=60)
        self.pids["slurmd"] = _read_pid(r / "slurmd.pid")
        self.wait_idle()

    def wait_idle(self, timeout: float = 60) -> None:
        t0 = time.time()
        out = ""
        while time.time() - t0 < timeout:
            proc = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True)
            out = proc.stdout.strip() + proc.stderr.strip()
            if out == "idle":
                return
            time.sleep(1)
        raise RuntimeError(f"Slurm node not idle after {timeout}s (sinfo: {out!r}); logs in {self.root / 'log'}")

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "munged"):
            if name in self.pids:
                _stop(self.pids[name])
        if self.munge_parent is not None and self.stopped():
            shutil.rmtree(self.munge_parent, ignore_errors=True)

    def stopped(self) -> bool:
        return not any(_alive(pid) for pid in self.pids.values())


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    ensure_installed(PACKAGES, "Slurm")
    cluster = MiniSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
    assert cluster.stopped(), f"daemons still running: {cluster.pids}"


def test_slurm_profile_and_smoke_run(slurm, smoke_local, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir(exist_ok=True)
    logdir = tmp_path / "slurm_logs"
    overlay = tmp_path / "narrow.yaml"
    overlay.write_text(yaml.safe_dump(narrowed_smoke()))
    cmd = snakemake_cmd(workdir, overlay) + [
        "--profile",
        str(REPO / "workflow" / "profiles" / "slurm"),
        # test-only: no accounting database here, quick first status check, keep job logs
        "--slurm-status-command",
        "squeue",
        "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-keep-successful-logs",
        "--slurm-logdir",
        str(logdir),
        "--jobs",
        "4",
    ]
    proc = subprocess.run(cmd, cwd=workdir, env=slurm.env, capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]

    # every job but the local target `all` went through sbatch: the executor logs each Slurm job id,
    # Slurm wrote a log for it, and none failed (no resubmission)
    stats = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", out.split("Job stats:", 1)[1].split("total", 1)[0], flags=re.M))
    n_jobs = sum(int(v) for k, v in stats.items() if k not in ("job", "all"))
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", out)
    assert n_jobs >= 10 and len(job_ids) == len(set(job_ids)) == n_jobs, (stats, job_ids)
    logs = {p.stem: p for p in logdir.rglob("*.log")}
    assert set(job_ids) == set(logs), (job_ids, sorted(logs))
    for log in logs.values():
        assert "Finished job" in log.read_text() or "1 of 1 steps (100%) done" in log.read_text(), log

    # the same numbers as those runs of the local smoke run of this session (timing and host columns aside)
    got, expected = comparable(workdir / ATTACKS), comparable(smoke_local / ATTACKS)
    assert sorted(got["attack"]) == sorted(ATTACKS_RUN), got["run"].tolist()
    expected = expected[expected["run"].isin(got["run"])].reset_index(drop=True)
    # the local run's extra columns are other attacks' parameters, empty in these rows
    extra = [c for c in expected.columns if c not in got.columns]
    assert set(got.columns) <= set(expected.columns) and expected[extra].isna().all().all(), extra
    # values exactly; a column that is empty for the local run's other attacks is float there, int here
    pd.testing.assert_frame_equal(got, expected[list(got.columns)], check_exact=True, check_dtype=False)
