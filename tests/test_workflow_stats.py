"""End-to-end (the session's smoke run): intervals, the summary, the rankings and the paper tables."""

import json

import pandas as pd
import pytest

from mibench_core import store
from mibench_core.stats import PER_SAMPLE, load_per_sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(smoke_local):
    return smoke_local


def test_every_run_has_intervals_and_its_per_reconstruction_values(smoke_run):
    res = smoke_run / "results" / "smoke"
    attacks = pd.read_parquet(res / "tables" / "attacks.parquet")
    assert attacks["replicate_seed"].isna().all() and (attacks["setting"] == attacks["run"]).all()
    for _, row in attacks.iterrows():
        assert row["n_recon"] == row["num_reconstructions"]
        notes = json.loads(row["ci_notes"])
        for col in ("acc1", "knn_dist", "feat_dist", "psnr"):
            lo, hi = row[f"{col}_ci_low"], row[f"{col}_ci_high"]
            if pd.isna(lo):  # one reconstruction in some class: a reason, never a zero-width interval
                assert "fewer than two reconstructions" in notes[col], (row["attack"], col)
                continue
            assert lo <= row[col] <= hi, (row["attack"], col)  # float64 estimate inside its interval
            if col == "acc1":
                assert 0 <= lo < hi <= 1 and row["acc1_n_eff"] > 0
        if not pd.isna(row["recall"]):  # (missing with <= k reconstructions per class: its reason instead)
            assert pd.isna(row["recall_ci_low"]) and "biased low" in json.loads(row["ci_notes"])["recall"]
        mdir = res / "metrics" / row["metrics_id"]
        assert PER_SAMPLE in store.read_manifest(mdir)["files"]
        labels, values, _ = load_per_sample(mdir)
        assert len(labels) == row["n_recon"] and values["acc1"].mean() == pytest.approx(row["acc1"], abs=1e-6)


def test_summary_rankings_and_paper_tables_are_written(smoke_run):
    res = smoke_run / "results" / "smoke"
    attacks = pd.read_parquet(res / "tables" / "attacks.parquet")
    summary = pd.read_parquet(res / "tables" / "attacks_summary.parquet")
    assert len(summary) == len(attacks) and (summary["n_seeds"] == 1).all()
    merged = summary.set_index("run")["acc1_ci_low"].sort_index()
    assert merged.tolist() == pytest.approx(attacks.set_index("run")["acc1_ci_low"].sort_index().tolist())
    ranking = pd.read_parquet(res / "tables" / "ranking.parquet")
    acc = ranking[(ranking["family"] == "attacks") & (ranking["metric"] == "acc1")]
    # one seed: the ranking orders the runs but tests nothing
    assert sorted(acc["method"]) == sorted(attacks["attack"]) and (acc["group"] == "").all()
    assert acc["rank"].tolist() == list(range(1, len(acc) + 1))
    pairs = pd.read_parquet(res / "tables" / "ranking_pairs.parquet")
    assert len(pairs[pairs["metric"] == "acc1"]) == len(acc) * (len(acc) - 1) // 2
    rep = res / "reports" / "tables"
    assert "Holm" in (rep / "ranking.md").read_text() and "not testable with 1 seed" in (rep / "ranking.md").read_text()
    assert pairs["p"].isna().all() and not pairs["significant"].any()
    # every claim of the claims file is evaluated; one seed tests none
    from mibench_core.report.claims import load_claims

    claims = pd.read_parquet(res / "tables" / "claims.parquet")
    assert list(claims["id"]) == [c["id"] for c in load_claims("config/claims.yaml")]
    assert (claims["verdict"] == "not testable with this config").all()
    assert "| PLG-MI reaches a higher Acc@1 than GMI |" in (rep / "claims.md").read_text()
    paper = (rep / "paper_attacks.md").read_text()
    assert "| attack | Acc@1 (%) ↑ | group | Acc@5 (%) ↑ |" in paper and "top-5 accuracy needs more than 5" in paper
    assert r"\begin{tabular}" in (rep / "paper_attacks.tex").read_text()
    assert "| none |" in (rep / "paper_defenses.md").read_text()
    assert "[" in (rep / "attacks.md").read_text().splitlines()[2]  # values with their intervals
