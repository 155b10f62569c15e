"""What checking inputs against their manifests costs: the sha256 of every input file of every job.

Each job (and each report step that reads artifacts) hashes the files of its input artifacts
before loading them (mibench_core/store.py: check_inputs). This script does the same checks, for
every job of a config's plan, over the artifacts already built in its results folder, and prints
the seconds and bytes per stage and in total. The data artifact dominates: nearly every job reads
it. ``--build-data`` first builds the plan's data artifacts (the real jobs; seconds), so the
dominant cost can be measured without running the benchmark itself.

    python benchmarks/verify_inputs.py                         # the default config
    python benchmarks/verify_inputs.py --build-data            # build its data artifacts first
    python benchmarks/verify_inputs.py -c config/smoke.yaml    # another config (merged over the default)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mibench_core import store  # noqa: E402
from mibench_core.cli import _load_config, run_job  # noqa: E402
from mibench_core.plan import build  # noqa: E402


def readers(plan) -> list[tuple[str, list[str]]]:
    """(stage, input artifact ids) of every job that checks its inputs: the artifact jobs and the report
    steps that read artifact files (reconstruction and prior figures; the aggregate reads manifests only)."""
    out = [(node.kind, list(node.inputs.values())) for node in plan.nodes.values()]
    for run in plan.runs:
        out.append(("report", [run.attack_id, plan.nodes[run.attack_id].inputs["data"]]))
    out += [("report", [n.id]) for n in plan.of_kind("prior")]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--configfile", action="append", default=[], help="config file(s) over the default")
    parser.add_argument("--build-data", action="store_true", help="build the plan's data artifacts first")
    args = parser.parse_args(argv)
    plan = build(_load_config(args.configfile))
    if args.build_data:
        for node in plan.of_kind("data"):
            if not (Path(node.directory(plan.results_dir)) / store.MANIFEST).exists():
                run_job(node.job(plan))
    seconds: dict[str, float] = defaultdict(float)
    nbytes: dict[str, int] = defaultdict(int)
    checks: dict[str, int] = defaultdict(int)
    skipped = 0
    for stage, inputs in readers(plan):
        for nid in inputs:
            folder = Path(plan.nodes[nid].directory(plan.results_dir))
            if not (folder / store.MANIFEST).exists():
                skipped += 1
                continue
            size = sum(folder.joinpath(f).stat().st_size for f in store.read_manifest(folder)["files"])
            t0 = time.perf_counter()
            found = store.problems(folder)
            seconds[stage] += time.perf_counter() - t0
            nbytes[stage] += size
            checks[stage] += 1
            if found:
                print(f"corrupt: {nid}: {'; '.join(found)}")
    print(f"{'stage':<8} {'checks':>7} {'GB hashed':>10} {'seconds':>8}")
    for stage in ("model", "prior", "attack", "metric", "report"):
        if checks[stage]:
            print(f"{stage:<8} {checks[stage]:>7} {nbytes[stage] / 1e9:>10.3f} {seconds[stage]:>8.2f}")
    total_s, total_b = sum(seconds.values()), sum(nbytes.values())
    print(f"{'total':<8} {sum(checks.values()):>7} {total_b / 1e9:>10.3f} {total_s:>8.2f}")
    if total_s:
        print(f"throughput {total_b / 1e9 / total_s:.2f} GB/s")
    built = sum(1 for n in plan.nodes.values() if (Path(n.directory(plan.results_dir)) / store.MANIFEST).exists())
    print(f"{built} of {len(plan.nodes)} artifacts built in {plan.results_dir}; ", end="")
    print(f"{skipped} checks of inputs not built skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
