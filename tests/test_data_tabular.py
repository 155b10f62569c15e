"""Tabular datasets (Purchase-100 / Texas-100 / Location-30 layouts, any CSV / NPZ) and the MLP, on synthetic data."""

import numpy as np
import pytest
import torch

from mibench_core.data import tabular
from mibench_core.data.common import DatasetNotFound, build_artifact, to_model_range
from mibench_core.models.classifiers import build

SPEC = {"resolution": 5, "channels": 1, "max_private_per_class": None, "max_public": None,
        "split": {"mode": "sample-disjoint", "private_classes": None, "public_classes": None, "public_fraction": 0.2,
                  "val_fraction": 0.1, "test_fraction": 0.2}}  # fmt: skip


def synthetic(n=300, d=20, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(1, k + 1, n)  # 1-based labels, as Purchase-100 / Texas-100 ship them
    x = (rng.random((n, d)) < 0.3).astype(np.float64)
    x[:, 0] = rng.normal(size=n) * 5  # one continuous column
    return x, y


def test_npz_and_csv_layouts_load_to_the_same_records(tmp_path):
    x, y = synthetic()
    np.savez(tmp_path / "data.npz", x=x, y=y)
    a = tabular.load_tabular(str(tmp_path))
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    np.savetxt(csv_dir / "purchase100.csv", np.c_[y, x], delimiter=",")
    b = tabular.load_purchase100(str(csv_dir))
    assert a.tabular and b.tabular and a.train_x.dtype == np.uint8
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.train_y, b.train_y)
    assert sorted(set(a.train_y.tolist())) == [0, 1, 2] and a.class_names == ["1", "2", "3"]
    assert set(np.unique(a.train_x[:, 1:]).tolist()) <= {0, 255}  # binary features -> 0 / 255
    assert a.train_x[:, 0].min() == 0 and a.train_x[:, 0].max() == 255  # min-max scaled continuous column


def test_texas_two_file_layout(tmp_path):
    x, y = synthetic(d=10)
    (tmp_path / "texas" / "100").mkdir(parents=True)
    np.savetxt(tmp_path / "texas" / "100" / "feats", x, delimiter=",")
    np.savetxt(tmp_path / "texas" / "100" / "labels", y, delimiter=",", fmt="%d")
    raw = tabular.load_texas100(str(tmp_path))
    assert raw.train_x.shape == (300, 10) and raw.test_x is None


def test_missing_files_name_the_layouts(tmp_path):
    with pytest.raises(DatasetNotFound, match="location30"):
        tabular.load_location30(str(tmp_path))


def test_records_become_padded_squares_and_an_mlp_classifies_them(tmp_path):
    x, y = synthetic()
    np.savez(tmp_path / "data.npz", x=x, y=y)
    raw = tabular.load_tabular(str(tmp_path))
    tensors, info = build_artifact(raw, SPEC, seed=0)
    xt = tensors["private_train_x"]
    assert xt.shape[1:] == (1, 5, 5) and info["num_classes"] == 3
    flat = xt.reshape(len(xt), -1)
    assert (flat[:, 20:] == 0).all()  # 20 features, zero-padded to 25
    model = build("mlp", {"hidden": [16, 8], "activation": "tanh"}, 3, 1, 5)
    assert model(to_model_range(xt[:4])).shape == (4, 3) and model.feat_dim == 8
    with pytest.raises(ValueError, match="resolution >= 5"):
        build_artifact(raw, {**SPEC, "resolution": 4}, seed=0)
    with pytest.raises(ValueError, match="channels"):
        build_artifact(raw, {**SPEC, "channels": 3}, seed=0)
    assert isinstance(model(torch.zeros(1, 1, 5, 5)), torch.Tensor)


def test_cifar100_binary_release(tmp_path):
    from mibench_core.data import cifar100

    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train.bin", 4), ("test.bin", 2)):
        rec = np.zeros((n, cifar100.RECORD), np.uint8)
        rec[:, 0], rec[:, 1] = 3, np.arange(n) + 10  # coarse, fine label
        rec[:, 2:] = rng.integers(0, 255, (n, 3072))
        rec.tofile(folder / name)
    raw = cifar100.load_cifar100(str(tmp_path))
    assert raw.train_x.shape == (4, 32, 32, 3) and raw.train_y.tolist() == [10, 11, 12, 13]
    assert raw.test_y.tolist() == [10, 11] and len(raw.class_names) == 100
    first = np.fromfile(folder / "train.bin", np.uint8)[2:3074].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(raw.train_x[0], first)  # channel-first records, returned HWC
