"""A corpus of malformed configs: each one is refused before any job, by a message naming the key
(or the file, and line). Each is an overlay over config/smoke.yaml, loaded as `mibench plan -c` and the
Snakefile load it (mibench_core.config.checked: validation, then the preflight)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mibench_core.cli import _load_config, main
from mibench_core.config import ConfigError
from tests.smoke import REPO, SMOKE

GMI = "attacks:\n  - {name: gmi, prior: gmi-gan, per_class: 2, iterations: 3, %s}\n"
PRIORS = "priors:\n  - {name: gmi-gan, dim: 8, steps: 2, %s}\n" + GMI % "restarts: 1"
DATA = "datasets:\n  - {name: sklearn-digits, resolution: 16, %s}\n"
SPLIT = DATA % "split: {mode: class-disjoint, %s}"
TARGET = "targets:\n  - {arch: mcnn, arch_params: {width: 16}, train: {epochs: 1, %s}}\n"
DEFENSE = "defenses:\n  - {name: %s}\n"
OUTPUT = "attacks:\n  - {name: rlb-mi, prior: gmi-gan, per_class: 2, episodes: 2}\noutput_defenses:\n  - %s\n"
METRICS = "metrics:\n  - {name: accuracy}\n  - %s\n"

# (id, overlay YAML, the key the refusal must name, words it must say)
CASES = [
    # attacks: the registry's bounds, types and names
    ("attack-negative-iterations", GMI % "iterations: -5", "attacks[0].iterations", ["-5", "[1, inf)"]),
    ("attack-zero-iterations", GMI % "iterations: 0", "attacks[0].iterations", ["[1, inf)"]),
    ("attack-zero-per-class", GMI % "per_class: 0", "attacks[0].per_class", ["[1, inf)"]),
    ("attack-zero-restarts", GMI % "restarts: 0", "attacks[0].restarts", ["[1, inf)"]),
    ("attack-nan-lr", GMI % "lr: .nan", "attacks[0].lr", ["nan", "refused"]),
    ("attack-inf-lr", GMI % "lr: .inf", "attacks[0].lr", ["inf", "refused"]),
    ("attack-negative-lr", GMI % "lr: -0.1", "attacks[0].lr", ["(0, inf)"]),
    ("attack-zero-lr", GMI % "lr: 0", "attacks[0].lr", ["(0, inf)"]),
    ("attack-momentum-one", GMI % "momentum: 1.0", "attacks[0].momentum", ["[0, 1)"]),
    ("attack-fractional-iterations", GMI % "iterations: 2.5", "attacks[0].iterations", ["expected int"]),
    ("attack-word-iterations", GMI % "iterations: many", "attacks[0].iterations", ["expected int"]),
    ("attack-negative-lambda", GMI % "lambda_iden: -1", "attacks[0].lambda_iden", ["[0, inf)"]),
    ("attack-unknown-parameter", GMI % "learning_rate: 0.1", "attacks[0].learning_rate", ["valid: ", "lr"]),
    ("attack-unknown-name", "attacks:\n  - {name: gmx, prior: gmi-gan}\n", "attacks[0].name", ["unknown attack"]),
    ("attack-label-with-dot", GMI % "label: gmi.x", "attacks[0].label", ["does not match"]),
    (
        "attack-duplicate-label",
        "attacks:\n  - {name: gmi, prior: gmi-gan}\n  - {name: gmi, prior: gmi-gan}\n",
        "attacks[1].label",
        ["also used by attacks[0]"],
    ),
    ("attack-without-prior", "attacks:\n  - {name: gmi}\n", "attacks[0].prior", ["needs a prior"]),
    ("attack-wrong-prior-kind", "attacks:\n  - {name: gmi, prior: kedmi-gan}\n", "attacks[0].prior", ["kind"]),
    (
        "attack-prior-it-does-not-use",
        "attacks:\n  - {name: deepinversion, prior: gmi-gan}\n",
        "attacks[0].prior",
        ["uses no prior"],
    ),
    ("attack-missing-aux", "attacks:\n  - {name: lomma-gmi, prior: gmi-gan}\n", "attacks[0].aux", ["takes 1"]),
    (
        "kedmi-zero-samples",
        "attacks:\n  - {name: kedmi, prior: kedmi-gan, samples_per_step: 0}\n",
        "attacks[0].samples_per_step",
        ["[1, inf)"],
    ),
    (
        "vmi-negative-kl",
        "attacks:\n  - {name: vmi, prior: gmi-gan, kl_weight: -1.0}\n",
        "attacks[0].kl_weight",
        ["[0, inf)"],
    ),
    (
        "deepinversion-negative-jitter",
        "attacks:\n  - {name: deepinversion, jitter: -1}\n",
        "attacks[0].jitter",
        ["[0, inf)"],
    ),
    (
        "secretgen-zero-candidates",
        "attacks:\n  - {name: secretgen, prior: gmi-gan, candidates: 0}\n",
        "attacks[0].candidates",
        ["[1, inf)"],
    ),
    (
        "brep-no-expansion",
        "attacks:\n  - {name: brep-mi, prior: gmi-gan, expansion: 1.0}\n",
        "attacks[0].expansion",
        ["(1, inf)"],
    ),
    (
        "brep-threshold-above-one",
        "attacks:\n  - {name: brep-mi, prior: gmi-gan, grow_threshold: 1.5}\n",
        "attacks[0].grow_threshold",
        ["[0, 1)"],
    ),
    (
        "rlb-gamma-above-one",
        "attacks:\n  - {name: rlb-mi, prior: gmi-gan, gamma: 1.5}\n",
        "attacks[0].gamma",
        ["[0, 1]"],
    ),
    (
        "rlb-zero-batch",
        "attacks:\n  - {name: rlb-mi, prior: gmi-gan, batch_size: 0}\n",
        "attacks[0].batch_size",
        ["[1, inf)"],
    ),
    ("rlb-zero-tau", "attacks:\n  - {name: rlb-mi, prior: gmi-gan, tau: 0}\n", "attacks[0].tau", ["(0, 1]"]),
    (
        "lokt-zero-surrogates",
        "attacks:\n  - {name: lokt, prior: lokt-tacgan, n_surrogates: 0}\n",
        "attacks[0].n_surrogates",
        ["[1, inf)"],
    ),
    (
        "secretgen-bb-zero-check",
        "attacks:\n  - {name: secretgen-bb, prior: gmi-gan, check_every: 0}\n",
        "attacks[0].check_every",
        ["[1, inf)"],
    ),
    (
        "learning-inversion-zero-k",
        "attacks:\n  - {name: learning-inversion, top_k: 0}\n",
        "attacks[0].top_k",
        ["[1, inf)"],
    ),
    (
        "learning-inversion-k-above-classes",
        "attacks:\n  - {name: learning-inversion, top_k: 7}\n",
        "attacks[0].top_k",
        ["5 private classes"],
    ),
    (
        "learning-inversion-fractional-k",
        "attacks:\n  - {name: learning-inversion, top_k: 2.5}\n",
        "attacks[0].top_k",
        ["expected an integer"],
    ),
    (
        "lomma-zero-public",
        "attacks:\n  - {name: lomma-gmi, prior: gmi-gan, aux: [students], max_public: 0}\n",
        "attacks[0].max_public",
        ["[1, inf)"],
    ),
    (
        "plgmi-zero-views",
        "attacks:\n  - {name: plgmi, prior: plgmi-gan, n_views: 0}\n",
        "attacks[0].n_views",
        ["[1, inf)"],
    ),
    # priors
    ("prior-negative-steps", PRIORS % "steps: -3", "priors[0].steps", ["[1, inf)"]),
    ("prior-zero-batch", PRIORS % "batch_size: 0", "priors[0].batch_size", ["[1, inf)"]),
    ("prior-zero-dim", PRIORS % "dim: 0", "priors[0].dim", ["[1, inf)"]),
    ("prior-zero-z-dim", PRIORS % "z_dim: 0", "priors[0].z_dim", ["[1, inf)"]),
    ("prior-beta-one", PRIORS % "beta1: 1.0", "priors[0].beta1", ["[0, 1)"]),
    ("prior-nan-lr", PRIORS % "lr: .nan", "priors[0].lr", ["refused"]),
    ("prior-zero-critic", PRIORS % "n_critic: 0", "priors[0].n_critic", ["[1, inf)"]),
    ("kedmi-gan-zero-public", "priors:\n  - {name: kedmi-gan, max_public: 0}\n", "priors[0].max_public", ["[1, inf)"]),
    (
        "students-zero-width",
        "priors:\n  - {name: lomma-students, widths: [8, 0]}\n",
        "priors[0].widths[1]",
        ["[1, inf)"],
    ),
    (
        "students-zero-temperature",
        "priors:\n  - {name: lomma-students, temperature: 0}\n",
        "priors[0].temperature",
        ["(0, inf)"],
    ),
    ("plgmi-gan-zero-top-n", "priors:\n  - {name: plgmi-gan, top_n: 0}\n", "priors[0].top_n", ["[1, inf)"]),
    (
        "lokt-gan-zero-samples",
        "priors:\n  - {name: lokt-tacgan, public_samples: 0}\n",
        "priors[0].public_samples",
        ["[1, inf)"],
    ),
    ("prior-unknown-name", "priors:\n  - {name: stylegan9}\n", "priors[0].name", ["unknown prior"]),
    # datasets: the schema, and what the dataset and the priors can give (preflight)
    (
        "resolution-no-prior-makes",
        SPLIT.replace("16", "12") % "private_classes: [0, 1], public_classes: [5, 6]",
        "datasets[0].resolution",
        ["gmi-gan", "12x12", "power of two"],
    ),
    ("resolution-below-minimum", DATA.replace("16", "4") % "channels: 1", "datasets[0].resolution", ["minimum"]),
    (
        "class-id-not-in-dataset",
        SPLIT % "private_classes: [0, 42], public_classes: [5, 6]",
        "datasets[0].split.private_classes",
        ["10 classes", "42"],
    ),
    (
        "public-class-not-in-dataset",
        SPLIT % "private_classes: [0, 1], public_classes: [5, 10]",
        "datasets[0].split.public_classes",
        ["10 classes"],
    ),
    (
        "duplicate-class-ids",
        SPLIT % "private_classes: [0, 0, 1], public_classes: [5, 6]",
        "datasets[0].split.private_classes",
        ["non-unique"],
    ),
    (
        "negative-class-id",
        SPLIT % "private_classes: [-1, 1], public_classes: [5, 6]",
        "datasets[0].split.private_classes[0]",
        ["minimum"],
    ),
    (
        "empty-public-classes",
        SPLIT % "private_classes: [0, 1], public_classes: []",
        "datasets[0].split.public_classes",
        ["should be non-empty"],
    ),
    (
        "overlapping-classes",
        SPLIT % "private_classes: [0, 1], public_classes: [1, 6]",
        "datasets[0].split.public_classes",
        ["overlaps"],
    ),
    (
        "val-fraction-one",
        SPLIT % "private_classes: [0], public_classes: [5], val_fraction: 1.0",
        "datasets[0].split.val_fraction",
        ["maximum"],
    ),
    (
        "test-fraction-zero",
        SPLIT % "private_classes: [0], public_classes: [5], test_fraction: 0",
        "datasets[0].split.test_fraction",
        ["minimum"],
    ),
    ("split-mode-unknown", SPLIT % "mode: random", "datasets[0].split.mode", ["is not one of"]),
    ("two-channels", DATA % "channels: 2", "datasets[0].channels", ["is not one of"]),
    ("zero-max-public", DATA % "max_public: 0", "datasets[0].max_public", ["minimum"]),
    ("dataset-unknown-name", "datasets:\n  - {name: celebz}\n", "datasets[0].name", ["unknown dataset"]),
    ("dataset-label-with-dot", DATA % "label: a.b", "datasets[0].label", ["does not match"]),
    ("dataset-empty-root", DATA % "root: ''", "datasets[0].root", ["should be non-empty"]),
    # targets and the evaluation model
    (
        "negative-width",
        "targets:\n  - {arch: mcnn, arch_params: {width: -4}}\n",
        "targets[0].arch_params.width",
        ["[1, inf)"],
    ),
    (
        "zero-width",
        "targets:\n  - {arch: mcnn, arch_params: {width: 0}}\n",
        "targets[0].arch_params.width",
        ["[1, inf)"],
    ),
    ("zero-epochs", TARGET % "epochs: 0", "targets[0].train.epochs", ["minimum"]),
    ("zero-train-batch", TARGET % "batch_size: 0", "targets[0].train.batch_size", ["minimum"]),
    ("zero-train-lr", TARGET % "lr: 0", "targets[0].train.lr", ["minimum"]),
    ("train-momentum-above-one", TARGET % "momentum: 1.5", "targets[0].train.momentum", ["maximum"]),
    ("unknown-optimizer", TARGET % "optimizer: rmsprop", "targets[0].train.optimizer", ["is not one of"]),
    (
        "evaluation-dropout-one",
        "evaluation: {arch: evalcnn, arch_params: {dropout: 1.0}}\n",
        "evaluation.arch_params.dropout",
        ["[0, 1)"],
    ),
    (
        "evaluation-same-as-target",
        "evaluation: {arch: mcnn, arch_params: {width: 16}}\n",
        "evaluation.arch",
        ["different architecture"],
    ),
    ("unknown-arch", "targets:\n  - {arch: resnet9000}\n", "targets[0].arch", ["unknown arch"]),
    (
        "unknown-arch-parameter",
        "targets:\n  - {arch: mcnn, arch_params: {depth: 3}}\n",
        "targets[0].arch_params.depth",
        ["has no parameter"],
    ),
    (
        "pretrained-without-digest",
        "targets:\n  - {arch: torchvision, arch_params: {model: resnet18, pretrained_weights: w/plain.pth}}\n",
        "targets[0].arch_params.pretrained_weights",
        ["no digest", "pretrained_unverified: true"],
    ),
    (
        "pretrained-bad-digest",
        "targets:\n  - {arch: torchvision, arch_params: {pretrained_weights: w/r.pth, pretrained_sha256: abc}}\n",
        "targets[0].arch_params.pretrained_sha256",
        ["64 hex digits"],
    ),
    # training-time defenses
    ("mid-negative-beta", "defenses:\n  - {name: mid, beta: -0.1}\n", "defenses[0].beta", ["[0, inf)"]),
    ("dp-delta-above-one", "defenses:\n  - {name: dp-sgd, delta: 1.5}\n", "defenses[0].delta", ["(0, 1)"]),
    (
        "dp-zero-noise",
        "defenses:\n  - {name: dp-sgd, noise_multiplier: 0}\n",
        "defenses[0].noise_multiplier",
        ["(0, inf)"],
    ),
    (
        "tl-fraction-above-one",
        "defenses:\n  - {name: tl, frozen_fraction: 2}\n",
        "defenses[0].frozen_fraction",
        ["[0, 1]"],
    ),
    ("ls-alpha-one", "defenses:\n  - {name: negative-ls, alpha: 1.0}\n", "defenses[0].alpha", ["[-1, 1)"]),
    ("bido-zero-sigma", "defenses:\n  - {name: bido, sigma: 0}\n", "defenses[0].sigma", ["(0, inf)"]),
    (
        "bido-unknown-estimator",
        "defenses:\n  - {name: bido, estimator: hsci}\n",
        "defenses[0].estimator",
        ["not one of hsic, coco"],
    ),
    (
        "mid-unknown-inference",
        "defenses:\n  - {name: mid, inference: average}\n",
        "defenses[0].inference",
        ["not one of sampled, mean"],
    ),
    ("at-zero-eps", "defenses:\n  - {name: adv-training, eps: 0}\n", "defenses[0].eps", ["(0, 1]"]),
    ("defense-unknown-name", DEFENSE % "nope", "defenses[0].name", ["unknown defense"]),
    (
        "defense-unknown-target",
        "defenses:\n  - {name: mid, targets: [vgg]}\n",
        "defenses[0].targets",
        ["no target labelled 'vgg'"],
    ),
    # output processing
    ("topk-zero", OUTPUT % "{name: topk, k: 0}", "output_defenses[0].k", ["[1, inf)"]),
    ("topk-above-classes", OUTPUT % "{name: topk, k: 9}", "output_defenses[0].k", ["5 private classes"]),
    ("rounding-negative", OUTPUT % "{name: rounding, decimals: -1}", "output_defenses[0].decimals", ["[0, inf)"]),
    ("noise-negative", OUTPUT % "{name: noise, std: -0.1}", "output_defenses[0].std", ["[0, inf)"]),
    ("output-unknown-name", OUTPUT % "{name: blur}", "output_defenses[0].name", ["unknown output"]),
    # metrics
    ("prdc-zero-k", METRICS % "{name: prdc, k: 0}", "metrics[1].k", ["[1, inf)"]),
    ("fid-one-private", METRICS % "{name: fid, max_private: 1}", "metrics[1].max_private", ["[2, inf)"]),
    ("lpips-tiny-resize", METRICS % "{name: lpips, resize: 8}", "metrics[1].resize", ["[32, inf)"]),
    (
        "facenet-tiny-images",
        METRICS % "{name: facenet_distance, image_size: 64}",
        "metrics[1].image_size",
        ["[75, inf)"],
    ),
    ("metric-unknown-name", METRICS % "{name: ssim9}", "metrics[1].name", ["unknown metric"]),
    ("metric-duplicate", METRICS % "{name: accuracy}", "metrics[1].label", ["also used by metrics[0]"]),
    # top level
    ("empty-results-dir", "results_dir: ''\n", "results_dir", ["should be non-empty"]),
    ("empty-tables-dir", "output: {tables: ''}\n", "output.tables", ["should be non-empty"]),
    ("fractional-seed", "seed: 1.5\n", "seed", ["is not of type 'integer'"]),
    ("unknown-device", "device: tpu\n", "device", ["is not one of"]),
    ("unknown-top-level-key", "devise: cpu\n", "<root>", ["devise"]),
    ("unknown-weight-file", "weights: {inception9: w.pth}\n", "weights.inception9", ["unknown weight file"]),
    (
        "weight-without-any-digest",
        "weights: {facenet-casia-webface: w/casia.pt}\n",
        "weights.facenet-casia-webface",
        ["no digest", "unverified: true"],
    ),
    (
        "weight-bad-digest",
        "weights: {fid-inception: {path: w.pth, sha256: xyz}}\n",
        "weights.fid-inception",
        ["not valid"],
    ),
    ("zero-threads", "resources: {attack: {threads: 0}}\n", "resources.attack.threads", ["minimum"]),
    ("unknown-stage-resources", "resources: {training: {threads: 2}}\n", "resources", ["training"]),
]


@pytest.fixture
def overlay(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "overlay.yaml"
        path.write_text(text)
        return str(path)

    return write


def test_the_corpus_is_large_and_each_case_distinct():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES) and len({c[1] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, text, key, words", CASES, ids=[c[0] for c in CASES])
def test_a_malformed_config_is_refused_naming_the_key(overlay, name, text, key, words):
    with pytest.raises(ConfigError) as err:
        _load_config([str(SMOKE), overlay(text)])
    msg = str(err.value)
    assert f"config key '{key}'" in msg, msg
    for w in words:
        assert w in msg, msg
    assert "Traceback" not in msg


NOT_A_CONFIG = [
    ("syntax-error", "attacks:\n  - {name: gmi, prior: gmi-gan\n", ["line 3, column 1", "not valid YAML"]),
    ("tab-indentation", "seed: 1\n\tdevice: cpu\n", ["line 2", "not valid YAML"]),
    ("empty-file", "", ["is empty"]),
    ("only-a-comment", "# nothing here\n", ["is empty"]),
    ("top-level-list", "- name: gmi\n- name: kedmi\n", ["top level must be a mapping", "not a list"]),
    ("top-level-scalar", "gmi\n", ["top level must be a mapping", "not a str"]),
]


@pytest.mark.parametrize("name, text, words", NOT_A_CONFIG, ids=[c[0] for c in NOT_A_CONFIG])
def test_a_file_that_is_not_a_config_is_refused_naming_the_file(overlay, capsys, name, text, words):
    path = overlay(text)
    with pytest.raises(ConfigError) as err:
        _load_config([str(SMOKE), path])
    msg = str(err.value)
    assert msg.startswith(f"config file {path}")
    for w in words:
        assert w in msg, msg
    # scripts/run.sh checks the --configfile files of a snakemake command line the same way
    assert main(["yaml-check", "--cores", "2", "--configfile", str(SMOKE), path, "-n"]) == 2
    assert capsys.readouterr().err.strip() == msg


@pytest.mark.parametrize(
    "text, where, value",
    [
        (GMI % "lr: 1e-3", ("attacks", 0, "lr"), 0.001),  # YAML 1.1 reads 1e-3 as a string
        (GMI % "lr: '2E-2'", ("attacks", 0, "lr"), 0.02),
        (GMI % "iterations: 1e3", ("attacks", 0, "iterations"), 1000),
        (GMI % "iterations: 20.0", ("attacks", 0, "iterations"), 20),
        (PRIORS % "lr: 1e-4", ("priors", 0, "lr"), 0.0001),
    ],
)
def test_numbers_written_as_yaml_strings_are_the_numbers_meant(overlay, text, where, value):
    cfg = _load_config([str(SMOKE), overlay(text)])
    section, i, key = where
    got = cfg[section][i]["params"][key]
    assert got == value and type(got) is type(value)


def test_schema_numbers_written_as_strings_too(overlay):
    cfg = _load_config([str(SMOKE), overlay(TARGET % "lr: 1e-3, batch_size: 6.4e1")])
    train = cfg["targets"][0]["train"]
    assert train["lr"] == 0.001 and train["batch_size"] == 64 and type(train["batch_size"]) is int


def test_explicit_unverified_files_are_accepted_and_recorded(overlay):
    text = ("targets:\n  - {arch: torchvision, arch_params: {model: resnet18, pretrained_weights: w/plain.pth, "
            "pretrained_unverified: true}}\n"
            "weights: {facenet-casia-webface: {path: w/casia.pt, unverified: true}}\n")  # fmt: skip
    import os

    os.environ["MIBENCH_PREFLIGHT"] = "0"  # the files themselves do not exist here
    try:
        cfg = _load_config([str(SMOKE), overlay(text)])
    finally:
        del os.environ["MIBENCH_PREFLIGHT"]
    assert cfg["targets"][0]["arch_params"]["pretrained_unverified"] is True  # in the spec, so in the manifest
    hub = "targets:\n  - {arch: torchvision, arch_params: {pretrained_weights: w/resnet18-f37072fd.pth}}\n"
    with pytest.raises(ConfigError, match="no such file w/resnet18-f37072fd.pth"):  # hub names carry a digest
        _load_config([str(SMOKE), overlay(hub)])


def test_the_dataset_checks_run_even_without_the_file_checks(overlay, monkeypatch):
    monkeypatch.setenv("MIBENCH_PREFLIGHT", "0")
    with pytest.raises(ConfigError, match=r"config key 'datasets\[0\].split.private_classes'"):
        _load_config([str(SMOKE), overlay(SPLIT % "private_classes: [0, 42], public_classes: [5, 6]")])


def test_the_resolution_rule_is_the_priors_own():
    from mibench_core import preflight, registry
    from mibench_core.priors.common import n_blocks

    for res in range(1, 1025):
        try:
            n_blocks(res)
            ok = True
        except ValueError:
            ok = False
        assert preflight.dcgan_resolution_ok(res) == ok, res
    from mibench_core.fingerprint import of_modules

    # a call of the DCGAN-style rule (n_blocks) or the StyleGAN prior's own check; not a definition, not a
    # method whose name ends the same (Synthesis.run_blocks)
    call = re.compile(r"(?<![\w.])(?<!def )(?:n_blocks|_check_resolution)\(")
    # a pretrained generator's resolution is its weights' (its images are resized to the target's input),
    # though it builds its network from the classes of the prior it converts into
    pretrained = {"stylegan2-ada"}
    for name, entry in registry.REGISTRIES["prior"].items():
        # a prior needs a power of two when its code (its module and what it imports) builds layers by that rule
        code = [(REPO / "mibench_core" / rel).read_text() for rel in of_modules(entry.module)]
        uses = any(call.search(src) for src in code) and name not in pretrained
        assert (name in preflight.POWER_OF_TWO_PRIORS) == uses, name


@pytest.mark.parametrize(
    "text",
    [GMI % "iterations: -5", SPLIT % "private_classes: [0, 42], public_classes: [5, 6]"],
    ids=["validation", "preflight"],
)
def test_plan_prints_what_snakemake_prints_and_snakemake_schedules_nothing(overlay, tmp_path, capsys, text):
    path = overlay(text)
    assert main(["plan", "-c", str(SMOKE), "-c", path]) == 2
    captured = capsys.readouterr()
    message = captured.err.strip()
    assert message and "Traceback" not in captured.err and not captured.out
    snakemake = Path(sys.executable).parent / "snakemake"
    workdir = tmp_path / "work"
    workdir.mkdir()
    proc = subprocess.run(
        [str(snakemake), "-n", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
         str(SMOKE), path],  # fmt: skip
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out[-3000:]
    assert "Job stats" not in out and not (workdir / "results").exists()
