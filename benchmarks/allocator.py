"""The jobs' allocator settings: kernel time and page faults of one training loop.

Runs the same small convolutional forward and backward loop in a fresh Python
twice, under glibc's default malloc and under the settings every workflow job
inherits (:data:`mibench_core.runtime.JOB_MALLOC_ENV`), and prints wall, user
and system time and minor page faults of each. The target: system time under 5%
of user time with the settings.

    python benchmarks/allocator.py [--iterations 20] [--batch 100]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mibench_core.runtime import JOB_MALLOC_ENV  # noqa: E402

LOOP = """
import torch, torch.nn as nn
torch.set_num_threads(1)
torch.manual_seed(0)
m = nn.Sequential(nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 5))
x = torch.randn({batch}, 1, 32, 32, requires_grad=True)
for _ in range({iterations}):
    m(x).sum().backward()
"""


def run(env: dict[str, str], code: str) -> tuple[float, float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        wall,
        after.ru_utime - before.ru_utime,
        after.ru_stime - before.ru_stime,
        after.ru_minflt - before.ru_minflt,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    code = LOOP.format(batch=args.batch, iterations=args.iterations)
    plain = {k: v for k, v in os.environ.items() if k not in JOB_MALLOC_ENV}
    print(f"{'allocator':<16}{'wall s':>9}{'user s':>9}{'sys s':>8}{'sys/user':>10}{'minor faults':>14}")
    for name, env in (("glibc default", plain), ("job settings", {**plain, **JOB_MALLOC_ENV})):
        wall, user, system, faults = run(env, code)
        print(f"{name:<16}{wall:>9.2f}{user:>9.2f}{system:>8.2f}{system / user:>10.1%}{faults:>14,}")


if __name__ == "__main__":
    main()
