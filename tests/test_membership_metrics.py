"""Membership metrics on hand-made score vectors with known values."""

import math

import numpy as np
import pytest

from mibench_core.membership import metrics as M

SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1])
LABELS = np.array([1, 1, 0, 1, 0, 1, 0, 0, 1, 0], bool)


def test_decision_metrics_by_hand():
    # predicted members: the five highest scores -> TP 3 (0.9, 0.8, 0.6), FP 2 (0.7, 0.55), FN 2, TN 3
    out, missing = M.decision_metrics(SCORES >= 0.55, LABELS)
    assert (out["tp"], out["fp"], out["fn"], out["tn"]) == (3, 2, 2, 3)
    assert out["precision"] == pytest.approx(0.6) and out["recall"] == pytest.approx(0.6)
    assert out["f1"] == pytest.approx(0.6) and out["fpr"] == pytest.approx(0.4) and out["fnr"] == pytest.approx(0.4)
    assert out["advantage"] == pytest.approx(0.2) and out["balanced_accuracy"] == pytest.approx(0.6)
    assert out["accuracy"] == pytest.approx(0.6) and missing == {}


def test_auc_and_low_fpr_tpr_by_hand():
    # members beat non-members in 5 + 5 + 4 + 3 + 1 = 18 of 25 pairs
    assert M.auc(SCORES, LABELS) == pytest.approx(0.72)
    fpr, tpr, thr = M.roc_curve(SCORES, LABELS)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    # the trapezoidal area under the ROC equals the Mann-Whitney AUC
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.72)
    assert M.tpr_at_fpr(SCORES, LABELS, 0.001) == pytest.approx(0.4)  # two members above every non-member
    # FPR strictly below the level (Carlini et al.'s plot.py): 0.2 with 5 non-members allows no false positive
    assert M.tpr_at_fpr(SCORES, LABELS, 0.2) == pytest.approx(0.4)
    assert M.tpr_at_fpr(SCORES, LABELS, 0.21) == pytest.approx(0.6)
    assert M.tpr_at_fpr(SCORES, LABELS, 0.4) == pytest.approx(0.6)


def test_ties_count_one_half_and_perfect_separation():
    assert M.auc(np.array([1.0, 1.0, 0.0, 0.0]), np.array([1, 0, 1, 0], bool)) == pytest.approx(0.5)
    s, y = np.array([3.0, 2.0, 1.0, 0.0]), np.array([1, 1, 0, 0], bool)
    assert M.auc(s, y) == 1.0 and M.tpr_at_fpr(s, y, 0.001) == 1.0
    # tied member and non-member at the top: no TPR without a false positive
    assert M.tpr_at_fpr(np.array([1.0, 1.0, 0.5]), np.array([1, 0, 1], bool), 0.001) == 0.0


def test_undefined_metrics_are_missing_with_a_reason():
    out, missing = M.evaluate(np.zeros(4), np.zeros(4, bool), np.array([1, 0, 1, 0], bool))
    assert math.isnan(out["precision"]) and "predicted no member" in missing["precision"]
    assert out["recall"] == 0 and out["fpr"] == 0 and out["advantage"] == 0
    out, missing = M.evaluate(np.arange(3.0), np.ones(3, bool), np.zeros(3, bool))
    assert math.isnan(out["recall"]) and math.isnan(out["auc"]) and "auc" in missing
    assert out["precision"] == 0 and out["fpr"] == 1


def test_evaluate_has_every_metric_and_fpr_names():
    out, _ = M.evaluate(SCORES, SCORES >= 0.55, LABELS)
    for key in ("precision", "recall", "f1", "fpr", "fnr", "advantage", "auc", "balanced_accuracy",
                "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"):  # fmt: skip
        assert key in out
    assert M.fpr_key(0.01) == "tpr_at_1pct_fpr" and M.fpr_key(0.001) == "tpr_at_0.1pct_fpr"


def test_roc_downsampling_keeps_the_curve_for_log_plots():
    rng = np.random.default_rng(0)
    y = rng.random(5000) < 0.5
    s = rng.normal(y.astype(float), 1.0)
    fpr, tpr, _ = M.roc_curve(s, y)
    fx, ty = M.downsample_roc(fpr, tpr, points=100)
    assert len(fx) <= 101 and fx[0] == 0 and fx[-1] == 1
    for f, t in zip(fx, ty):  # every kept point is a point of the curve at the largest TPR for its FPR
        assert t == tpr[fpr <= f].max()


def test_tpr_at_fpr_is_strict_and_reports_its_count_and_interval():
    # 1,000 non-members, 10 members: one non-member above every member, then all members
    s = np.r_[10.0, np.linspace(5, 4, 10), np.linspace(0, 1, 999)]
    y = np.r_[False, np.ones(10, bool), np.zeros(999, bool)]
    out, _ = M.evaluate(s, s > 3, y)
    assert out["tpr_at_0.1pct_fpr"] == 0.0  # FPR 0.001 is not below 0.1 %
    assert out["tpr_at_0.1pct_fpr_max_fp"] == 0 and out["tpr_at_0.1pct_fpr_tp"] == 0
    assert out["tpr_at_1pct_fpr"] == 1.0 and out["tpr_at_1pct_fpr_max_fp"] == 9 and out["tpr_at_1pct_fpr_tp"] == 10
    # Clopper-Pearson by hand: 0 of 10 -> [0, 1 - 0.025^(1/10)]; 10 of 10 -> [0.025^(1/10), 1]
    assert out["tpr_at_0.1pct_fpr_ci_low"] == 0.0
    assert out["tpr_at_0.1pct_fpr_ci_high"] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert out["tpr_at_1pct_fpr_ci_low"] == pytest.approx(0.025 ** (1 / 10)) and out["tpr_at_1pct_fpr_ci_high"] == 1
    lo, hi = M.clopper_pearson(29, 800)  # a published value: [2.4 %, 5.2 %]
    assert round(lo, 3) == 0.024 and round(hi, 3) == 0.052
    # 800 non-members: 0.1 % is unreachable, the value is the TPR at 0 FP
    out, _ = M.evaluate(np.arange(1600.0), np.ones(1600, bool), np.arange(1600) >= 800)
    assert out["tpr_at_0.1pct_fpr_max_fp"] == 0 and out["tpr_at_1pct_fpr_max_fp"] == 7
