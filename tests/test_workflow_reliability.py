"""Reliability of real runs of the workflow (config/smoke.yaml): a kill -9 at any stage and the same
command again; a copied or moved project; a renamed run; a flipped bit in a cached artifact.

The session's one smoke run (tests/conftest.py: smoke_local) is the reference: the interrupted run
uses a small overlay (one prior, one attack) whose artifacts are the smoke run's own (the same
content ids), so its table row must equal the smoke run's exactly (timing columns aside)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.smoke import REPO, SMOKE, comparable, compare_attack_tables
from tests.test_verify import flip_bit

pytestmark = pytest.mark.slow

TABLE = Path("results/smoke/tables/attacks.parquet")
TINY = {  # the smoke run's GMI prior and attack, nothing else
    "priors": [{"name": "gmi-gan", "dim": 16, "steps": 20, "batch_size": 32}],
    "attacks": [{"name": "gmi", "prior": "gmi-gan", "per_class": 4, "iterations": 10, "restarts": 2}],
    "membership": {"enabled": False},
    "split_inference": {"targets": []},
}
CODE = ("Snakefile", "workflow", "mibench_core", "config", "envs", "pyproject.toml", "profiles")
ARTIFACT_RULES = ("prepare_data", "make_view", "train_model", "train_prior", "run_attack", "compute_metrics")


def env() -> dict:
    out = dict(os.environ)
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out['PATH']}"  # the venv's python for jobs
    return out


def project(dest: Path, results_from: Path | None = None) -> Path:
    """A checkout at ``dest`` (this one's code), with a finished run's results and .snakemake if given."""
    dest.mkdir(parents=True)
    for name in CODE:
        src = REPO / name
        if src.is_symlink():
            os.symlink(os.readlink(src), dest / name)
        elif src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    if results_from is not None:
        for name in ("results", ".snakemake"):
            shutil.copytree(results_from / name, dest / name, symlinks=True)
    return dest


def snakemake_args(*configs: str) -> list[str]:
    """The README's command, in the project folder: snakemake --cores N --configfile ..."""
    return [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/smoke.yaml", *configs]


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env(), timeout=1800)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def job_stats(out: str) -> dict[str, int]:
    if "Job stats" not in out:
        return {}
    block = out[out.index("Job stats") :].split("\n\n")[0].splitlines()[3:]
    return {line.split()[0]: int(line.split()[1]) for line in block if line.split() and line.split()[0] != "total"}


def dry_run(cwd: Path, *configs: str) -> dict[str, int]:
    out = run(cwd, *snakemake_args(*configs), "-n")
    text = out.stdout + out.stderr
    return {} if "Nothing to be done" in text else job_stats(text)


def test_a_copied_or_moved_project_plans_nothing(smoke_local, tmp_path):
    copied = project(tmp_path / "copy", results_from=smoke_local)
    assert dry_run(copied) == {}
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(copied, moved)
    assert dry_run(moved) == {}


def test_a_renamed_run_reruns_only_the_report(smoke_local, tmp_path):
    work = project(tmp_path / "work", results_from=smoke_local)
    smoke = yaml.safe_load(SMOKE.read_text())
    attacks = [dict(a) for a in smoke["attacks"]]
    assert attacks[0]["name"] == "gmi"
    attacks[0]["label"] = "gmi-renamed"
    (work / "relabel.yaml").write_text(yaml.safe_dump({"attacks": attacks}))
    stats = dry_run(work, "relabel.yaml")
    # Artifacts are content: none reruns. The report steps that list labels do: the aggregate (its
    # params hold the row labels), everything drawn from its table (an input that changed), and the
    # reconstruction figure of the new label (a file of that name does not exist yet).
    assert not set(stats) & {*ARTIFACT_RULES, "plot_prior_samples"}, stats
    assert stats["aggregate_results"] == 1 and stats["plot_reconstructions"] == 1
    report = {"aggregate_results", "plot_reconstructions", "render_tables", "plot_comparison", "plot_queries",
              "render_defense_matrix", "plot_perspective", "summarise_results", "rank_methods", "check_claims",
              "render_paper_attacks", "render_paper_defenses", "defense_threats"}  # fmt: skip
    assert set(stats) - {"all"} <= report, stats
    run(work, *snakemake_args("relabel.yaml"))
    got, before = comparable(work / TABLE), comparable(smoke_local / TABLE)
    assert "sklearn-digits.mcnn.none.gmi-renamed" in set(got["run"]) and "gmi-renamed" in set(got["attack"])
    renamed = got["run"] == "sklearn-digits.mcnn.none.gmi-renamed"
    for col in got.columns:  # run, attack, setting: the label is all that changed
        if any(isinstance(v, str) for v in got[col]):
            values = [v.replace("gmi-renamed", "gmi") if r and isinstance(v, str) else v
                      for v, r in zip(got[col], renamed)]  # fmt: skip
            got[col] = pd.Series(values, index=got.index, dtype=got[col].dtype)
    got = got.sort_values("run").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, before, check_exact=True)  # the same numbers, the same artifact ids
    assert (work / "results/smoke/reports/figures/reconstructions/sklearn-digits.mcnn.none.gmi-renamed.png").exists()


def _mibench_verify(cwd: Path, *configs: str) -> subprocess.CompletedProcess:
    args = [a for c in ("config/smoke.yaml", *configs) for a in ("-c", c)]
    return run(cwd, sys.executable, "-m", "mibench_core.cli", "verify", *args, check=False)


def _logs(work: Path) -> str:
    return "\n".join(p.read_text() for p in (work / "results/smoke/logs").rglob("*.log"))


