"""Device, seeding, threads and progress bars shared by every job."""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Iterable
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")
log = logging.getLogger("mibench")


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


# glibc's malloc hands large freed blocks back to the kernel (mmap above a dynamic
# threshold, heap trimming), and a training or attack loop that frees and reallocates
# the same activations every iteration then faults every page in again: on the default
# run that was about 15% of the CPU time spent in the kernel. These settings keep
# freed memory in the process (peak RSS is unchanged; it is no longer given back
# between iterations). benchmarks/allocator.py prints the effect on one loop.
JOB_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(4 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(4 << 30),
    "MALLOC_TOP_PAD_": str(1 << 30),
}


def job_environment(environ: dict[str, str]) -> dict[str, str]:
    """Set the jobs' allocator settings in ``environ`` (a user's own values win); return what was set.

    The Snakefile applies it to its own environment, which every job inherits (glibc
    reads these variables when a process starts, so they cannot be set from inside a job)."""
    added = {k: v for k, v in JOB_MALLOC_ENV.items() if k not in environ}
    environ.update(added)
    return added


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key 'device': 'cuda' requested but no CUDA device is available")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def set_threads(n: int | None = None) -> None:
    """Use the threads Snakemake granted the job (it exports them as OMP_NUM_THREADS)."""
    n = n or int(os.environ.get("MIBENCH_THREADS", os.environ.get("OMP_NUM_THREADS", "0")) or 0)
    if n > 0:
        torch.set_num_threads(n)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for explicit draws."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def progress(iterable: Iterable[T] | None = None, **kwargs) -> Iterable[T]:
    """tqdm that updates sparsely when writing to a log file instead of a terminal."""
    from tqdm.auto import tqdm

    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 10.0)
        kwargs.setdefault("ascii", True)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, file=sys.stderr, **kwargs)
