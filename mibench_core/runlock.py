"""Recover the working directory's Snakemake lock after a run was killed (``kill -9``, a lost node).

Snakemake locks a working directory by writing ``.snakemake/locks/*.lock`` and
deletes them when it stops; a run killed with SIGKILL cannot, and the next run
then stops with ``LockException`` until someone runs ``snakemake --unlock``.
Its lock files do not say who wrote them, so on their own a dead run's locks
and a live run's look alike.

Every Snakemake process that parses our Snakefile as the main process (not
the jobs it spawns: those run with ``--mode subprocess`` or ``--mode remote``)
therefore holds an advisory lock (``flock``) on ``.snakemake/mibench-run.lock``
for as long as it lives; the kernel drops it when the process dies, however it
dies. At parse time, before Snakemake looks at its locks, a process tries to
take that lock *exclusively*:

* it gets it: no other main process is alive in this folder, so any Snakemake
  lock files are left by a run that no longer exists. It removes them, says so
  in one line, and keeps the lock shared for the rest of its life;
* it does not: another run (or dry run) is alive here. It leaves everything as
  it is and takes the lock shared; Snakemake's own check then refuses a second
  run over the same files, as before.

So two runs started at once in one folder are still refused (by Snakemake),
and a killed run's lock is cleared by the next run with no manual step. Where
``flock`` is not available (some network file systems), nothing is done and
Snakemake behaves as without this module. Stdlib only.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

OWNER_FILE = "mibench-run.lock"
_held: dict[str, int] = {}  # resolved .snakemake path -> the open descriptor holding the lock


def claim(snakemake_dir: str | os.PathLike = ".snakemake") -> str | None:
    """Hold this process's lock on ``snakemake_dir``; clear Snakemake's locks if no other run is alive.

    Returns the one-line notice when stale locks were removed (else None). Idempotent in a process."""
    base = Path(snakemake_dir).resolve()
    if str(base) in _held:
        return None
    try:
        base.mkdir(parents=True, exist_ok=True)
        fd = os.open(base / OWNER_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        return None  # read-only or unusable folder: Snakemake reports what it must
    notice = None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        if alone:
            notice = _clear_stale(base)
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        fcntl.flock(fd, fcntl.LOCK_SH)  # from now on others see a live run here
    except OSError:
        os.close(fd)  # no flock here (e.g. some NFS setups): leave locking to Snakemake alone
        return None
    _held[str(base)] = fd
    return notice


def _clear_stale(base: Path) -> str | None:
    locks = base / "locks"
    stale = sorted(p for p in locks.glob("*.lock") if p.is_file()) if locks.is_dir() else []
    if not stale:
        return None
    for path in stale:
        path.unlink(missing_ok=True)
    return (
        f"MIBench: removed {len(stale)} stale Snakemake lock file(s) in {locks}: no Snakemake run is alive "
        "in this folder (the last one was killed); resuming"
    )


def release(snakemake_dir: str | os.PathLike = ".snakemake") -> None:
    """Drop this process's lock (tests; a process otherwise holds it until it exits)."""
    fd = _held.pop(str(Path(snakemake_dir).resolve()), None)
    if fd is not None:
        os.close(fd)
