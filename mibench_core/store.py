"""Artifact folders: atomic writes, manifests, hashing, safe tensor I/O.

Every file is written to a temporary name in the same folder and renamed
into place, so an interrupted job never leaves a half-written file under a
final name. ``manifest.json`` is written last: its presence marks a complete
artifact (and it is the output Snakemake waits for). Files get the mode the
process's umask gives a new file (0644 under umask 022, 0664 under 002), as
``open()`` would, not ``mkstemp``'s private 0600, so a group can share a
results folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc), else by setting it back."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask."""
    return 0o666 & ~current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place, with the umask's mode, on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, new_file_mode())  # after the writer: some (safetensors) create their own 0600 file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as fh:
        return json.load(fh)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_tensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Save a dict of tensors as safetensors, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_tensors(path: str | os.PathLike, device: str = "cpu") -> dict:
    from safetensors.torch import load_file

    return load_file(str(path), device=device)


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("mibench", "torch", "torchvision", "numpy", "snakemake"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_manifest(job: dict, files: list[str], *, wall_time_s: float, device: str, extra: dict | None = None) -> dict:
    """Write ``manifest.json`` for a finished job; returns the manifest."""
    outdir = Path(job["outdir"])
    manifest = {
        "id": job["id"],
        "kind": job["kind"],
        "name": job["name"],
        "label": job["label"],
        "spec": job["spec"],
        "inputs": {role: inp["id"] for role, inp in job["inputs"].items()},
        "code_fingerprint": job["fingerprint"],
        "seed": job["seed"],
        "versions": package_versions(),
        "device": device,
        "host": platform.node(),
        "wall_time_s": round(wall_time_s, 3),
        "files": {name: sha256_file(outdir / name) for name in sorted(files)},
    }
    if extra:
        manifest["results"] = extra
    write_json(outdir / MANIFEST, manifest)
    return manifest


def read_manifest(artifact_dir: str | os.PathLike) -> dict:
    return read_json(Path(artifact_dir) / MANIFEST)


def verify(artifact_dir: str | os.PathLike) -> list[str]:
    """Files whose sha256 no longer matches the manifest (empty when intact)."""
    artifact_dir = Path(artifact_dir)
    manifest = read_manifest(artifact_dir)
    bad = []
    for name, digest in manifest["files"].items():
        path = artifact_dir / name
        if not path.exists() or sha256_file(path) != digest:
            bad.append(name)
    return bad
