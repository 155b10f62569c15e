"""Shared dataset preparation: resize, channel conversion, deterministic splits.

A data artifact holds uint8 tensors ``[N, C, R, R]`` for the private train,
validation and test splits (labels remapped to 0..K-1) and the public split
(labels dropped). Two protocols:

* ``class-disjoint`` (GMI): private classes train the target; the public
  classes, without labels, train the prior.
* ``sample-disjoint``: every class is private; a fraction of each class's
  training images goes to the public split, again without labels.

The validation split is carved from private training images and used only
for model selection; the attack's scoring reference is the remaining private
training set, so no selection step peeks at what attacks are scored on.

``split.population_fraction`` (optional, default 0: no such split) withholds
that fraction of each private class's training images (after the validation
carve, before ``max_private_per_class``) from the target: they form the
labelled ``population`` split, same distribution as the members and never
trained on, which membership inference uses for shadow and reference models
(:mod:`mibench_core.membership.population`).

Tabular sources (``RawDataset.tabular``: uint8 feature rows ``[N, D]``) are
stored as one-channel "images": each row zero-padded to ``resolution**2``
values and reshaped to ``resolution x resolution`` (no resizing, which would
mix features), so every architecture and stage handles them unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class RawDataset:
    """A source as loaded: images uint8 ``[N, H, W]`` or ``[N, H, W, C]``."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    class_names: list[str]
    source_files: dict[str, str]  # path -> sha256 (provenance)
    tabular: bool = False  # rows of uint8 features [N, D] instead of images


class DatasetNotFound(FileNotFoundError):
    pass


def data_roots(name: str, root: str | None) -> list[Path]:
    """Where to look for a dataset, most specific first."""
    roots = []
    if root:
        roots.append(Path(root).expanduser())
    env = os.environ.get("MIBENCH_DATA")
    if env:
        roots.append(Path(env) / name)
    roots.append(Path("/usr/share/datasets") / name)
    roots.append(Path.home() / ".cache" / "mibench" / "datasets" / name)
    return roots


def to_tensor_images(
    x: np.ndarray, resolution: int, channels: int, chunk: int = 4096, index: np.ndarray | None = None
) -> torch.Tensor:
    """uint8 HxW(xC) images (the rows ``index`` of ``x``, or all) -> uint8 ``[N, channels, resolution, resolution]``.

    ``index`` is applied a chunk at a time: ``x[index]`` would copy the whole selection first
    (the 180,000 public CelebA faces at 128 px: 9 GB)."""
    if x.ndim == 3:
        x = x[..., None]
    n = len(x) if index is None else len(index)
    out = torch.empty((n, channels, resolution, resolution), dtype=torch.uint8)
    for start in range(0, n, chunk):
        rows = x[start : start + chunk] if index is None else x[index[start : start + chunk]]
        batch = torch.from_numpy(np.ascontiguousarray(rows)).permute(0, 3, 1, 2).float()
        if batch.shape[1] == 3 and channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            batch = (batch * weights).sum(1, keepdim=True)
        elif batch.shape[1] == 1 and channels == 3:
            batch = batch.expand(-1, 3, -1, -1)
        if batch.shape[-1] != resolution or batch.shape[-2] != resolution:
            batch = F.interpolate(
                batch, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False
            )
        out[start : start + chunk] = batch.round().clamp(0, 255).to(torch.uint8)
    return out


