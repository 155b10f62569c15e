"""Perspective figures and tables from a hand-made attacks table."""

import pandas as pd
import pytest

from mibench_core.report import perspectives


def row(dataset, target, defense, name, acc, acc1, knn, res=32, attack="gmi", **extra):
    return {
        "run": f"{dataset}.{target}.{defense}.{attack}", "dataset": dataset, "target": target, "defense": defense,
        "attack": attack, "target.defense.name": name, "target_test_acc": acc, "acc1": acc1, "knn_dist": knn,
        "dataset.name": "fashion-mnist", "dataset.resolution": res, "evaluation_test_acc": 0.9,
        "target.train.epochs": 5, "output_defense": "none", **extra,
    }  # fmt: skip


@pytest.fixture
def table(tmp_path):
    rows = [
        row("fm32", "mcnn", "none", "none", 0.90, 0.80, 10.0),
        row("fm32", "mcnn", "mid-lo", "mid", 0.88, 0.60, 12.0, **{"target.defense.params.beta": 0.003}),
        row("fm32", "mcnn", "mid-hi", "mid", 0.80, 0.40, 15.0, **{"target.defense.params.beta": 0.01}),
        row("fm32", "mcnn", "dp", "dp-sgd", 0.70, float("nan"), 20.0,
            **{"target.defense.params.noise_multiplier": 1.0, "target.defense.params.private": True,
               "target_defense.epsilon": 3.5,
               "target_defense.guarantee": "(eps=3.5, delta=1e-05), rdp accountant, q=0.01, 100 steps"}),
        row("fm32", "mcnn-short", "none", "none", 0.75, 0.50, 13.0),
        row("fm32", "mcnn", "none", "none", 0.90, 0.30, 11.0, attack="bb_topk1", output_defense="topk"),
    ]  # fmt: skip
    path = tmp_path / "attacks.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_present_perspectives_write_figures_and_tables(table, tmp_path):
    for name in ("privacy_utility", "predictive_power"):
        fig, md = tmp_path / f"{name}.png", tmp_path / f"{name}.md"
        perspectives.PERSPECTIVES[name](str(table), str(fig), str(md))
        assert fig.stat().st_size > 1000
        text = md.read_text()
        assert "Not in this configuration" not in text
    pu = (tmp_path / "privacy_utility.md").read_text()
    assert "beta=0.01" in pu and "noise_multiplier=1" in pu
    assert "| (eps=3.5, delta=1e-05), rdp accountant, q=0.01, 100 steps |" in pu  # every DP row: the guarantee
    assert "missing" in pu  # the NaN Acc@1 of the DP row is shown as missing, not 0
    assert "bb_topk1" not in pu  # output-processed rows are not privacy-utility points
    pp = (tmp_path / "predictive_power.md").read_text()
    assert "mcnn-short" in pp and "mid-lo" not in pp


def test_absent_perspectives_say_so_instead_of_failing(table, tmp_path):
    for name, hint in (("resolution", "resolution"), ("robustness", "adv-training")):
        fig, md = tmp_path / f"{name}.png", tmp_path / f"{name}.md"
        perspectives.PERSPECTIVES[name](str(table), str(fig), str(md))
        assert fig.exists()
        text = md.read_text()
        assert "Not in this configuration" in text and hint in text


def test_resolution_and_robustness_when_present(tmp_path):
    rows = [
        row("fm32", "mcnn", "none", "none", 0.9, 0.8, 10.0, res=32),
        row("fm64", "mcnn", "none", "none", 0.92, 0.7, 30.0, res=64),
        row("fm32", "mcnn", "at", "adv-training", 0.85, 0.9, 9.0, **{"target_defense.robust_test_acc": 0.6}),
    ]
    path = tmp_path / "a.parquet"
    pd.DataFrame(rows).to_parquet(path)
    perspectives.resolution(str(path), str(tmp_path / "r.png"), str(tmp_path / "r.md"))
    assert "| 64 |" in (tmp_path / "r.md").read_text()
    perspectives.robustness(str(path), str(tmp_path / "a.png"), str(tmp_path / "a.md"))
    text = (tmp_path / "a.md").read_text()
    assert "| 0.6 |" in text and "fm64" not in text


def test_defense_matrix_markdown_and_latex(table, tmp_path):
    md, tex = tmp_path / "m.md", tmp_path / "m.tex"
    perspectives.defense_matrix(str(table), str(md), str(tex))
    text = md.read_text()
    assert "| | none | dp | mid-hi | mid-lo |" in text
    assert "| natural acc. | 90.0 | 70.0 | 80.0 | 88.0 |" in text
    assert "| gmi Acc@1 | 80.0 | - | 40.0 | 60.0 |" in text
    assert "- `dp`: dp-sgd (noise_multiplier=1, private=True); guarantee (eps=3.5, delta=1e-05)" in text
    assert "| bb_topk1 Acc@1 | 30.0 | - | - | - |" in text
    latex = tex.read_text()
    assert r"\begin{tabular}{lcccc}" in latex and r"bb\_topk1 & 30.0 & - & - & - \\" in latex
    assert "Natural acc. & 90.0 & 70.0 & 80.0 & 88.0" in latex


