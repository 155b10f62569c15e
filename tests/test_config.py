"""Config validation: structure by schema, names and hyperparameters by the registry."""

import copy
from pathlib import Path

import pytest
import yaml

from mibench_core.config import ConfigError, validate

REPO = Path(__file__).resolve().parent.parent


def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_and_smoke_configs_validate():
    cfg = validate(default_config())
    assert cfg["attacks"][0]["params"]["lr"] == 0.02  # paper default filled from the registry
    assert cfg["datasets"][0]["split"]["val_fraction"] == 0.1
    smoke = default_config()
    smoke.update(yaml.safe_load((REPO / "config" / "smoke.yaml").read_text()))
    validate(smoke)


@pytest.mark.parametrize(
    "mutate, key, words",
    [
        (lambda c: c["attacks"][0].update(name="gmx"), "attacks[0].name", ["unknown attack 'gmx'", "gmi"]),
        (lambda c: c["datasets"][0].update(name="celebz"), "datasets[0].name", ["fashion-mnist", "cifar10"]),
        (lambda c: c["targets"][0].update(arch="resnet9000"), "targets[0].arch", ["mcnn", "resnet18"]),
        (lambda c: c["attacks"][0].update(learning_rate=0.1), "attacks[0].learning_rate", ["valid: ", "lr"]),
        (lambda c: c["attacks"][0].update(iterations="many"), "attacks[0].iterations", ["expected int"]),
        (lambda c: c["attacks"][0].update(prior="nope"), "attacks[0].prior", ["no prior labelled 'nope'"]),
        (lambda c: c["metrics"].insert(1, {"name": "accuracy"}), "metrics[1].label", ["also used by metrics[0]"]),
        (lambda c: c["targets"][0]["train"].update(epochs=0), "targets[0].train.epochs", ["minimum"]),
        (lambda c: c.update(devise="cpu"), "<root>", ["devise"]),
        (lambda c: c["evaluation"].update(arch="mcnn"), "evaluation.arch", ["different architecture"]),
        (
            lambda c: c["datasets"][0]["split"].update(public_classes=[4, 5]),
            "datasets[0].split.public_classes",
            ["overlaps"],
        ),
    ],
)
def test_invalid_config_fails_naming_the_key(mutate, key, words):
    cfg = copy.deepcopy(default_config())
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    msg = str(err.value)
    assert f"config key '{key}'" in msg
    for w in words:
        assert w in msg


def test_validate_does_not_mutate_its_input():
    cfg = default_config()
    before = copy.deepcopy(cfg)
    validate(cfg)
    assert cfg == before


def test_snakemake_dry_run_rejects_bad_config_before_any_job(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("attacks:\n  - {name: gmx, prior: gmi-gan}\n")
    snakemake = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run(
        [str(snakemake), "-n", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "config key 'attacks[0].name': unknown attack 'gmx'" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
