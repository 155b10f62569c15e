"""Execution profiles: what the Slurm and generic cluster profiles hand to a scheduler."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from tests.smoke import REPO, SMOKE

PROFILES = REPO / "workflow" / "profiles"
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def test_slurm_profile_settings():
    prof = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    assert prof["executor"] == "slurm"
    text = (PROFILES / "slurm" / "config.yaml").read_text()
    # the user's settings are documented in the profile (commented until filled in)
    for key in ("slurm_partition", "slurm_account", "gpu_model"):
        assert re.search(rf"^#\s+.*{key}", text, flags=re.M), key
    # a real cluster has accounting: the test-only status flags stay out of the profile
    assert not any(k.startswith("slurm-status-command") or k == "slurm-no-account" for k in prof)
    generic = yaml.safe_load((PROFILES / "cluster-generic" / "config.yaml").read_text())
    assert generic["executor"] == "cluster-generic"
    submit = generic["cluster-generic-submit-cmd"]
    for placeholder in ("{threads}", "{resources.mem_mb}", "{resources.runtime}"):
        assert placeholder in submit
    assert (REPO / "profiles" / "default" / "config.yaml").exists()  # the workflow profile through the link


def test_every_job_rule_declares_its_resources():
    rules = 0
    for path in RULE_FILES:
        text = path.read_text()
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", text, flags=re.M | re.S):
            name, body = m.groups()
            rules += 1
            stage = re.search(r'threads: res\("(\w+)", "threads"\)', body)
            assert stage, f"rule {name}: threads from res()"
            for key in ("mem_mb", "runtime"):
                assert f'{key}=res("{stage.group(1)}", "{key}")' in body, (name, key)
            if stage.group(1) != "report":  # stages that may use a GPU declare it
                assert f'gpu=res("{stage.group(1)}", "gpu")' in body, name
    assert rules >= 9


@pytest.mark.parametrize("profile", ["slurm", "cluster-generic"])
def test_profile_plans_the_smoke_config(profile, tmp_path):
    pytest.importorskip(f"snakemake_executor_plugin_{profile.replace('-', '_')}")
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(SMOKE), "--profile", str(PROFILES / profile), "--nolock"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f"profiles/{profile}" in out and "workflow specific profile" in out and "profiles/default" in out
    assert re.search(r"^total\s+\d+", out, flags=re.M)
