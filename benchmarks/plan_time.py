"""How long planning takes as the grid grows: `snakemake -n` on generated configs.

    python benchmarks/plan_time.py                 # grids of about 1k, 2k, 5k and 10k jobs
    python benchmarks/plan_time.py --jobs 1000     # one size
    python benchmarks/plan_time.py --profile       # cProfile of the 10k dry run's hot spots

Each grid is the smoke config with many GMI attacks that differ in one
hyperparameter (a paper-style sweep): every attack adds one attack job, one
job per metric and one reconstruction figure. Prints, per grid, the jobs
`snakemake -n` plans, the time to build the plan alone (config validation +
content ids), and the wall time of the whole `snakemake -n` (parse, plan,
DAG, dry run). No job runs; nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def jobs_per_attack() -> int:
    """Jobs one more attack adds: its artifacts in the plan (attack, metrics) + its reconstruction figure."""
    from mibench_core.config import validate
    from mibench_core.plan import build

    def nodes(n: int) -> int:
        base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        base.update(grid_config(n))
        return len(build(validate(base)).nodes)

    return nodes(2) - nodes(1) + 1


def grid_config(n_attacks: int) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    cfg.pop("defenses", None)  # one target, no defense: each attack is one run
    cfg["attacks"] = [
        {"name": "gmi", "label": f"gmi-it{10 + i}", "prior": "gmi-gan", "per_class": 4, "iterations": 10 + i}
        for i in range(n_attacks)
    ]
    return cfg


def plan_seconds(cfg_path: Path) -> tuple[float, int]:
    from mibench_core.cli import _load_config
    from mibench_core.plan import build

    t0 = time.perf_counter()
    plan = build(_load_config([str(cfg_path)]))
    return time.perf_counter() - t0, len(plan.nodes)


def dry_run(cfg_path: Path, workdir: Path, profile: Path | None = None) -> tuple[float, int]:
    cmd = [sys.executable]
    if profile:
        cmd += ["-m", "cProfile", "-o", str(profile)]
    cmd += ["-m", "snakemake", "-n", "-q", "rules", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(cfg_path), "--nolock"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    total = re.search(r"^total\s+(\d+)", proc.stdout + proc.stderr, flags=re.M)
    return seconds, int(total.group(1)) if total else -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, nargs="*", default=[1000, 2000, 5000, 10000])
    ap.add_argument("--profile", action="store_true", help="profile the largest dry run and print its hot spots")
    args = ap.parse_args()
    print(f"{'target':>7} {'attacks':>7} {'jobs':>7} {'plan_s':>7} {'snakemake_-n_s':>14}")
    with tempfile.TemporaryDirectory(prefix="mibench-plan-") as tmp:
        tmp = Path(tmp)
        per_attack = jobs_per_attack()
        for target in args.jobs:
            n = max(1, round(target / per_attack))
            cfg_path = tmp / f"grid-{target}.yaml"
            cfg_path.write_text(yaml.safe_dump(grid_config(n)))
            plan_s, _ = plan_seconds(cfg_path)
            prof = tmp / "dry.prof" if args.profile and target == max(args.jobs) else None
            dry_s, jobs = dry_run(cfg_path, tmp, prof)
            print(f"{target:>7} {n:>7} {jobs:>7} {plan_s:>7.2f} {dry_s:>14.2f}", flush=True)
            if prof:
                import pstats

                pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
