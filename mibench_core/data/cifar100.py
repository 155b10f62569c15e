"""CIFAR-100 (fine labels) from a local root or a torchvision download.

Reads the *binary* release (``cifar-100-binary``: per record one coarse-label
byte, one fine-label byte, then 3,072 pixel bytes), which involves no pickle;
the python release is read only through torchvision, which verifies every
file's MD5 before unpickling it. 100 classes, 500 training and 100 test
images each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mibench_core.data.common import DatasetNotFound, RawDataset, data_roots
from mibench_core.store import sha256_file

METHODS = [
    {
        "name": "cifar100",
        "kind": "dataset",
        "call": "load_cifar100",
        "description": "CIFAR-100 32x32 colour, 100 fine classes (binary release under a root, or download)",
    }
]

RECORD = 2 + 32 * 32 * 3


def read_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 32, 32, 3]`` uint8 and fine labels ``[N]`` of a CIFAR-100 binary file."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % RECORD:
        raise ValueError(f"{path}: size {raw.size} is not a multiple of the CIFAR-100 record size {RECORD}")
    raw = raw.reshape(-1, RECORD)
    labels = raw[:, 1].astype(np.int64)
    images = raw[:, 2:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def _names(folder: Path) -> list[str]:
    path = folder / "fine_label_names.txt"
    if path.exists():
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if len(names) == 100:
            return names
    return [str(i) for i in range(100)]


def load_cifar100(root: str | None = None, download: bool = False) -> RawDataset:
    for base in data_roots("cifar100", root):
        folder = base / "cifar-100-binary"
        train, test = folder / "train.bin", folder / "test.bin"
        if train.exists() and test.exists():
            train_x, train_y = read_bin(train)
            test_x, test_y = read_bin(test)
            files = {str(p): sha256_file(p) for p in (train, test)}
            return RawDataset(train_x, train_y, test_x, test_y, _names(folder), files)
    candidates = [b for b in data_roots("cifar100", root) if (b / "cifar-100-python").exists()]
    if candidates or download:
        import torchvision

        dest = candidates[0] if candidates else (Path(root).expanduser() if root else data_roots("cifar100", None)[-1])
        tr = torchvision.datasets.CIFAR100(str(dest), train=True, download=download)
        te = torchvision.datasets.CIFAR100(str(dest), train=False, download=download)
        return RawDataset(
            np.asarray(tr.data), np.asarray(tr.targets, dtype=np.int64),
            np.asarray(te.data), np.asarray(te.targets, dtype=np.int64), list(tr.classes), {},
        )  # fmt: skip
    tried = ", ".join(str(p) for p in data_roots("cifar100", root))
    raise DatasetNotFound(
        f"cifar100: no cifar-100-binary or cifar-100-python folder in {tried}; set 'root' or download: true"
    )
