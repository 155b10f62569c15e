"""MNIST-family IDX files (Fashion-MNIST, MNIST).

Looks, in order, under the configured ``root``, ``$MIBENCH_DATA/<name>``,
``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist``) and
``~/.cache/mibench/datasets/<name>``; accepts the files gzipped or not, flat
or in torchvision's ``<Class>/raw/`` layout. With ``download: true`` and no
local copy, torchvision downloads them (it checks each file's MD5).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from mibench_core.data.common import DatasetNotFound, RawDataset, data_roots
from mibench_core.store import sha256_file

METHODS = [
    {
        "name": "fashion-mnist",
        "kind": "dataset",
        "call": "load_fashion_mnist",
        "description": "Fashion-MNIST 28x28 grayscale, 10 classes (Debian package, a root, or download)",
    },
    {
        "name": "mnist",
        "kind": "dataset",
        "call": "load_mnist",
        "description": "MNIST 28x28 grayscale digits, 10 classes (a root, or download when online)",
    },
]

FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
MNIST_CLASSES = [str(i) for i in range(10)]


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a NumPy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic)")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX files are supported (type 0x{dtype_code:02x})")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    expected = int(np.prod(dims))
    if body.size != expected:
        raise ValueError(f"{path}: expected {expected} bytes of data for shape {dims}, found {body.size}")
    return body.reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).exists():
            return folder / name
    return None


def locate(name: str, tv_folder: str, root: str | None) -> dict[str, Path] | None:
    for base in data_roots(name, root):
        for folder in (base, base / tv_folder / "raw"):
            found = {k: _find(folder, stem) for k, stem in FILES.items()}
            if all(found.values()):
                return found  # type: ignore[return-value]
    return None


def _load(name: str, tv_name: str, classes: list[str], root: str | None, download: bool) -> RawDataset:
    files = locate(name, tv_name, root)
    if files is None and download:
        import torchvision

        dest = Path(root).expanduser() if root else data_roots(name, None)[-1]
        for train in (True, False):
            getattr(torchvision.datasets, tv_name)(str(dest), train=train, download=True)
        files = locate(name, tv_name, str(dest))
    if files is None:
        tried = ", ".join(str(p) for p in data_roots(name, root))
        raise DatasetNotFound(
            f"{name}: IDX files not found (looked in {tried}). Set 'root' for this dataset, "
            f"set download: true when online"
            + (", or apt-get install dataset-fashion-mnist" if name == "fashion-mnist" else "")
        )
    arrays = {k: read_idx(p) for k, p in files.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}_x"]) != len(arrays[f"{split}_y"]):
            raise ValueError(f"{name}: {split} images and labels differ in length")
    return RawDataset(
        arrays["train_x"], arrays["train_y"].astype(np.int64),
        arrays["test_x"], arrays["test_y"].astype(np.int64),
        classes, {str(p): sha256_file(p) for p in files.values()},
    )  # fmt: skip


def load_fashion_mnist(root: str | None = None, download: bool = False) -> RawDataset:
    return _load("fashion-mnist", "FashionMNIST", FASHION_CLASSES, root, download)


def load_mnist(root: str | None = None, download: bool = False) -> RawDataset:
    return _load("mnist", "MNIST", MNIST_CLASSES, root, download)
