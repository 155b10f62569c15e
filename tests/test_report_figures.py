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


def test_shown_classes_spread_evenly_and_keep_small_sets():
    assert figures.shown_classes([3, 5, 9], 20) == [3, 5, 9]
    assert figures.shown_classes(list(range(1000)), 5) == [0, 250, 500, 749, 999]
    assert figures.shown_classes(list(range(1000)), 1) == [0]
    assert len(figures.shown_classes(list(range(1000)))) == figures.MAX_GRID_CLASSES


def test_reconstruction_grid_of_a_thousand_identities_shows_a_readable_subset(tmp_path, monkeypatch):
    """One row per class of a 1,000-identity run is over 100,000 px tall: matplotlib cannot render it."""
    import torch

    from mibench_core import store

    k, res = 1000, 4
    tensors = {
        "attack": {"images": torch.zeros(2 * k, 3, res, res), "labels": torch.arange(k).repeat_interleave(2)},
        "data": {"private_train_x": torch.zeros(3 * k, 3, res, res, dtype=torch.uint8),
                 "private_train_y": torch.arange(k).repeat_interleave(3)},
    }  # fmt: skip
    files = {"attack": "recon.safetensors", "data": "data.safetensors"}
    results = {"attack": {}, "data": {"class_names": [f"0-{i:05d}" for i in range(k)]}}
    for kind in ("attack", "data"):
        outdir = tmp_path / kind
        outdir.mkdir()
        store.save_tensors(outdir / files[kind], tensors[kind])
        job = {"id": f"{kind}-0", "kind": kind, "name": kind, "label": "celeba64.ir152.none.gmi", "spec": {},
               "inputs": {}, "fingerprint": "0", "seed": 0, "outdir": str(outdir)}  # fmt: skip
        store.write_manifest(job, [files[kind]], wall_time_s=0.0, device="cpu", extra=results[kind])
    recon_dir, data_dir = tmp_path / "attack", tmp_path / "data"
    drawn = {}
    real_save = figures._savefig

    def spy(fig, path):
        drawn["rows"] = len({ax.get_subplotspec().rowspan.start for ax in fig.axes})
        drawn["texts"] = " ".join(t.get_text() for t in fig.texts)
        real_save(fig, path)

    monkeypatch.setattr(figures, "_savefig", spy)
    out = tmp_path / "grid.png"
    figures.reconstruction_grid(str(recon_dir), str(data_dir), str(out))
    assert drawn["rows"] == 20 and "20 of 1000 attacked classes" in drawn["texts"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
