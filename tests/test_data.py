"""Dataset loaders on small files the tests make, and the deterministic splitter."""

import gzip
import struct

import numpy as np
import pytest
import torch

from mibench_core.data import cifar, idx, image_folder, sklearn_digits
from mibench_core.data.common import (
    DatasetNotFound,
    RawDataset,
    build_artifact,
    split_indices,
    to_model_range,
    to_tensor_images,
    to_uint8,
)


def write_idx(path, arr: np.ndarray, gz: bool):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def make_idx_dataset(folder, n_train=40, n_test=20, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28)),
        "train_y": np.arange(n_train) % 10,
        "test_x": rng.integers(0, 256, (n_test, 28, 28)),
        "test_y": np.arange(n_test) % 10,
    }
    for key, stem in idx.FILES.items():
        write_idx(folder / (stem + (".gz" if gz else "")), arrays[key], gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    path = tmp_path / ("x.idx" + (".gz" if gz else ""))
    write_idx(path, arr, gz)
    assert np.array_equal(idx.read_idx(path), arr)


def test_read_idx_rejects_truncated_file(tmp_path):
    path = tmp_path / "bad"
    write_idx(path, np.zeros((2, 3, 3)), gz=False)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="expected 18 bytes"):
        idx.read_idx(path)


def test_fashion_mnist_loader_flat_and_torchvision_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no cached copy
    arrays = make_idx_dataset(tmp_path / "flat")
    raw = idx.load_fashion_mnist(str(tmp_path / "flat"))
    assert np.array_equal(raw.train_x, arrays["train_x"]) and raw.class_names[9] == "Ankle boot"
    assert len(raw.source_files) == 4
    make_idx_dataset(tmp_path / "tv" / "FashionMNIST" / "raw", gz=False)
    assert idx.load_fashion_mnist(str(tmp_path / "tv")).test_x.shape == (20, 28, 28)


def test_missing_dataset_error_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DatasetNotFound, match="nowhere"):
        idx.load_mnist(str(tmp_path / "nowhere"))


def test_cifar10_binary_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, 3).astype(np.uint8)
        pix = rng.integers(0, 256, (3, 3072)).astype(np.uint8)
        np.concatenate([labels[:, None], pix], 1).tofile(folder / name)
    raw = cifar.load_cifar10(str(tmp_path))
    assert raw.train_x.shape == (15, 32, 32, 3) and raw.test_x.shape == (3, 32, 32, 3)
    # channel-major records: the first 1024 bytes are the red plane
    rec = np.fromfile(folder / "test_batch.bin", dtype=np.uint8)[:3073]
    assert raw.test_x[0, 0, 1, 0] == rec[1 + 1] and raw.test_x[0, 0, 0, 1] == rec[1 + 1024]


def test_image_folder_crops_and_labels(tmp_path):
    from PIL import Image

    for ci, cls in enumerate(["alice", "bob"]):
        (tmp_path / cls).mkdir()
        for j in range(3):
            Image.new("RGB", (40, 30), (ci * 100, j * 50, 0)).save(tmp_path / cls / f"{j}.png")
    raw = image_folder.load_image_folder(str(tmp_path))
    assert raw.class_names == ["alice", "bob"]
    assert raw.train_x.shape == (6, 30, 30, 3) and list(raw.train_y) == [0, 0, 0, 1, 1, 1]
    assert raw.test_x is None


def test_to_tensor_images_resizes_and_converts_channels():
    x = np.full((2, 28, 28), 200, np.uint8)
    out = to_tensor_images(x, 32, 3)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.uint8 and (out == 200).all()
    rgb = np.zeros((1, 8, 8, 3), np.uint8)
    rgb[..., 1] = 255
    assert to_tensor_images(rgb, 8, 1)[0, 0, 0, 0] == round(0.587 * 255)
    assert torch.equal(to_uint8(to_model_range(out)), out)


def spec(mode="class-disjoint", **kw):
    s = {
        "name": "sklearn-digits",
        "resolution": 16,
        "channels": 1,
        "max_private_per_class": None,
        "max_public": None,
        "split": {
            "mode": mode,
            "private_classes": [0, 1, 2],
            "public_classes": [7, 8, 9],
            "public_fraction": 0.5,
            "val_fraction": 0.1,
            "test_fraction": 0.2,
        },
    }
    s.update(kw)
    return s


