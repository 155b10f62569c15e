"""The summary over seeds, interval formatting, error bars and the paper-layout tables, from hand-made tables."""

import json

import pandas as pd
import pytest

from mibench_core.report import aggregate, figures, intervals, paper, perspectives


def run_row(attack, seed, acc1, knn, defense="none", nat=0.9, **extra):
    return {
        "run": f"d.t.{defense}.{attack}" + ("" if seed is None else f".seed{seed}"),
        "setting": f"d.t.{defense}.{attack}", "replicate_seed": seed, "dataset": "d", "target": "t",
        "defense": defense, "attack": attack, "target.defense.name": "mid" if defense != "none" else "none",
        "target_test_acc": nat, "output_defense": "none", "attack_id": f"{attack}-{seed}", "n_recon": 40,
        "acc1": acc1, "acc1_n_eff": 40, "acc1_ci_low": None if acc1 is None else acc1 - 0.1,
        "acc1_ci_high": None if acc1 is None else min(1.0, acc1 + 0.05),
        "knn_dist": knn, "knn_dist_ci_low": knn - 0.5, "knn_dist_ci_high": knn + 0.25,
        "acc5": None, "acc5_ci_low": None, "acc5_ci_high": None,
        "missing_reasons": json.dumps({"acc5": "only 5 classes: top-5 accuracy needs more than 5"}),
        "ci_notes": json.dumps({}), "ci_method": "95% percentile bootstrap (1000 resamples)",
        "metric_columns": json.dumps(["acc1", "acc5", "knn_dist"]), **extra,
    }  # fmt: skip


@pytest.fixture
def replicated(tmp_path):
    rows = [run_row("gmi", s, a, k) for s, a, k in ((0, 0.775, 2.0), (1, 0.8, 2.5), (2, 0.65, 3.0))]
    rows += [run_row("deepinversion", None, 0.6, 4.0)]  # shared by every replicate: one run
    path = tmp_path / "attacks.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_summary_combines_runs_with_their_variances_and_keeps_a_single_runs_interval(replicated, tmp_path):
    from mibench_core import stats

    aggregate.write_summary(str(replicated), str(tmp_path / "s.parquet"), 0.95)
    s = pd.read_parquet(tmp_path / "s.parquet").set_index("run")
    gmi = s.loc["d.t.none.gmi"]
    vals = [0.775, 0.8, 0.65]
    est, lo, hi, method = stats.combine_runs(vals, "logit", 0.95, n_eff=[40, 40, 40])
    assert (gmi["acc1"], gmi["acc1_ci_low"], gmi["acc1_ci_high"]) == pytest.approx((est, lo, hi))
    assert 0 < gmi["acc1_ci_low"] < min(vals) and max(vals) < gmi["acc1_ci_high"] < 1
    assert json.loads(gmi["acc1_per_seed"]) == vals
    # distances on the log scale: the interval stays above 0
    assert 0 < gmi["knn_dist_ci_low"] < gmi["knn_dist"] < gmi["knn_dist_ci_high"]
    assert gmi["n_seeds"] == 3 and json.loads(gmi["seeds"]) == [0, 1, 2] and gmi["n_recon"] == 120
    assert "random-effects" in gmi["ci_method"] and json.loads(gmi["attack_id"]) == ["gmi-0", "gmi-1", "gmi-2"]
    assert pd.isna(gmi["acc5"])
    assert "only 5 classes" in json.loads(gmi["missing_reasons"])["acc5"]
    di = s.loc["d.t.none.deepinversion"]
    assert di["n_seeds"] == 1 and (di["acc1"], di["acc1_ci_low"], di["acc1_ci_high"]) == pytest.approx((0.6, 0.5, 0.65))
    assert "bootstrap" in di["ci_method"]


def test_values_over_seeds_show_two_significant_digits_of_the_half_width():
    row = {"acc1": 0.966667, "acc1_ci_low": 0.8233, "acc1_ci_high": 0.99,
           "ci_method": "95% over 3 seeds: random-effects combination of 3 runs"}  # fmt: skip
    # the larger half-width is 0.143: two significant digits are two decimals
    assert intervals.cell(row, "acc1") == "0.97 [0.82, 0.99]"
    assert intervals.decimals_for(33.0, 5.0, 71.0) == 0 and intervals.decimals_for(0.5, 0.5, 0.5) is None


def test_t_intervals_are_written_plus_minus_and_bootstrap_intervals_bracketed():
    assert intervals.with_interval(0.7, 0.6, 0.8, symmetric=True) == "0.7 ± 0.1"
    assert intervals.with_interval(0.7, 0.6, 0.8) == "0.7 [0.6, 0.8]"  # a bootstrap interval symmetric by chance
    assert intervals.with_interval(0.7, 0.55, 0.8) == "0.7 [0.55, 0.8]"
    assert intervals.with_interval(0.7, None, None) == "0.7"
    assert intervals.with_interval(float("nan"), 0.1, 0.2) == "missing"
    assert intervals.with_interval(0.775, 0.65, 0.9, scale=100, fixed=1, symmetric=True) == "77.5 ± 12.5"
    assert intervals.symmetric({"ci_method": "95% Student t interval of the mean over 3 seeds"})
    assert not intervals.symmetric({"ci_method": "95% percentile bootstrap"}) and not intervals.symmetric({})


def test_markdown_table_writes_each_value_with_its_interval(replicated, tmp_path):
    figures.markdown_table(str(replicated), str(tmp_path / "a.md"))
    text = (tmp_path / "a.md").read_text()
    assert "| d | t | none | gmi | 0 | 0.9 | 0.775 [0.675, 0.825] | missing | 2 [1.5, 2.25] |" in text
    assert "| d | t | none | deepinversion | - | 0.9 |" in text  # no replicate seed: shared run
    assert "Intervals: 95% percentile bootstrap" in text