def tabular_to_images(x: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 feature rows ``[N, D]`` -> uint8 ``[N, 1, R, R]``, zero-padded to ``R * R`` features."""
    n, d = x.shape
    if d > resolution * resolution:
        need = int(np.ceil(np.sqrt(d)))
        raise ValueError(
            f"config key 'datasets[].resolution': {resolution} holds {resolution * resolution} features, "
            f"this tabular dataset has {d}; use resolution >= {need}"
        )
    out = np.zeros((n, resolution * resolution), dtype=np.uint8)
    out[:, :d] = x
    return torch.from_numpy(out.reshape(n, 1, resolution, resolution))


def _take(rng: np.random.Generator, idx: np.ndarray, n: int | None) -> np.ndarray:
    idx = rng.permutation(idx)
    return idx if n is None else idx[:n]


def split_indices(raw: RawDataset, spec: dict, seed: int) -> dict[str, np.ndarray]:
    """Deterministic split of raw indices; keys: private_train/val/test, public.

    ``private_test`` indexes ``raw.test_x`` when the source has a test split,
    otherwise ``raw.train_x`` (carved with ``test_fraction``).
    """
    rng = np.random.default_rng(seed)
    split = spec["split"]
    n_classes = len(raw.class_names)
    if split["mode"] == "class-disjoint":
        private = list(split["private_classes"])
        public = list(split["public_classes"])
        bad = [c for c in private + public if c >= n_classes]
        if bad:
            raise ValueError(f"dataset has {n_classes} classes; class ids {bad} do not exist")
    else:
        private, public = list(range(n_classes)), []

    out: dict[str, list[np.ndarray]] = {"private_train": [], "private_val": [], "private_test": [], "public": []}
    pop_fraction = split.get("population_fraction") or 0.0
    if pop_fraction:
        out["population"] = []
    for c in private:
        idx = rng.permutation(np.flatnonzero(raw.train_y == c))
        if split["mode"] == "sample-disjoint":
            n_pub = int(round(len(idx) * split["public_fraction"]))
            out["public"].append(idx[:n_pub])
            idx = idx[n_pub:]
        if raw.test_x is None:
            n_test = max(1, int(round(len(idx) * split["test_fraction"])))
            out["private_test"].append(idx[:n_test])
            idx = idx[n_test:]
        else:
            out["private_test"].append(np.flatnonzero(raw.test_y == c))
        n_val = int(round(len(idx) * split["val_fraction"]))
        out["private_val"].append(idx[:n_val])
        train = idx[n_val:]
        if pop_fraction:
            n_pop = int(round(len(train) * pop_fraction))
            out["population"].append(train[:n_pop])
            train = train[n_pop:]
        if spec.get("max_private_per_class"):
            train = train[: spec["max_private_per_class"]]
        out["private_train"].append(train)
    for c in public:
        out["public"].append(np.flatnonzero(raw.train_y == c))
    result = {k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64)) for k, v in out.items()}
    result["public"] = _take(rng, result["public"], spec.get("max_public"))
    disjoint = [("private_val", "private_train"), ("public", "private_train"), ("public", "private_val")]
    if pop_fraction:
        disjoint += [("population", "private_train"), ("population", "private_val"), ("population", "public")]
    if raw.test_x is None:
        disjoint.append(("private_test", "private_train"))
    for a, b in disjoint:
        if len(np.intersect1d(result[a], result[b])):
            raise AssertionError(f"split {a} overlaps {b}")  # pragma: no cover - invariant
    result["private_classes"] = np.asarray(private, dtype=np.int64)
    result["public_classes"] = np.asarray(public, dtype=np.int64)
    return result


def build_artifact(raw: RawDataset, spec: dict, seed: int) -> tuple[dict[str, torch.Tensor], dict]:
    """Split and convert a raw dataset into the tensors a data artifact stores."""
    idx = split_indices(raw, spec, seed)
    remap = {int(c): i for i, c in enumerate(idx["private_classes"])}
    res, ch = spec["resolution"], spec["channels"]
    if raw.tabular and ch != 1:
        raise ValueError("config key 'datasets[].channels': a tabular dataset has 1 channel")

    def convert(xs: np.ndarray, sel: np.ndarray) -> torch.Tensor:  # the rows ``sel`` of ``xs``
        return tabular_to_images(xs[sel], res) if raw.tabular else to_tensor_images(xs, res, ch, index=sel)

    tensors: dict[str, torch.Tensor] = {}
    test_x = raw.test_x if raw.test_x is not None else raw.train_x
    test_y = raw.test_y if raw.test_y is not None else raw.train_y
    splits = {
        "private_train": (raw.train_x, raw.train_y),
        "private_val": (raw.train_x, raw.train_y),
        "private_test": (test_x, test_y),
    }
    if "population" in idx:
        splits["population"] = (raw.train_x, raw.train_y)
    for key, (xs, ys) in splits.items():
        sel = idx[key]
        tensors[f"{key}_x"] = convert(xs, sel)
        tensors[f"{key}_y"] = torch.tensor([remap[int(y)] for y in ys[sel]], dtype=torch.int64)
    tensors["public_x"] = convert(raw.train_x, idx["public"])
    info = {
        "num_classes": len(remap),
        "class_names": [raw.class_names[int(c)] for c in idx["private_classes"]],
        "private_classes": [int(c) for c in idx["private_classes"]],
        "public_classes": [int(c) for c in idx["public_classes"]],
        "sizes": {k[:-2]: int(v.shape[0]) for k, v in tensors.items() if k.endswith("_x")},
        "resolution": res,
        "channels": ch,
        "source_files": raw.source_files,
    }
    for key in ("private_train", "public"):
        if info["sizes"][key] == 0:
            raise ValueError(f"split {key!r} is empty; check the dataset's split settings")
    return tensors, info


def to_model_range(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range every model and generator uses."""
    return x_uint8.float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def run(job: dict) -> tuple[list[str], dict, str]:
    """Data stage: load the raw source, split, convert, save one safetensors file."""
    from mibench_core import registry, store

    spec = job["spec"]
    loader = registry.load(registry.get("dataset", spec["name"]))
    raw = loader(root=job["options"].get("root"), download=job["options"].get("download", False))
    tensors, info = build_artifact(raw, spec, job["seed"])
    store.save_tensors(Path(job["outdir"]) / "data.safetensors", tensors)
    return ["data.safetensors"], info, "cpu"
