"""The metric stage's intervals: additions that change no value, saved per-reconstruction values."""

import json

import numpy as np
import pytest

from mibench_core import store
from mibench_core.stats import PER_SAMPLE, load_per_sample
from tests.whitebox_tiny import build_data, build_target, job, run_attack_job

METRICS = [
    {"name": "accuracy", "label": "accuracy", "params": {}},
    {"name": "knn_distance", "label": "knn_distance", "params": {}},
    {"name": "feature_distance", "label": "feature_distance", "params": {}},
    {"name": "prdc", "label": "prdc", "params": {"k": 3}},
    {"name": "eval_frechet", "label": "eval_frechet", "params": {}},
    {"name": "psnr_ssim", "label": "psnr_ssim", "params": {"max_reference_per_class": None}},
    {"name": "sok", "label": "sok", "params": {}},
]


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("intervals")
    data = build_data(root)
    target = build_target(root, data)
    evaluation = build_target(root, data, arch="evalcnn", arch_params={"width": 4})
    attack, _ = run_attack_job(root, "deepinversion", data, target, per_class=6, iterations=5)
    return root, {"attack": attack, "data": data, "target": target, "evaluation": evaluation}


def metric_job(root, inputs, out: str, bootstrap: int):
    from mibench_core.cli import run_job

    j = job("metric", "metrics", {"metrics": METRICS}, root / out, inputs, seed=7)
    j["options"] = {"weights": {}, "statistics": {"bootstrap": bootstrap, "confidence": 0.95}}
    manifest = run_job(j)
    return manifest, store.read_json(root / out / "metrics.json")


def test_intervals_change_no_value_and_bracket_the_means(run_dirs):
    root, inputs = run_dirs
    manifest, with_ci = metric_job(root, inputs, "m-ci", 500)
    _, without = metric_job(root, inputs, "m-none", 0)
    assert with_ci["overall"] == without["overall"] and with_ci["per_class"] == without["per_class"]
    assert with_ci["ci"]["acc1"] == without["ci"]["acc1"]  # Wilson: no resampling
    assert PER_SAMPLE in manifest["files"] and with_ci["n_recon"] == 18
    ci = with_ci["ci"]
    for name in ("acc1", "knn_dist", "feat_dist", "precision", "density", "psnr", "ssim", "sok_ssim", "eval_fd"):
        lo, hi = ci[name]
        value = with_ci["overall"][name]
        assert lo - 1e-6 * abs(value) <= value <= hi + 1e-6 * abs(value), name
    for name in ("recall", "coverage", "sok_alpha_ssim"):
        assert name not in ci and "biased low" in with_ci["ci_notes"][name]
    assert set(without["ci"]) == {"acc1"} and "bootstrap is 0" in without["ci_notes"]["knn_dist"]
    assert "500 resamples" in with_ci["intervals"]["method"]
    assert "conditional on this run's models" in with_ci["intervals"]["method"]
    # every estimate in float64 lies inside its interval (Acc@1 of 18 in 3 classes: a multiple of 1/18)
    lo, hi = ci["acc1"]
    assert lo <= with_ci["overall"]["acc1"] <= hi and lo < hi and 0 <= lo and hi <= 1
    assert with_ci["overall"]["acc1"] == round(with_ci["overall"]["acc1"] * 18) / 18
    assert 0 < with_ci["n_eff"]["acc1"] <= 18


def test_per_sample_values_give_the_overall_values(run_dirs):
    from mibench_core import stats

    root, inputs = run_dirs
    metric_job(root, inputs, "m-ps", 200)
    payload = store.read_json(root / "m-ps" / "metrics.json")
    labels, values, stat = load_per_sample(root / "m-ps")
    assert len(labels) == 18 and sorted(set(labels.tolist())) == [0, 1, 2]
    assert stat["precision"] == "class_mean" and stat["acc1"] == "mean"
    for name, v in values.items():
        again = stats.resampled_statistic(v, labels, stat=stat[name])[0]
        assert again == pytest.approx(payload["overall"][name], rel=1e-6), name
    assert set(np.unique(values["acc1"])) <= {0.0, 1.0}
    # same seed, same resamples: the job is deterministic
    metric_job(root, inputs, "m-ps2", 200)
    assert json.loads((root / "m-ps2" / "metrics.json").read_text())["ci"] == payload["ci"]


def test_one_reconstruction_per_class_gets_a_reason_not_an_interval(tmp_path_factory):
    root = tmp_path_factory.mktemp("one-per-class")
    data = build_data(root)
    target = build_target(root, data)
    evaluation = build_target(root, data, arch="evalcnn", arch_params={"width": 4})
    attack, _ = run_attack_job(root, "deepinversion", data, target, per_class=1, iterations=2)
    inputs = {"attack": attack, "data": data, "target": target, "evaluation": evaluation}
    _, payload = metric_job(root, inputs, "m-one", 100)
    assert payload["ci"] == {}
    for name in ("acc1", "knn_dist", "psnr", "eval_fd"):
        if payload["overall"].get(name) is not None:
            assert "fewer than two reconstructions" in payload["ci_notes"][name], name