def test_charts_draw_error_bars_from_the_interval_columns(replicated, tmp_path, monkeypatch):
    aggregate.write_summary(str(replicated), str(tmp_path / "s.parquet"))
    seen = {}
    real = figures._savefig

    def spy(fig, path):
        ax = fig.axes[0]
        seen["bars"] = [c for c in ax.containers if type(c).__name__ == "BarContainer"]
        seen["footer"] = [t.get_text() for t in fig.texts]
        real(fig, path)

    monkeypatch.setattr(figures, "_savefig", spy)
    figures.comparison_chart(str(tmp_path / "s.parquet"), str(tmp_path / "c.png"))
    assert seen["bars"][0].errorbar is not None  # the Acc@1 panel's bars carry error bars
    assert any("random-effects" in t for t in seen["footer"])
    err = intervals.error_bars(pd.read_parquet(tmp_path / "s.parquet").sort_values("run"), "acc1")
    assert err[:, 0] == pytest.approx([0.1, 0.05])  # deepinversion: its bootstrap interval


def test_perspective_tables_and_figures_carry_intervals(tmp_path):
    rows = [run_row("gmi", None, 0.8, 2.0), run_row("gmi", None, 0.5, 4.0, defense="mid-lo", nat=0.85,
                                                     **{"target.defense.params.beta": 0.003})]  # fmt: skip
    path = tmp_path / "a.parquet"
    pd.DataFrame(rows).to_parquet(path)
    perspectives.privacy_utility(str(path), str(tmp_path / "pu.png"), str(tmp_path / "pu.md"))
    text = (tmp_path / "pu.md").read_text()
    assert "0.5 [0.4, 0.55]" in text and "Intervals:" in text


def test_paper_tables_show_mean_and_interval_with_footnoted_missing_values(replicated, tmp_path):
    aggregate.write_summary(str(replicated), str(tmp_path / "s.parquet"))
    ranking = tmp_path / "ranking.parquet"
    pd.DataFrame([{"family": "attacks", "dataset": "d", "target": "t", "defense": "none", "attack": None,
                   "metric": "acc1", "method": "gmi", "group": "a"},
                  {"family": "attacks", "dataset": "d", "target": "t", "defense": "none", "attack": None,
                   "metric": "acc1", "method": "deepinversion", "group": "a"}]).to_parquet(ranking)  # fmt: skip
    paper.attack_tables(str(tmp_path / "s.parquet"), str(ranking), str(tmp_path / "p.md"), str(tmp_path / "p.tex"))
    md = (tmp_path / "p.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| attack |"))
    assert header == "| attack | Acc@1 (%) ↑ | group | Acc@5 (%) ↑ | KNN dist. ↓ | FID ↓ | Feat. dist. ↓ |"
    gmi = next(line for line in md if line.startswith("| gmi |"))
    # gmi first (higher Acc@1); over 3 seeds, two significant digits of the larger half-width; Acc@5 and FID
    # missing with footnotes
    assert md.index(gmi) < md.index(next(line for line in md if line.startswith("| deepinversion |")))
    assert gmi.startswith("| gmi | 73 [50, 88] |") and "| a | missing (a) | 2.5 [1.5, 4.1] | missing (b) |" in gmi
    assert "- (a) only 5 classes: top-5 accuracy needs more than 5" in md
    assert any(line.startswith("- (b) not computed: its metric is not among the configured") for line in md)
    tex = (tmp_path / "p.tex").read_text()
    assert r"73 {\scriptsize[50, 88]}" in tex and r"--\textsuperscript{a}" in tex and r"{\scriptsize[" in tex
    paper.defense_tables(str(tmp_path / "s.parquet"), str(tmp_path / "d.md"), str(tmp_path / "d.tex"))
    dmd = (tmp_path / "d.md").read_text()
    assert "| none | 90.0 | gmi | 73 [50, 88] |" in dmd and "|  |  | deepinversion | 60.0 [50.0, 65.0] |" in dmd


def test_a_rows_replicate_is_the_plans_even_where_the_specs_carry_no_seed():
    from mibench_core.report.aggregate import replicate_seed

    keyed = [{"name": "gmi", "replicate": 2}, {"arch": "mcnn"}, {}]
    plain = [{"name": "gmi"}, {"arch": "mcnn"}, {}]
    assert replicate_seed({"replicate_seed": 0}, plain) == 0  # the config seed's replicate: the plain run
    assert replicate_seed({"replicate_seed": None}, plain) is None  # no replicates
    assert replicate_seed({}, keyed) == 2 and replicate_seed({}, plain) is None  # no plan: the specs say


def test_paper_defense_table_states_a_dp_targets_guarantee(tmp_path):
    guarantee = "(eps=1.87, delta=1e-05), rdp accountant, q=0.01266, 395 steps"
    rows = [
        {"dataset": "d", "target": "t", "defense": "none", "target.defense.name": "none", "attack": "gmi",
         "target_test_acc": 0.9, "acc1": 0.75},
        {"dataset": "d", "target": "t", "defense": "dp", "target.defense.name": "dp-sgd", "attack": "gmi",
         "target_test_acc": 0.78, "acc1": 0.6, "target.defense.params.noise_multiplier": 1.0,
         "target_defense.guarantee": guarantee},
    ]  # fmt: skip
    pd.DataFrame(rows).to_parquet(tmp_path / "s.parquet")
    paper.defense_tables(str(tmp_path / "s.parquet"), str(tmp_path / "d.md"), str(tmp_path / "d.tex"))
    assert f"| dp (dp-sgd, noise_multiplier=1); guarantee {guarantee} |" in (tmp_path / "d.md").read_text()
