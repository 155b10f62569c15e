"""CIFAR-10 from a local root or a torchvision download.

Reads the *binary* release (``cifar-10-batches-bin``: one label byte then
3,072 pixel bytes per record), which involves no pickle. The python release
is read only through torchvision, which verifies every file's MD5 against the
official list before unpickling it (so only the official files load).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mibench_core.data.common import DatasetNotFound, RawDataset, data_roots
from mibench_core.store import sha256_file

METHODS = [
    {
        "name": "cifar10",
        "kind": "dataset",
        "call": "load_cifar10",
        "description": "CIFAR-10 32x32 colour, 10 classes (python-pickle batches under a root, or download)",
    }
]

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
RECORD = 1 + 32 * 32 * 3


def read_bin_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % RECORD:
        raise ValueError(f"{path}: size {raw.size} is not a multiple of the CIFAR-10 record size {RECORD}")
    raw = raw.reshape(-1, RECORD)
    labels = raw[:, 0].astype(np.int64)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def load_cifar10(root: str | None = None, download: bool = False) -> RawDataset:
    for base in data_roots("cifar10", root):
        folder = base / "cifar-10-batches-bin"
        train = [folder / f"data_batch_{i}.bin" for i in range(1, 6)]
        test = folder / "test_batch.bin"
        if all(p.exists() for p in train) and test.exists():
            parts = [read_bin_batch(p) for p in train]
            test_x, test_y = read_bin_batch(test)
            return RawDataset(
                np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                test_x, test_y, CLASSES, {str(p): sha256_file(p) for p in [*train, test]},
            )  # fmt: skip
    candidates = [b for b in data_roots("cifar10", root) if (b / "cifar-10-batches-py").exists()]
    if candidates or download:
        import torchvision

        dest = candidates[0] if candidates else (Path(root).expanduser() if root else data_roots("cifar10", None)[-1])
        tr = torchvision.datasets.CIFAR10(str(dest), train=True, download=download)
        te = torchvision.datasets.CIFAR10(str(dest), train=False, download=download)
        return RawDataset(
            np.asarray(tr.data), np.asarray(tr.targets, dtype=np.int64),
            np.asarray(te.data), np.asarray(te.targets, dtype=np.int64), CLASSES, {},
        )  # fmt: skip
    tried = ", ".join(str(p) for p in data_roots("cifar10", root))
    raise DatasetNotFound(f"cifar10: no cifar-10-batches-bin or -py folder in {tried}; set 'root' or download: true")