def test_a_flipped_bit_is_caught_by_verify_and_by_the_job_that_reads_it(smoke_local, tmp_path):
    work = project(tmp_path / "work", results_from=smoke_local)
    assert _mibench_verify(work).returncode == 0
    results = work / "results" / "smoke"
    target = next(p.parent for p in (results / "models").glob("mcnn-*/manifest.json"))
    recon = next(p.parent for p in (results / "attacks").glob("vmi-*/manifest.json"))

    # 1. mtime kept: Snakemake sees nothing to do; `mibench verify` and a job that reads it do
    flip_bit(target / "model.safetensors", keep_mtime=True)
    assert dry_run(work) == {}
    out = _mibench_verify(work)
    assert out.returncode == 1 and f"CORRUPT model {target.name}" in out.stdout
    assert out.stdout.count("CORRUPT") == 1 and f"delete the folder results/smoke/models/{target.name}" in out.stdout
    attack = next(p for p in (results / "attacks").glob("gmi-*/manifest.json"))
    proc = run(work, *snakemake_args(), "--force", str(attack.relative_to(work)), check=False)
    assert proc.returncode != 0
    said = _logs(work)
    assert f"input 'target': model {target.name}" in said and "model.safetensors: sha256" in said
    assert "To rebuild it, delete the folder" in said

    # 2. touched: Snakemake reruns what reads it, and each of those jobs refuses it
    for folder in (target, attack.parent):  # back as they were (Snakemake removed the failed job's outputs)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(smoke_local / folder.relative_to(work), folder)
    flip_bit(recon / "recon.safetensors", keep_mtime=False)
    stats = dry_run(work)
    assert stats.get("compute_metrics") == 1 and stats.get("plot_reconstructions") == 1, stats
    proc = run(work, *snakemake_args(), "--keep-going", check=False)
    assert proc.returncode != 0
    said = _logs(work)
    assert f"input 'attack': attack {recon.name}" in said  # the metrics job
    assert f"attack {recon.name} (results/smoke/attacks/{recon.name}) does not match its manifest" in said  # figure
    compare_attack_tables(work / TABLE, smoke_local / TABLE)  # the table was not rebuilt from it

    # 3. the rebuild the message asks for: delete the folder, run again; the same numbers come back
    shutil.rmtree(recon)
    run(work, *snakemake_args())
    assert _mibench_verify(work).returncode == 0
    compare_attack_tables(work / TABLE, smoke_local / TABLE)


def _running(work: Path, stage: str, since: float) -> bool:
    """A job of ``stage`` started by this run (its log written since ``since``) has not finished."""
    logs = work / "results" / "smoke" / "logs" / stage
    if stage == "report":
        log = logs / "aggregate_results.log"
        return log.exists() and log.stat().st_mtime >= since and not (work / TABLE).exists()
    for log in logs.glob("*.log") if logs.is_dir() else []:
        if log.stat().st_mtime >= since and not (work / "results/smoke" / stage / log.stem / "manifest.json").exists():
            return True
    return False


def _start(work: Path) -> subprocess.Popen:
    return subprocess.Popen(snakemake_args("tiny.yaml"), cwd=work, env=env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def test_kill_9_at_each_stage_then_the_same_command_finishes_with_the_same_table(smoke_local, tmp_path):
    work = project(tmp_path / "work")
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    notices = 0
    for stage in ("data", "priors", "attacks", "metrics", "report"):
        since = time.time() - 0.01
        proc = _start(work)
        deadline = since + 600
        while not _running(work, stage, since):
            assert proc.poll() is None, f"the run ended before reaching {stage}:\n{proc.stdout.read()[-3000:]}"
            assert time.time() < deadline, f"no {stage} job started in 10 minutes"
            time.sleep(0.1)
        if stage == "attacks":
            # a second run in the same folder while this one is alive is refused, as before; the run is
            # stopped (SIGSTOP) meanwhile, so its attack is still mid-way when it is killed below
            os.killpg(proc.pid, signal.SIGSTOP)
            second = run(work, *snakemake_args("tiny.yaml"), check=False)
            assert second.returncode != 0 and "LockException" in second.stdout + second.stderr
            assert "MIBench: removed" not in second.stdout + second.stderr
            assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: Snakemake and its jobs
        out = proc.communicate()[0]
        assert list((work / ".snakemake" / "locks").glob("*.lock")), f"{stage}: no lock left to recover"
        notices += "MIBench: removed" in out
    final = run(work, *snakemake_args("tiny.yaml"))
    notices += "MIBench: removed" in final.stdout + final.stderr
    assert notices == 5  # every run after a kill said, in one line, that it removed the dead run's lock
    assert "Nothing to be done" in (run(work, *snakemake_args("tiny.yaml"), "-n").stdout)
    verified = _mibench_verify(work, "tiny.yaml")
    assert verified.returncode == 0 and "7 of 7 built artifacts verified, 0 corrupt" in verified.stdout
    got = comparable(work / TABLE).dropna(axis=1, how="all")
    want = comparable(smoke_local / TABLE)
    want = want[want["run"].isin(got["run"])].dropna(axis=1, how="all").reset_index(drop=True)
    assert list(got["run"]) == ["sklearn-digits.mcnn.none.gmi"] and sorted(got.columns) == sorted(want.columns)
    # the smoke table's columns of other attacks' parameters make some of its columns float (NaN elsewhere)
    cols = sorted(got.columns)
    pd.testing.assert_frame_equal(got[cols], want[cols], check_exact=True, check_dtype=False)