def test_privacy_utility_compares_each_defense_with_the_undefended_model_of_equal_accuracy(table, tmp_path):
    perspectives.privacy_utility(str(table), str(tmp_path / "pu.png"), str(tmp_path / "pu.md"))
    lines = {ln.split(" | ")[3]: ln for ln in (tmp_path / "pu.md").read_text().splitlines() if ln.count(" | ") > 10}
    # undefended curve: (0.75, 0.50) and (0.90, 0.80); at 0.80: 0.5 + 0.3 * 0.05 / 0.15 = 0.6
    assert "| 0.4 | 0.6 | -0.2 |" in lines["mid-hi"]
    assert "| 0.6 | 0.76 | -0.16 |" in lines["mid-lo"]
    # knn: (0.75, 13) and (0.90, 10); at 0.80: 12, at 0.88: 10.4
    assert "| 15 | 12 | 3 |" in lines["mid-hi"] and "| 12 | 10.4 | 1.6 |" in lines["mid-lo"]
    assert "accuracy outside the undefended curve [0.75, 0.9]" in lines["dp"]  # 0.70: no extrapolation


def test_interpolate_hand_values():
    assert perspectives.interpolate([0.7, 0.9], [0.4, 0.8], 0.8) == pytest.approx(0.6)
    assert perspectives.interpolate([0.9, 0.7, 0.8], [0.8, 0.4, 0.7], 0.75) == pytest.approx(0.55)
    assert perspectives.interpolate([0.7, 0.9], [0.4, 0.8], 0.95) is None
    assert perspectives.interpolate([0.7, 0.9], [0.4, 0.8], 0.7) == pytest.approx(0.4)


def test_bido_estimators_and_mid_deployments_are_separate_lines(tmp_path):
    rows = [
        row("fm32", "mcnn", "none", "none", 0.90, 0.80, 10.0),
        row("fm32", "mcnn-1ep", "none", "none", 0.75, 0.45, 13.0),
        row("fm32", "mcnn", "bido-hsic", "bido", 0.80, 0.50, 12.0, **{"target.defense.params.estimator": "hsic"}),
        row("fm32", "mcnn", "bido-coco", "bido", 0.85, 0.70, 11.0, **{"target.defense.params.estimator": "coco"}),
        row("fm32", "mcnn", "mid-s", "mid", 0.85, 0.60, 11.0, **{"target.defense.params.inference": "sampled"}),
        row("fm32", "mcnn", "mid-m", "mid", 0.86, 0.70, 11.0, **{"target.defense.params.inference": "mean"}),
    ]
    path = tmp_path / "a.parquet"
    pd.DataFrame(rows).to_parquet(path)
    perspectives.privacy_utility(str(path), str(tmp_path / "pu.png"), str(tmp_path / "pu.md"))
    text = (tmp_path / "pu.md").read_text()
    for line in ("bido (estimator=hsic)", "bido (estimator=coco)", "mid (inference=sampled)", "mid (inference=mean)"):
        assert f"| {line} |" in text
    assert "inference=sampled" in text and "inference=mean" in text  # the table says which deployment it shows
    assert "| mcnn-1ep | gmi | none |" in text  # the undefended curve's points are listed too


def test_defense_matrix_keeps_intervals_and_the_measured_training_time(tmp_path):
    rows = [
        row("fm32", "mcnn", "none", "none", 0.90, 0.80, 10.0, target_wall_s=52.4, acc1_ci_low=0.7, acc1_ci_high=0.9,
            ci_method="95% over 3 seeds: random-effects combination on the logit scale"),
        row("fm32", "mcnn", "tl", "tl", 0.85, 0.60, 11.0, target_wall_s=61.0, acc1_ci_low=0.5, acc1_ci_high=0.75,
            ci_method="bootstrap", **{"target_defense.frozen_param_fraction": 0.401}),
    ]  # fmt: skip
    path = tmp_path / "a.parquet"
    pd.DataFrame(rows).to_parquet(path)
    perspectives.defense_matrix(str(path), str(tmp_path / "m.md"), str(tmp_path / "m.tex"))
    text = (tmp_path / "m.md").read_text()
    assert "| gmi Acc@1 | 80.0 [70.0, 90.0] | 60.0 [50.0, 75.0] |" in text
    assert "| training time (s, measured) | 52 | 61 |" in text
    assert "frozen_param_fraction 0.401" in text
