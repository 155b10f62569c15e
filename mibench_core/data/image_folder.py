"""Class-per-folder images: ``root/<class>/<image>`` (CelebA identities, FaceScrub, FFHQ-style).

Each image is centre-cropped to a square of its shorter side (the usual
64x64 CelebA protocols crop the face region first: give such a folder as the
root) and resized once to the smallest such square, at most ``LOAD_SIZE``;
the data stage then resizes to the configured resolution. Classes are the
sorted folder names; there is no official test split, so ``test_fraction``
of each class is held out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mibench_core.data.common import DatasetNotFound, RawDataset

METHODS = [
    {
        "name": "image-folder",
        "kind": "dataset",
        "call": "load_image_folder",
        "description": "class-per-folder images (CelebA / FaceScrub / FFHQ-style), centre crop and resize",
    }
]

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm"}
LOAD_SIZE = 128  # images are stored at most this size before the final resize


def load_image_folder(root: str | None = None, download: bool = False) -> RawDataset:
    from PIL import Image

    from mibench_core.runtime import progress

    if not root:
        raise DatasetNotFound("image-folder: set 'root' to a folder with one sub-folder per class")
    base = Path(root).expanduser()
    classes = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    if not classes:
        raise DatasetNotFound(f"image-folder: no class folders under {base}")
    files, labels = [], []
    for ci, name in enumerate(classes):
        for path in sorted((base / name).iterdir()):
            if path.suffix.lower() in EXTENSIONS:
                files.append(path)
                labels.append(ci)
    if not files:
        raise DatasetNotFound(f"image-folder: no images with extensions {sorted(EXTENSIONS)} under {base}")
    # The common size: the smallest square crop, at most LOAD_SIZE (from the headers; nothing decoded).
    size = LOAD_SIZE
    for path in files:
        with Image.open(path) as img:
            size = min(size, *img.size)
    # Filled in place: CelebA's 202,599 faces at 128 px are 10 GB, and a list of them stacked
    # into an array would need twice that.
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(progress(files, desc="image-folder", unit="image")):
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            s = min(w, h)
            img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            if s != size:
                img = img.resize((size, size), Image.BICUBIC)
            images[i] = np.asarray(img, dtype=np.uint8)
    return RawDataset(images, np.asarray(labels, dtype=np.int64), None, None, classes, {})
