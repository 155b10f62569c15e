"""End-to-end: the whole DAG on config/smoke.yaml in a temporary directory (every attack)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "config" / "smoke.yaml"
TIMING_COLUMNS = ("wall_s", "host", "version.")

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the venv's python for jobs
    cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(SMOKE), *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        logs = "\n".join(p.read_text()[-3000:] for p in workdir.glob("results/smoke/logs/**/*.log"))
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}\n{logs}")
    return proc


@pytest.fixture(scope="module")
def smoke_run(smoke_local):
    """The session's one local smoke run (tests/conftest.py), shared with the Slurm and report tests."""
    return smoke_local


def tables(workdir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    t = workdir / "results" / "smoke" / "tables"
    return pd.read_parquet(t / "attacks.parquet"), pd.read_parquet(t / "attack_classes.parquet")


WHITE_BOX = {"gmi", "kedmi", "plgmi", "lomma-gmi", "lomma-kedmi", "vmi", "deepinversion", "secretgen",
             "ppa", "mirror-wb", "if-gmi", "vmi-flow"}  # fmt: skip
BLACK_BOX = {"brep-mi", "rlb-mi", "lokt", "secretgen-bb", "learning-inversion", "mirror-bb", "c2fmi"}


def test_tables_have_the_schema_and_valid_metrics(smoke_run):
    attacks, classes = tables(smoke_run)
    assert set(attacks["attack"]) == WHITE_BOX | BLACK_BOX and len(attacks) == len(WHITE_BOX | BLACK_BOX)
    for col in ("run", "dataset", "target", "defense", "prior", "attack", "data_id", "target_id", "evaluation_id",
                "prior_id", "attack_id", "metrics_id", "target_test_acc", "evaluation_test_acc", "attack.params.lr",
                "target.train.epochs", "dataset.resolution", "prior.params.steps", "attack_wall_s",
                "version.torch", "missing_reasons", "queries"):  # fmt: skip
        assert col in attacks.columns, col
    for _, row in attacks.iterrows():
        assert row["attack_id"].startswith(row["attack_name"] + "-") and row["target_id"].startswith("mcnn-")
        missing = json.loads(row["missing_reasons"])
        for col in ("precision", "recall", "coverage"):
            if pd.isna(row[col]):
                assert "k=3" in missing[col], (row["attack"], col)  # too few reconstructions per class, said so
        assert 0.0 <= row["ssim"] <= 1.0, row["attack"]  # SSIM lies in [-1, 1]; the nearest private image's is >= 0
        for col in ("knn_dist", "feat_dist", "psnr"):
            assert math.isfinite(row[col]) and row[col] >= 0, (row["attack"], col)
        assert pd.isna(row["density"]) == pd.isna(row["precision"])
        assert math.isfinite(row["eval_fd"]) and row["eval_fd"] > -1e-6
        assert row["acc5"] is None or pd.isna(row["acc5"])  # 5 classes: missing, with a reason
        assert "acc5" in row["missing_reasons"]
    by_attack = attacks.set_index("attack")
    # white-box attacks use gradients, not counted queries; black-box ones go through the oracle
    assert by_attack.loc[sorted(WHITE_BOX), "queries"].isna().all()
    assert (by_attack.loc[sorted(BLACK_BOX), "queries"] > 0).all()
    assert by_attack.loc["lokt", "queries"] > by_attack.loc["lokt", "num_reconstructions"]  # prior's queries too
    assert "psnr" not in by_attack.loc["learning-inversion", "missing_reasons"]
    assert sorted(set(classes["class"])) == [0, 1, 2, 3, 4]


def _predict(model_dir: Path, x: torch.Tensor) -> torch.Tensor:
    from mibench_core.models.train import load_classifier

    with torch.no_grad():
        return load_classifier(model_dir, "cpu")(x).argmax(1)


def test_accuracies_match_the_saved_models_and_reconstructions(smoke_run):
    """Acc@1 (overall and per class) and the models' test accuracies, recomputed from the artifacts."""
    from mibench_core import store
    from mibench_core.data.common import to_model_range

    attacks, classes = tables(smoke_run)
    res = smoke_run / "results" / "smoke"
    data = store.load_tensors(res / "data" / attacks["data_id"].iloc[0] / "data.safetensors")
    test_x, test_y = to_model_range(data["private_test_x"]), data["private_test_y"]
    for col, ids in (("target_test_acc", "target_id"), ("evaluation_test_acc", "evaluation_id")):
        for model_id, value in attacks.groupby(ids)[col].first().items():
            expected = (_predict(res / "models" / model_id, test_x) == test_y).double().mean().item()
            assert value == pytest.approx(expected, abs=1e-12), (col, model_id)
    for _, row in attacks.iterrows():
        recon = store.load_tensors(res / "attacks" / row["attack_id"] / "recon.safetensors")
        if "victim" in recon:  # a per-sample attack: scored against each victim's own class
            victims_id = store.read_manifest(res / "metrics" / row["metrics_id"])["inputs"]["victims"]
            recon["labels"] = store.load_tensors(res / "victims" / victims_id / "victims.safetensors")["labels"][
                recon["victim"]
            ]
        hit = (_predict(res / "models" / row["evaluation_id"], recon["images"]) == recon["labels"]).double()
        assert row["acc1"] == pytest.approx(hit.mean().item(), abs=1e-6), row["attack"]
        per_class = classes[classes["run"] == row["run"]].set_index("class")["acc1"]
        for c, value in per_class.items():
            assert value == pytest.approx(hit[recon["labels"] == c].mean().item(), abs=1e-6), (row["attack"], c)


def test_reports_are_written(smoke_run):
    rep = smoke_run / "results" / "smoke" / "reports"
    md = (rep / "tables" / "attacks.md").read_text()
    assert "| sklearn-digits | mcnn | none | gmi |" in md and "acc5` missing" in md
    pngs = ["figures/comparison.png", "figures/queries.png"]
    pngs += [f"figures/reconstructions/sklearn-digits.mcnn.none.{a}.png" for a in WHITE_BOX | BLACK_BOX]
    pngs += ["figures/priors/sklearn-digits.gmi-gan.png"]
    for png in pngs:
        assert (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert len(list((rep / "figures" / "priors").glob("*.png"))) == 6


MIA = {"nn-attack", "loss-threshold", "label-only", "top3-nn", "top1-threshold", "blindmi-diff", "top2-true",
       "privacy-risk-score", "shapley", "ppv", "calibrated-score", "distillation", "lira-online", "lira-offline",
       "rmia-online", "rmia-offline"}  # fmt: skip


def test_membership_inference_runs_every_attack_on_every_scenario(smoke_run):
    t = smoke_run / "results" / "smoke" / "tables"
    mem = pd.read_parquet(t / "membership.parquet")
    baselines = {"selection-random", "selection-independent"}
    assert set(mem["attack_name"]) == MIA | baselines
    # the natural scenario and two distributions at ratios 0 and 0.2
    assert set(mem["scenario"]) == {"ES00", "ES01", "ES02", "ES03", "ES04"} and len(mem) == (len(MIA) + 2) * 5
    for col in ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "precision", "recall", "f1", "fpr", "fnr", "advantage"):
        vals = mem[col].dropna()
        assert len(vals) and vals.between(-1, 1).all(), col
    assert (mem.loc[~mem["attack_name"].isin(baselines), "queries"] > 0).all()
    assert (mem.loc[mem["attack_name"].isin(baselines), "queries"] == 0).all()
    assert mem.loc[mem["attack_name"] == "label-only", "access"].eq("label").all()
    threats = pd.read_parquet(t / "defense_threats.parquet")
    assert len(threats) == 1 and threats.loc[0, "inversion_gmi_acc1"] == threats.loc[0, "inversion_gmi_acc1"]
    assert threats.loc[0, "mia_attack"] == "lira-online"  # fixed by the config, not chosen on the results
    rep = smoke_run / "results" / "smoke" / "reports"
    for png in ("figures/defense_threats.png", "figures/membership/roc/sklearn-digits.mcnn.none.png",
                "figures/membership/heatmap/sklearn-digits.mcnn.none.png"):  # fmt: skip
        assert (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert "GMI Acc@1" in (rep / "tables" / "defense_threats.md").read_text()


def test_split_inference_track_is_built(smoke_run):
    out = smoke_run / "results" / "smoke"
    df = pd.read_parquet(out / "tables" / "split_inference.parquet")
    assert set(df["technique"]) == {"rmle", "inverse-net-heldout", "query-free-train-alternative"}
    assert sorted(df["split_point"]) == ["conv1"] * 3 + ["fc1"] * 3 and set(df["target"]) == {"lenet"}
    assert df["psnr"].map(math.isfinite).all() and (df["psnr"] > 0).all()
    assert df["ssim"].between(-1, 1).all() and df["acc1"].between(0, 1).all()
    assert (df["num_reconstructions"] == 8).all() and df["split_id"].is_unique
    queries = df.set_index("technique")["queries"]
    assert (queries["inverse-net-heldout"] > 0).all() and queries.drop("inverse-net-heldout").isna().all()
    md = (out / "reports" / "tables" / "split_inference.md").read_text()
    assert "## sklearn-digits.lenet.none" in md and "| rmle | white-box |" in md
    pngs = ["depth.png", "sklearn-digits.lenet.none/conv1.png", "sklearn-digits.lenet.none/fc1.png"]
    for png in pngs:
        assert (out / "reports" / "figures" / "split" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_second_run_schedules_nothing(smoke_run):
    out = snakemake(smoke_run, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_changing_an_attack_hyperparameter_reruns_attack_metrics_and_reports_only(smoke_run, tmp_path):
    override = tmp_path / "o.yaml"
    override.write_text("attacks:\n  - {name: gmi, prior: gmi-gan, per_class: 4, iterations: 11, restarts: 2}\n")
    out = snakemake(smoke_run, "-n", "--configfile", str(SMOKE), str(override)).stdout
    stats = out[out.index("Job stats") :]
    assert "run_attack" in stats and "compute_metrics" in stats and "aggregate_results" in stats
    for rule in ("prepare_data", "train_model", "train_prior"):
        assert rule not in stats


def test_a_lost_artifact_is_rebuilt_alone(smoke_run):
    # Snakemake rebuilds a missing intermediate only when something downstream must run
    # (intermediates may be deleted to save space); losing a table forces it.
    manifest = next((smoke_run / "results" / "smoke" / "metrics").glob("metrics-*/manifest.json"))
    manifest.unlink()
    (smoke_run / "results" / "smoke" / "tables" / "attacks.parquet").unlink()
    out = snakemake(smoke_run, "-n").stdout
    stats = out[out.index("Job stats") :]
    assert "compute_metrics" in stats and "aggregate_results" in stats
    assert "run_attack" not in stats and "train_model" not in stats
    snakemake(smoke_run, "--cores", "2")
    assert manifest.exists()


# Determinism: tests/test_slurm.py runs the same config a second time, as Slurm jobs, and
# requires attacks.parquet to equal this local run's exactly (timing columns aside).
