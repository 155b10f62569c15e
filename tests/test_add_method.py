"""Adding a method is one module and one config entry: a new attack and a new metric, end to end.

A copy of the repository gets two new files and nothing else: an attack
module and a metric module, each with its ``METHODS`` literal. A config
names them. The registry lists them, the plan fingerprints them, a tiny
real Snakemake run computes them, and the tables, the comparison chart and
the HTML report show them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.smoke import REPO

pytestmark = pytest.mark.slow

ATTACK = '''"""Logit ascent: gradient ascent on the target's logit of a class, from a blank image (no prior)."""

from __future__ import annotations

import torch

from mibench_core.attacks.contract import AttackContext, AttackResult

METHODS = [
    {
        "name": "logit-ascent",
        "kind": "attack",
        "call": "run_attack",
        "description": "gradient ascent on the target's class logit from a blank image (no prior)",
        "defaults": {"per_class": 2, "steps": 20, "lr": 0.1},
    }
]


def run_attack(ctx: AttackContext, per_class: int, steps: int, lr: float) -> AttackResult:
    labels = torch.tensor(ctx.classes).repeat_interleave(per_class)
    w = torch.zeros(len(labels), ctx.channels, ctx.resolution, ctx.resolution, device=ctx.device, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        loss = -ctx.target(torch.tanh(w)).gather(1, labels.to(ctx.device)[:, None]).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return AttackResult(torch.tanh(w).detach().cpu(), labels, info={"queries": None})
'''

METRIC = '''"""Brightness of the reconstructions: their mean pixel value in [0, 1], and the fraction of dark pixels."""

from __future__ import annotations

from mibench_core.metrics.common import MetricContext, MetricResult

METHODS = [
    {
        "name": "brightness",
        "kind": "metric",
        "call": "brightness",
        "description": "mean pixel value of the reconstructions in [0, 1]",
        "columns": {"brightness": {"label": "mean brightness", "better": "higher", "meaning": "brighter"}},
    }
]


def brightness(ctx: MetricContext) -> MetricResult:
    res = MetricResult()
    x = ctx.recon.add(1).div(2)
    res.overall["brightness"] = x.mean().item()
    res.overall["dark_fraction"] = (x < 0.25).float().mean().item()  # reported, not declared
    for c in ctx.classes:
        res.per_class[c] = {"brightness": x[ctx.recon_labels == c].mean().item()}
    return res
'''

CONFIG = {
    "results_dir": "results/new",
    "output": {"tables": "results/new/tables", "reports": "results/new/reports"},
    "datasets": [{"name": "sklearn-digits", "resolution": 8, "channels": 1,
                  "split": {"mode": "class-disjoint", "private_classes": [0, 1, 2], "public_classes": [5, 6, 7]}}],
    "targets": [{"arch": "mcnn", "arch_params": {"width": 4}, "train": {"epochs": 1, "batch_size": 64}}],
    "evaluation": {"arch": "evalcnn", "arch_params": {"width": 4}, "train": {"epochs": 1, "batch_size": 64}},
    "priors": [{"name": "gmi-gan", "dim": 8, "steps": 1, "batch_size": 8}],
    "attacks": [{"name": "logit-ascent", "steps": 5}],
    "metrics": [{"name": "accuracy"}, {"name": "accuracy", "label": "again"}, {"name": "brightness"}],
    "split_inference": {"targets": []},  # the paper's LeNet needs at least 16x16 images
}  # fmt: skip
RUN = "sklearn-digits.mcnn.none.logit-ascent"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A copy of the repository plus the two new modules; nothing else edited."""
    root = tmp_path_factory.mktemp("new-method") / "repo"
    ignore = shutil.ignore_patterns("__pycache__", ".snakemake", "results", ".git")
    for name in ("Snakefile", "mibench_core", "workflow", "config", "envs", "profiles"):
        src = REPO / name
        if src.is_symlink():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(src), root / name)
        elif src.is_dir():
            shutil.copytree(src, root / name, ignore=ignore)
        else:
            root.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / name)
    (root / "mibench_core" / "attacks" / "logit_ascent.py").write_text(ATTACK)
    (root / "mibench_core" / "metrics" / "brightness.py").write_text(METRIC)
    (root / "new.yaml").write_text(yaml.safe_dump(CONFIG))
    return root


def python(repo: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_the_registry_and_the_plan_pick_them_up(repo):
    listed = python(repo, "-m", "mibench_core.cli", "list")
    assert "logit-ascent" in listed and "brightness" in listed
    plan = python(repo, "-m", "mibench_core.cli", "plan", "-v", "-c", "new.yaml")
    assert "runs     1" in plan and f"{RUN}.metrics" in plan
    files = json.loads(
        python(
            repo,
            "-c",
            (
                "import json; from mibench_core.config import validate; from mibench_core.cli import _load_config; "
                "from mibench_core.plan import build; p = build(_load_config(['new.yaml'])); "
                "print(json.dumps({n.kind: list(n.files) for n in p.nodes.values() if n.kind in ('attack', 'metric')}))"
            ),
        )
    )
    assert "attacks/logit_ascent.py" in files["attack"] and "attacks/whitebox.py" in files["attack"]
    assert "attacks/oracle.py" not in files["attack"]
    assert "metrics/brightness.py" in files["metric"]
    # its table row in config/README.md comes from its METHODS literal
    assert "| `logit-ascent` | white-box | - | - | no | `per_class` 2, `steps` 20, `lr` 0.1 |" in python(
        repo, "-c", "from mibench_core.docs import table; print(table('attack'))"
    )


def test_a_tiny_run_computes_tables_figures_and_report(repo):
    reports = repo / "results" / "new" / "reports"
    targets = [
        f"results/new/reports/{t}"
        for t in (
            "tables/attacks.md",
            "figures/comparison.png",
            f"figures/reconstructions/{RUN}.png",
            "tables/defense_matrix.md",
        )
    ]
    base = ["-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(repo), "--configfile",
            str(repo / "new.yaml"), "--nolock"]  # fmt: skip
    python(repo, *base, "--cores", "2", *targets)
    python(repo, *base, "--report", str(repo / "report.html"), *targets)

    import pandas as pd

    from mibench_core import store

    df = pd.read_parquet(repo / "results" / "new" / "tables" / "attacks.parquet")
    row = df.set_index("run").loc[RUN]
    recon = store.load_tensors(repo / "results" / "new" / "attacks" / row["attack_id"] / "recon.safetensors")
    assert recon["images"].shape == (6, 1, 8, 8)
    x = recon["images"].add(1).div(2)
    assert row["brightness"] == pytest.approx(x.mean().item(), abs=1e-6)
    assert row["dark_fraction"] == pytest.approx((x < 0.25).float().mean().item(), abs=1e-6)
    assert row["acc1.again"] == row["acc1"]  # the same metric under a second label: its own column
    assert json.loads(row["metric_columns"]) == ["acc1", "acc5", "acc1.again", "acc5.again", "brightness",
                                                 "dark_fraction"]  # fmt: skip
    assert torch.isfinite(recon["images"]).all()

    md = (reports / "tables" / "attacks.md").read_text().splitlines()
    assert md[0] == ("| dataset | target | defense | attack | target_test_acc | acc1 | acc5 | acc1.again | acc5.again "
                     "| brightness | dark_fraction |")  # fmt: skip
    assert md[2].startswith("| sklearn-digits | mcnn | none | logit-ascent |")
    assert "| logit-ascent Acc@1 |" in (reports / "tables" / "defense_matrix.md").read_text()
    titles = json.loads(python(repo, "-c", (
        "import json, pandas as pd; from mibench_core.report.aggregate import column_title, metric_columns; "
        f"df = pd.read_parquet({str(repo / 'results/new/tables/attacks.parquet')!r}); "
        "print(json.dumps([column_title(c) for c in metric_columns(df)]))")))  # fmt: skip
    assert ["mean brightness", "higher = brighter"] in titles and ["dark_fraction", ""] in titles
    assert ["Acc@1 (eval model) [again]", "higher = stronger attack"] in titles
    for png in ("figures/comparison.png", f"figures/reconstructions/{RUN}.png"):
        assert (reports / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    html = (repo / "report.html").read_text(errors="replace")
    assert f"{RUN}.png" in html and "comparison.png" in html
