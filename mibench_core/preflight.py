"""Preflight: what a validated config asks for must be possible before any job runs.

Called by the Snakefile right after validation (so ``snakemake -n`` fails
too; ``mibench plan`` runs the same, through mibench_core.config.checked),
stdlib only.

Consistency (:func:`consistency`, always): class ids the dataset has
(``private_classes: [42]`` of a 10-class dataset), a resolution every
configured prior can produce (the DCGAN-style GANs need a power of two >= 8),
a ``top_k`` / top-k ``k`` no larger than the number of private classes,
and split-inference networks that can take the track's images
(:mod:`mibench_core.split.shapes`, which imports torch, only when that track
is configured).

Files (:func:`problems`): it checks every dataset ``root`` and every parameter that
names a file (a key ending in ``weights``, ``checkpoint``, ``_path`` or
``_file`` with a string value) in targets, evaluation, defenses, priors,
attacks and metrics, and every path of the top-level ``weights:`` mapping;
and that datasets which cannot come from anywhere else have a root (or
``download: true``). Relative paths are relative to the
working directory (``snakemake --directory``), as the jobs see them.

Set ``MIBENCH_PREFLIGHT=0`` to plan a config whose files live elsewhere
(e.g. dry-running a paper config on a laptop); jobs still fail on a missing
file, later. The consistency checks run regardless.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

# Datasets that need a root folder unless they may download (the others ship
# with a package or have a system-wide default location).
NEEDS_SOURCE = {"mnist", "cifar10", "cifar100", "image-folder", "tabular", "purchase100", "texas100", "location30"}
NO_DOWNLOAD = {"image-folder", "tabular", "purchase100", "texas100", "location30"}
PATH_KEY = re.compile(r"(^|_)(weights|checkpoint|path|file)$")
# Classes of the datasets with a fixed class list (image-folder: its root's sub-folders).
DATASET_CLASSES = {"fashion-mnist": 10, "mnist": 10, "cifar10": 10, "sklearn-digits": 10}
# Priors built from DCGAN-style up/down-sampling blocks, or StyleGAN blocks, at the dataset's resolution: a
# power-of-two resolution >= 8 (the rule of mibench_core.priors.common.n_blocks and of the StyleGAN prior's
# check; tests/test_config_malformed.py checks they agree).
POWER_OF_TWO_PRIORS = {"gmi-gan", "kedmi-gan", "plgmi-gan", "lokt-tacgan", "stylegan"}


def dcgan_resolution_ok(resolution: int) -> bool:
    return resolution >= 8 and resolution & (resolution - 1) == 0


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


def _class_count(ds: dict, base: Path) -> int | None:
    if ds.get("name") in DATASET_CLASSES:
        return DATASET_CLASSES[ds["name"]]
    root = ds.get("root")
    if ds.get("name") == "image-folder" and root and os.environ.get("MIBENCH_PREFLIGHT", "1") != "0":
        folder = Path(root).expanduser()
        folder = folder if folder.is_absolute() else base / folder
        if folder.is_dir():
            return sum(1 for p in folder.iterdir() if p.is_dir()) or None  # none: the data job says so
    return None


def consistency(cfg: dict, workdir: str | os.PathLike | None = None) -> list[str]:
    """What a validated config asks for that its datasets cannot give, one line each."""
    base = Path(workdir) if workdir is not None else Path.cwd()
    out = []
    n_private = []
    for i, ds in enumerate(cfg.get("datasets", [])):
        split = ds.get("split", {})
        n = _class_count(ds, base)
        for key in ("private_classes", "public_classes"):
            ids = split.get(key) or []
            bad = sorted(c for c in ids if n is not None and c >= n)
            if bad:
                shown = ", ".join(map(str, bad[:5])) + (f", ... ({len(bad)} ids)" if len(bad) > 5 else "")
                out.append(
                    f"config key 'datasets[{i}].split.{key}': dataset {ds['name']!r} has {n} classes "
                    f"(ids 0-{n - 1}); {shown} do not exist"
                )
        if split.get("mode") == "class-disjoint" and split.get("private_classes"):
            n_private.append(len(split["private_classes"]))
        elif n is not None:
            n_private.append(n)
        res = ds.get("resolution")
        for j, prior in enumerate(cfg.get("priors", [])):
            if prior.get("name") in POWER_OF_TWO_PRIORS and isinstance(res, int) and not dcgan_resolution_ok(res):
                out.append(
                    f"config key 'datasets[{i}].resolution': prior {prior['name']!r} (priors[{j}]) cannot produce "
                    f"{res}x{res} images: its generator needs a power of two >= 8 (8, 16, 32, 64, 128, ...)"
                )
    k_max = min(n_private) if n_private else None
    if k_max is not None:
        for section, key in (("attacks", "top_k"), ("output_defenses", "k")):
            for i, item in enumerate(cfg.get(section, [])):
                k = (item.get("params") or {}).get(key)
                if isinstance(k, int) and k > k_max:
                    out.append(
                        f"config key '{section}[{i}].{key}': {k} is more than the {k_max} private classes "
                        "a target answers for"
                    )
    if (cfg.get("split_inference") or {}).get("targets"):  # torch only when the split track is on
        from mibench_core.split.shapes import problems as split_shape_problems

        out += split_shape_problems(cfg)
    return out


def check(cfg: dict, workdir: str | os.PathLike | None = None) -> None:
    """Raise :class:`PreflightError` naming every inconsistency and every missing file.

    MIBENCH_PREFLIGHT=0 skips the file checks."""
    found = consistency(cfg, workdir)
    if found:
        raise PreflightError(
            "the config asks for what its datasets cannot give (no job was started):\n  " + "\n  ".join(found)
        )
    if os.environ.get("MIBENCH_PREFLIGHT", "1") == "0":
        return
    found = problems(cfg, workdir)
    if found:
        raise PreflightError(
            "files named by the config are missing (no job was started):\n  "
            + "\n  ".join(found)
            + "\n(paths are relative to the working directory; MIBENCH_PREFLIGHT=0 skips this check)"
        )
