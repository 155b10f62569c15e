"""Class-per-folder images: ``root/<class>/<image>`` (CelebA identities, FaceScrub, FFHQ-style).

Each image is centre-cropped to a square of its shorter side (the usual
64x64 CelebA protocols crop the face region first: give such a folder as the
root) and resized later to the configured resolution. Classes are the
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

    if not root:
        raise DatasetNotFound("image-folder: set 'root' to a folder with one sub-folder per class")
    base = Path(root).expanduser()
    classes = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    if not classes:
        raise DatasetNotFound(f"image-folder: no class folders under {base}")
    images, labels = [], []
    for ci, name in enumerate(classes):
        for path in sorted((base / name).iterdir()):
            if path.suffix.lower() not in EXTENSIONS:
                continue
            with Image.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                s = min(w, h)
                img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
                if s > LOAD_SIZE:
                    img = img.resize((LOAD_SIZE, LOAD_SIZE), Image.BICUBIC)
                images.append(np.asarray(img, dtype=np.uint8))
                labels.append(ci)
    if not images:
        raise DatasetNotFound(f"image-folder: no images with extensions {sorted(EXTENSIONS)} under {base}")
    size = min(im.shape[0] for im in images)
    if any(im.shape[0] != size for im in images):
        images = [np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in images]
    return RawDataset(np.stack(images), np.asarray(labels, dtype=np.int64), None, None, classes, {})
