"""The comparison chart: short labels, missing values marked at their run, never drawn as 0."""

import math

import pandas as pd

from mibench_core.report import figures  # selects the Agg backend


def test_short_run_labels_drop_the_parts_every_run_shares():
    runs = ["fm.mcnn.none.gmi", "fm.mcnn.none.kedmi", "fm.mcnn.mid.gmi"]
    assert figures.short_run_labels(runs) == ["none.gmi", "none.kedmi", "mid.gmi"]
    assert figures.short_run_labels(["a.b.gmi"]) == ["a.b.gmi"]  # one run: nothing to compare
    assert figures.short_run_labels(["a.gmi", "a.b.gmi"]) == ["a.gmi", "a.b.gmi"]  # ragged: kept


def test_comparison_chart_marks_missing_values_and_skips_all_missing_metrics(tmp_path, monkeypatch):
    df = pd.DataFrame(
        {
            "run": ["d.t.none.gmi", "d.t.none.brep-mi", "d.t.none.kedmi"],
            "acc1": [0.8, 0.7, 0.6],
            "precision": [0.9, math.nan, 0.5],
            "fid": [math.nan, math.nan, math.nan],
        }
    )
    df.to_parquet(tmp_path / "attacks.parquet")
    drawn = {}
    real_save = figures._savefig

    def spy(fig, path):
        drawn["titles"] = [ax.get_title() for ax in fig.axes if ax.axison]
        drawn["texts"] = [(ax.get_title(), t.get_text(), t.get_position()[1]) for ax in fig.axes for t in ax.texts]
        drawn["ticks"] = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        drawn["footer"] = [t.get_text() for t in fig.texts]
        real_save(fig, path)

    monkeypatch.setattr(figures, "_savefig", spy)
    figures.comparison_chart(str(tmp_path / "attacks.parquet"), str(tmp_path / "cmp.png"))
    assert (tmp_path / "cmp.png").stat().st_size > 0
    assert len(drawn["titles"]) == 2 and not any("FID" in t for t in drawn["titles"])  # no empty FID panel
    assert drawn["ticks"] == ["brep-mi", "gmi", "kedmi"]  # sorted by run, shared prefix dropped
    # brep-mi's precision is missing: marked at brep-mi's row (0), in the precision panel only
    assert [(title.split("\n")[0], text, y) for title, text, y in drawn["texts"]] == [("precision", "missing", 0)]
    assert any("FID" in t for t in drawn["footer"])
