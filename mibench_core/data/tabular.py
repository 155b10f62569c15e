"""Tabular classification sets for membership inference: Purchase-100, Texas-100, Location-30, or any
CSV / NPZ under a root.

Files are looked for under the configured ``root`` (then ``$MIBENCH_DATA/<name>``,
``/usr/share/datasets/<name>``, ``~/.cache/mibench/datasets/<name>``); none can
be downloaded (their licences require registration). Accepted layouts:

* ``<name>.npz`` or ``data.npz`` with arrays ``x`` ``[N, D]`` and ``y`` ``[N]``
  (optionally ``x_test``, ``y_test``); read with ``allow_pickle=False``;
* ``<name>.csv`` or ``data.csv``: one record per line, the label first, then the
  features (comma-separated, no header);
* Purchase-100: ``dataset_purchase`` (the CSV of Shokri et al. 2017, labels
  1..100, 600 binary features);
* Texas-100: ``texas/100/feats`` and ``texas/100/labels`` (CSV, 6,169 binary
  features, labels 1..100);
* Location-30: ``bangkok`` (CSV, label first, 446 binary features) or
  ``data_complete.npz`` (``x``, ``y``).

Labels are remapped to 0..K-1 in sorted order. Features become uint8: a
binary column (values in {0, 1}) maps to {0, 255}; any other column is
min-max scaled over the whole file to 0..255 and rounded (an 8-bit
quantisation, documented deviation for continuous features). The data
stage then stores each record as a one-channel ``R x R`` "image" (rows
zero-padded, :func:`mibench_core.data.common.tabular_to_images`), so
``resolution`` must satisfy ``R * R >= D`` (25 for Purchase-100, 22 for
Location-30, 79 for Texas-100) and ``channels`` must be 1; the ``mlp``
architecture (:mod:`mibench_core.models.mlp`) is the usual model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mibench_core.data.common import DatasetNotFound, RawDataset, data_roots
from mibench_core.store import sha256_file

METHODS = [
    {
        "name": "tabular",
        "kind": "dataset",
        "call": "load_tabular",
        "description": "any tabular set under a root: data.npz (x, y) or data.csv (label first); uint8 features",
    },
    {
        "name": "purchase100",
        "kind": "dataset",
        "call": "load_purchase100",
        "description": "Purchase-100 (Shokri et al. 2017): 600 binary features, 100 classes; under a root",
    },
    {
        "name": "texas100",
        "kind": "dataset",
        "call": "load_texas100",
        "description": "Texas-100 (Shokri et al. 2017): 6,169 binary features, 100 classes; under a root",
    },
    {
        "name": "location30",
        "kind": "dataset",
        "call": "load_location30",
        "description": "Location-30 (Shokri et al. 2017): 446 binary features, 30 classes; under a root",
    },
]


def to_uint8_features(x: np.ndarray) -> np.ndarray:
    """Binary columns -> {0, 255}; other columns min-max scaled to 0..255 (rounded)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"tabular features must be [N, D], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("tabular features contain NaN or infinite values")
    lo, hi = x.min(axis=0), x.max(axis=0)
    binary = np.all((x == 0) | (x == 1), axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.where(binary, x * 255.0, (x - lo) / span * 255.0)
    return np.round(scaled).clip(0, 255).astype(np.uint8)


def _remap(*label_arrays: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    classes = np.unique(np.concatenate([np.asarray(a).ravel() for a in label_arrays]))
    lookup = {v: i for i, v in enumerate(classes.tolist())}
    out = [np.asarray([lookup[v] for v in np.asarray(a).ravel().tolist()], dtype=np.int64) for a in label_arrays]
    return out, [str(c) for c in classes.tolist()]


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    table = pd.read_csv(path, header=None).to_numpy()
    return table[:, 1:], table[:, 0]


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for key in ("x", "y"):
        if key not in arrays:
            raise ValueError(f"{path}: needs arrays 'x' and 'y' (has {sorted(arrays)})")
    return arrays


def _build(x, y, x_test, y_test, files: list[Path]) -> RawDataset:
    if len(x) != len(y):
        raise ValueError(f"{files[0]}: {len(x)} feature rows but {len(y)} labels")
    if x_test is not None:
        if x_test.shape[1] != x.shape[1]:
            raise ValueError(f"{files[0]}: test features have {x_test.shape[1]} columns, training {x.shape[1]}")
        both = to_uint8_features(np.concatenate([x, x_test]))
        (y, y_test), names = _remap(y, y_test)
        x, x_test = both[: len(x)], both[len(x) :]
    else:
        x = to_uint8_features(x)
        (y,), names = _remap(y)
    return RawDataset(x, y, x_test, y_test, names, {str(p): sha256_file(p) for p in files}, tabular=True)


def _load(name: str, root: str | None, layouts: list[tuple[str, ...]]) -> RawDataset:
    tried = data_roots(name, root)
    for base in tried:
        for layout in layouts:
            paths = [base / part for part in layout]
            if not all(p.is_file() for p in paths):
                continue
            if paths[0].suffix == ".npz":
                a = _read_npz(paths[0])
                return _build(a["x"], a["y"], a.get("x_test"), a.get("y_test"), paths)
            if len(paths) == 2:  # features and labels in two files
                import pandas as pd

                x = pd.read_csv(paths[0], header=None).to_numpy()
                y = pd.read_csv(paths[1], header=None).to_numpy().ravel()
                return _build(x, y, None, None, paths)
            x, y = _read_csv(paths[0])
            return _build(x, y, None, None, paths)
    wanted = " or ".join("+".join(layout) for layout in layouts)
    raise DatasetNotFound(
        f"{name}: no {wanted} found (looked in {', '.join(str(p) for p in tried)}); set this dataset's 'root'"
    )


def load_tabular(root: str | None = None, download: bool = False) -> RawDataset:
    return _load("tabular", root, [("data.npz",), ("data.csv",)])


def load_purchase100(root: str | None = None, download: bool = False) -> RawDataset:
    layouts = [("purchase100.npz",), ("data.npz",), ("dataset_purchase",), ("purchase100.csv",)]
    return _load("purchase100", root, layouts)


def load_texas100(root: str | None = None, download: bool = False) -> RawDataset:
    layouts = [("texas100.npz",), ("data.npz",), ("texas/100/feats", "texas/100/labels"), ("feats", "labels")]
    return _load("texas100", root, layouts)


def load_location30(root: str | None = None, download: bool = False) -> RawDataset:
    return _load("location30", root, [("location30.npz",), ("data_complete.npz",), ("bangkok",), ("location30.csv",)])
