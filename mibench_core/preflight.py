"""Preflight: the files a validated config names must exist before any job runs.

Called by the Snakefile right after validation (so ``snakemake -n`` fails
too), stdlib only. It checks every dataset ``root`` and every parameter that
names a file (a key ending in ``weights``, ``checkpoint``, ``_path`` or
``_file`` with a string value) in targets, evaluation, defenses, priors,
attacks and metrics, and every path of the top-level ``weights:`` mapping;
and that datasets which cannot come from anywhere else have a root (or
``download: true``). Relative paths are relative to the
working directory (``snakemake --directory``), as the jobs see them.

Set ``MIBENCH_PREFLIGHT=0`` to plan a config whose files live elsewhere
(e.g. dry-running a paper config on a laptop); jobs still fail on a missing
file, later.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

# Datasets that need a root folder unless they may download (the others ship
# with a package or have a system-wide default location).
NEEDS_SOURCE = {"mnist", "cifar10", "image-folder"}
NO_DOWNLOAD = {"image-folder"}
PATH_KEY = re.compile(r"(^|_)(weights|checkpoint|path|file)$")


class PreflightError(ValueError):
    """A file the config names is missing; the message names the key and the file."""


def _paths(obj: Any, where: str):
    if isinstance(obj, dict):
        for key, val in obj.items():
            if isinstance(val, str) and PATH_KEY.search(str(key)):
                yield f"{where}.{key}", val
            elif isinstance(val, (dict, list)):
                yield from _paths(val, f"{where}.{key}")
    elif isinstance(obj, list):
        for i, val in enumerate(obj):
            yield from _paths(val, f"{where}[{i}]")


def problems(cfg: dict, workdir: str | os.PathLike | None = None) -> list[str]:
    """Every missing file or source, one line each (empty when all is there)."""
    base = Path(workdir) if workdir is not None else Path.cwd()

    def missing(path: str) -> bool:
        p = Path(path).expanduser()
        return not (p if p.is_absolute() else base / p).exists()

    out = []
    split_datasets = (cfg.get("split_inference") or {}).get("datasets") or []
    for section, datasets in (("datasets", cfg.get("datasets", [])), ("split_inference.datasets", split_datasets)):
        if section != "datasets" and datasets is cfg.get("datasets"):
            continue  # the split track reuses the top-level datasets
        for i, ds in enumerate(datasets):
            root = ds.get("root")
            name = ds.get("name")
            if root:
                if missing(root):
                    out.append(f"config key '{section}[{i}].root': dataset {name!r}: no such folder {root}")
            elif name in NEEDS_SOURCE and (name in NO_DOWNLOAD or not ds.get("download")):
                how = "a root" if name in NO_DOWNLOAD else "a root or download: true"
                out.append(f"config key '{section}[{i}].root': dataset {name!r} needs {how}")
    sections = [("targets", cfg.get("targets", [])), ("evaluation", cfg.get("evaluation", {}))]
    sections += [(s, cfg.get(s, [])) for s in ("defenses", "priors", "attacks", "metrics")]
    for section, value in sections:
        for key, path in _paths(value, section):
            if missing(path):
                out.append(f"config key '{key}': no such file {path}")
    # the top-level weights mapping (name: path, or name: {path, sha256}); a path given there is
    # the only place looked at, so a missing one is an error, not a silently missing metric
    for name, spec in (cfg.get("weights") or {}).items():
        path = spec.get("path") if isinstance(spec, dict) else spec
        if isinstance(path, str) and missing(path):
            out.append(f"config key 'weights.{name}': no such file {path}")
    return out


def check(cfg: dict, workdir: str | os.PathLike | None = None) -> None:
    """Raise :class:`PreflightError` naming every missing file (unless MIBENCH_PREFLIGHT=0)."""
    if os.environ.get("MIBENCH_PREFLIGHT", "1") == "0":
        return
    found = problems(cfg, workdir)
    if found:
        raise PreflightError(
            "files named by the config are missing (no job was started):\n  "
            + "\n  ".join(found)
            + "\n(paths are relative to the working directory; MIBENCH_PREFLIGHT=0 skips this check)"
        )
