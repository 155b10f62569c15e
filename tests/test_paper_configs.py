"""Paper configs and the preflight check."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import yaml

from mibench_core import preflight
from mibench_core.cli import _merge
from mibench_core.config import ConfigError, validate
from mibench_core.plan import build
from tests.smoke import REPO

PAPER = REPO / "config" / "paper-celeba64.yaml"
HIGHRES = REPO / "config" / "paper-highres-stylegan.yaml"
WEIGHTS = ["weights/vgg16_bn-6c64b313.pth", "weights/backbone_ir152_ms1m.pth", "weights/backbone_ir50_ms1m.pth",
           "weights/pt_inception-2015-12-05-6726825d.pth", "weights/alexnet-owt-7be5be79.pth"]  # fmt: skip


def _load(*paths) -> dict:
    cfg: dict = {}
    for p in (REPO / "config" / "config.yaml", *paths):
        _merge(cfg, yaml.safe_load(p.read_text()))
    return cfg


def _files(workdir):
    (workdir / "data" / "celeba64").mkdir(parents=True)
    for w in WEIGHTS:
        (workdir / w).parent.mkdir(exist_ok=True)
        (workdir / w).write_bytes(b"stand-in")


def _snakemake_n(workdir, *configfiles, env=None):
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", *map(str, configfiles), "--nolock"]  # fmt: skip
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300, env=env)
    return proc, time.time() - t0


def test_paper_config_protocol(tmp_path):
    raw = yaml.safe_load(PAPER.read_text())
    split = raw["datasets"][0]["split"]
    assert split["private_classes"] == list(range(1000))
    assert split["public_classes"] == list(range(1000, 10177))  # CelebA: 10,177 identities
    assert raw["datasets"][0]["resolution"] == 64
    assert [t["arch"] for t in raw["targets"]] == ["torchvision", "ir152", "facenet64"]
    assert raw["targets"][0]["arch_params"]["model"] == "vgg16_bn"
    assert raw["evaluation"]["arch"] == "facenet112"
    assert [p["name"] for p in raw["priors"]] == ["gmi-gan", "kedmi-gan", "plgmi-gan"]
    assert [a["name"] for a in raw["attacks"]] == ["gmi", "kedmi", "plgmi"]
    plan = build(validate(_load(PAPER)))
    kinds = [n.kind for n in plan.nodes.values()]
    assert kinds.count("model") == 4  # 3 targets + the evaluation model
    # GMI's prior is shared; KEDMI's and PLG-MI's are trained with each target's help
    assert kinds.count("prior") == 1 + 2 * 3
    assert len(plan.runs) == 9  # 3 targets x 3 attacks
    assert {r.prior for r in plan.runs} == {"gmi", "kedmi", "plgmi"}


def test_preflight_names_every_missing_file(tmp_path):
    cfg = validate(_load(PAPER))
    found = preflight.problems(cfg, tmp_path)
    text = "\n".join(found)
    assert "datasets[0].root" in text and "data/celeba64" in text
    for w in WEIGHTS:
        assert w in text
    assert "targets[1].arch_params.pretrained_weights" in text and "evaluation.arch_params.pretrained_weights" in text
    assert "'weights.fid-inception'" in text
    _files(tmp_path)
    assert preflight.problems(cfg, tmp_path) == []
    with pytest.raises(preflight.PreflightError, match="data/celeba64"):
        preflight.check(cfg, tmp_path / "elsewhere")


def test_preflight_rules():
    base = validate(_load())  # the default benchmark: nothing to provide
    assert preflight.problems(base) == []
    cfg = {"datasets": [{"name": "image-folder", "root": None}, {"name": "cifar10", "root": None, "download": True},
                        {"name": "mnist", "root": None, "download": False}],
           "priors": [{"name": "x", "params": {"checkpoint": "nope.pt", "note_file": "gone.txt", "steps": 3}}],
           "metrics": [{"name": "y", "params": {"weights": None}}]}  # fmt: skip
    found = preflight.problems(cfg)
    assert len(found) == 4, found
    assert "'datasets[0].root'" in found[0] and "needs a root" in found[0]
    assert "'datasets[2].root'" in found[1] and "download: true" in found[1]
    assert "'priors[0].params.checkpoint'" in found[2] and "'priors[0].params.note_file'" in found[3]


def test_dry_run_fails_before_any_job_naming_the_file(tmp_path):
    proc, _ = _snakemake_n(tmp_path, PAPER)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "data/celeba64" in out and "weights/backbone_ir152_ms1m.pth" in out, out[-2000:]
    assert "no job was started" in out and "Job stats" not in out


def test_dry_run_plans_in_seconds(tmp_path):
    _files(tmp_path)
    proc, seconds = _snakemake_n(tmp_path, PAPER)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out[out.index("Job stats") :], flags=re.M))
    # the data and its public view; 3 targets + evaluation; GMI's prior + KEDMI's and PLG-MI's per target;
    # 3 x 3 runs, a metric job, a reconstruction figure each; a sample figure per prior; one job per report
    # table or figure
    assert stats == {
        "prepare_data": "1",
        "make_view": "1",
        "train_model": "4",
        "train_prior": "7",
        "plot_prior_samples": "7",
        "run_attack": "9",
        "compute_metrics": "9",
        "plot_reconstructions": "9",
        "aggregate_results": "1",
        "plot_comparison": "1",
        "plot_perspective": "4",
        "plot_queries": "1",
        "render_defense_matrix": "1",
        "render_tables": "1",
        "summarise_results": "1",
        "rank_methods": "1",
        "check_claims": "1",
        "render_paper_attacks": "1",
        "render_paper_defenses": "1",
        "all": "1",
        "total": "62",
    }, out[-2000:]
    assert seconds < 60, seconds  # a few seconds on an idle machine


HIGHRES_FILES = ["weights/resnet18-f37072fd.pth", "weights/resnet152-394f9c45.pth",
                 "weights/densenet169-b2777c0a.pth", "weights/inception_v3_google-0cc3c7bd.pth",
                 "weights/stylegan2-ada-ffhq.safetensors"]  # fmt: skip
STYLEGAN_ATTACKS = ["ppa", "if-gmi", "mirror-wb", "mirror-bb", "c2fmi", "vmi-flow"]


def test_highres_stylegan_config_plans_the_stylegan_attacks_on_the_pretrained_prior():
    raw = yaml.safe_load(HIGHRES.read_text())
    assert raw["datasets"][0]["resolution"] == 224 and raw["datasets"][0]["label"] == "facescrub224"
    assert [p["name"] for p in raw["priors"]] == ["stylegan2-ada"]
    assert raw["priors"][0]["center_crop"] == 800
    assert [a["name"] for a in raw["attacks"]] == STYLEGAN_ATTACKS
    plan = build(validate(_load(HIGHRES)))
    assert len(plan.runs) == 3 * len(STYLEGAN_ATTACKS)  # 3 targets
    assert {r.prior for r in plan.runs} == {"stylegan2"}
    (prior,) = plan.of_kind("prior")
    assert prior.spec["params"]["weights_file"] == "weights/stylegan2-ada-ffhq.safetensors"
    ppa = next(n for n in plan.of_kind("attack") if n.name == "ppa")
    assert ppa.spec["params"]["candidates"] == 200 and ppa.spec["params"]["iterations"] == 50  # paper defaults


def _highres_files(workdir):
    (workdir / "data" / "facescrub").mkdir(parents=True)
    for w in HIGHRES_FILES:
        (workdir / w).parent.mkdir(exist_ok=True)
        (workdir / w).write_bytes(b"stand-in")


def test_highres_dry_run_names_the_missing_generator_then_plans(tmp_path):
    proc, _ = _snakemake_n(tmp_path, HIGHRES)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "no job was started" in out and "Job stats" not in out
    assert "priors[0].params.weights_file" in out and "weights/stylegan2-ada-ffhq.safetensors" in out, out[-2000:]
    assert "data/facescrub" in out
    _highres_files(tmp_path)
    proc, seconds = _snakemake_n(tmp_path, HIGHRES)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"^train_prior\s+1$", out, flags=re.M) and re.search(r"^run_attack\s+18$", out, flags=re.M)
    assert seconds < 60, seconds


def test_null_unsets_an_inherited_parameter():
    cfg = _load()
    cfg["evaluation"] = {"arch": "resnet18", "arch_params": {"width": None, "stem_stride": 1}}
    assert validate(cfg)["evaluation"]["arch_params"] == {"stem_stride": 1}
    cfg["evaluation"]["arch_params"]["width"] = 8
    with pytest.raises(ConfigError, match="has no parameter 'width'"):
        validate(cfg)
