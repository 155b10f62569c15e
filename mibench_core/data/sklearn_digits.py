"""scikit-learn's 8x8 digits (1,797 images), shipped inside the wheel: tiny test data."""

from __future__ import annotations

import numpy as np

from mibench_core.data.common import RawDataset

METHODS = [
    {
        "name": "sklearn-digits",
        "kind": "dataset",
        "call": "load_digits",
        "description": "scikit-learn's 8x8 digits (1,797 images, ships with the wheel): tiny test data",
    }
]


def load_digits(root: str | None = None, download: bool = False) -> RawDataset:
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    x = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return RawDataset(x, bunch.target.astype(np.int64), None, None, [str(i) for i in range(10)], {})