def test_class_disjoint_split_is_deterministic_disjoint_and_relabelled():
    raw = sklearn_digits.load_digits()
    a, b = split_indices(raw, spec(), 3), split_indices(raw, spec(), 3)
    for k in a:
        assert np.array_equal(a[k], b[k])
    c = split_indices(raw, spec(), 4)
    assert not np.array_equal(a["private_train"], c["private_train"])
    pools = [set(a[k].tolist()) for k in ("private_train", "private_val", "private_test", "public")]
    assert sum(len(p) for p in pools) == len(set().union(*pools))  # pairwise disjoint
    assert set(raw.train_y[a["public"]]) == {7, 8, 9}
    assert set(raw.train_y[a["private_train"]]) == {0, 1, 2}
    tensors, info = build_artifact(raw, spec(), 3)
    assert set(tensors["private_train_y"].tolist()) == {0, 1, 2}
    assert info["class_names"] == ["0", "1", "2"] and "public_y" not in tensors
    assert tensors["private_train_x"].shape[1:] == (1, 16, 16)


def test_sample_disjoint_split_keeps_all_classes_private():
    raw = sklearn_digits.load_digits()
    s = spec("sample-disjoint")
    a = split_indices(raw, s, 0)
    assert set(raw.train_y[a["private_train"]]) == set(range(10))
    n_class0 = (raw.train_y == 0).sum()
    assert abs((raw.train_y[a["public"]] == 0).sum() - n_class0 * 0.5) <= 1
    assert not set(a["public"].tolist()) & set(a["private_train"].tolist())


def test_caps_and_bad_class_ids():
    raw = RawDataset(np.zeros((30, 4, 4), np.uint8), np.arange(30) % 3, None, None, ["a", "b", "c"], {})
    s = spec(max_private_per_class=2, max_public=3)
    s["split"].update(private_classes=[0, 1], public_classes=[2])
    a = split_indices(raw, s, 0)
    assert len(a["private_train"]) == 4 and len(a["public"]) == 3
    s["split"]["public_classes"] = [5]
    with pytest.raises(ValueError, match="do not exist"):
        split_indices(raw, s, 0)


def test_image_folder_resizes_once_to_the_smallest_crop(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = {"a": [(150, 170), (90, 80)], "b": [(200, 200)]}  # W x H; crops 150, 80, 200 -> all to 80
    expected = []
    for cls, whs in sizes.items():
        (tmp_path / cls).mkdir()
        for j, (w, h) in enumerate(whs):
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            img.save(tmp_path / cls / f"{j}.png")
            s = min(w, h)
            crop = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            expected.append(np.asarray(crop if s == 80 else crop.resize((80, 80), Image.BICUBIC)))
    raw = image_folder.load_image_folder(str(tmp_path))
    assert raw.train_x.shape == (3, 80, 80, 3) and list(raw.train_y) == [0, 0, 1]
    np.testing.assert_array_equal(raw.train_x, np.stack(expected))


def test_image_folder_holds_one_copy_of_the_images(tmp_path):
    """CelebA at 128 px is 10 GB: the loader fills one array instead of stacking a list (twice that)."""
    import tracemalloc

    from PIL import Image

    for c in range(3):
        (tmp_path / f"id{c}").mkdir()
        for j in range(20):
            Image.new("RGB", (140, 160), (c * 80, j * 10, 0)).save(tmp_path / f"id{c}" / f"{j}.png")
    tracemalloc.start()
    try:
        raw = image_folder.load_image_folder(str(tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raw.train_x.shape == (60, 128, 128, 3)
    assert peak < 1.3 * raw.train_x.nbytes, (peak, raw.train_x.nbytes)


def test_to_tensor_images_indexes_a_chunk_at_a_time():
    """The splits select rows of the raw images chunk by chunk, never copying a whole split first."""
    import tracemalloc

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
    index = rng.permutation(400)[:300]
    np.testing.assert_array_equal(to_tensor_images(x, 16, 1, chunk=64, index=index), to_tensor_images(x[index], 16, 1))
    tracemalloc.start()
    try:
        to_tensor_images(x, 16, 3, chunk=32, index=index)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * x[index].nbytes, (peak, x[index].nbytes)  # a chunk (32 of 300 rows), not the selection
