"""Conda environments: `snakemake --use-conda` cannot run here (no conda), so check
statically that each env file parses, pins exactly pyproject.toml's dependencies, installs
this package, and that every rule that runs Python names an env file that exists."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from tests.smoke import REPO

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]


def _pyproject() -> dict:
    with open(REPO / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def _pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([A-Za-z0-9_.+\-]+)", line.strip())
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def _pip_section(env: dict) -> list[str]:
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return dep["pip"]
    return []


def test_env_files_exist():
    assert ENV_FILES, "no envs/*.yaml"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_file_pins_pyproject_and_installs_package(path):
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and env.get("channels") and env.get("dependencies"), path
    pip = _pip_section(env)
    project = _pyproject()["project"]
    wanted = _pins(project["dependencies"])
    assert len(wanted) == len(project["dependencies"]), "every pyproject dependency is pinned with =="
    assert _pins(pip) == wanted
    # python: a pinned conda package that satisfies requires-python
    py = [d for d in env["dependencies"] if isinstance(d, str) and re.fullmatch(r"python[=<>]+.*", d)]
    assert py, "the env pins python"
    minimum = tuple(int(x) for x in project["requires-python"].removeprefix(">=").split("."))
    version = tuple(int(x) for x in re.split(r"[=<>]+", py[0])[1].split(".")[:2])
    assert version >= minimum
    assert "pip" in env["dependencies"]
    # this package, from the repository the Snakefile sets MIBENCH_ROOT to (see the env's header)
    editable = [line for line in pip if line.startswith("-e ")]
    assert editable == ["-e ${MIBENCH_ROOT}"], pip
    assert 'os.environ["MIBENCH_ROOT"] = workflow.basedir' in (REPO / "Snakefile").read_text()
    root = os.path.expandvars(editable[0][3:]).replace("${MIBENCH_ROOT}", str(REPO))
    with open(os.path.join(root, "pyproject.toml"), "rb") as fh:
        assert tomllib.load(fh)["project"]["name"] == "mibench"


def _rules(path):
    text = path.read_text()
    starts = [m for m in re.finditer(r"^(?:rule|checkpoint) (\w+):", text, flags=re.M)]
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        yield m.group(1), text[m.end() : end]


def test_every_python_rule_names_an_env():
    checked = 0
    for path in RULE_FILES:
        for name, body in _rules(path):
            runs_python = re.search(r"^\s+script:", body, flags=re.M) or (
                re.search(r"^\s+shell:", body, flags=re.M) and re.search(r"MIBENCH|python", body)
            )
            if not runs_python:
                continue
            checked += 1
            conda = re.search(r'^\s+conda:\s*\n?\s*"([^"]+)"', body, flags=re.M)
            assert conda, f"rule {name} ({path.name}) runs Python but names no conda env"
            env = (path.parent / conda.group(1)).resolve()
            assert env.exists() and env.parent == REPO / "envs", f"rule {name}: {conda.group(1)} -> {env}"
    assert checked >= 9  # data, model, prior, attack, metric and the report rules
