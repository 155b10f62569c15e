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
SELF_DIGEST = "manifest_sha256"


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


def _manifest_digest(manifest: dict) -> str:
    """sha256 of a manifest's canonical JSON, without its own digest field."""
    body = {k: v for k, v in manifest.items() if k != SELF_DIGEST}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(job: dict, files: list[str], *, wall_time_s: float, device: str, extra: dict | None = None) -> dict:
    """Write ``manifest.json`` for a finished job; returns the manifest.

    ``label`` is the name the artifact was first built under (not part of its identity: a config that
    renames it reuses the artifact, and the tables take labels from the config). The manifest carries
    the sha256 of every file and its own (``manifest_sha256``), which :func:`problems` checks."""
    outdir = Path(job["outdir"])
    manifest = {
        "id": job["id"],
        "kind": job["kind"],
        "name": job["name"],
        "label": job.get("label", ""),
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
    # digest of what a reader will load (JSON round trip: numpy scalars become floats)
    manifest = json.loads(json.dumps(manifest, default=_json_default))
    manifest[SELF_DIGEST] = _manifest_digest(manifest)
    write_json(outdir / MANIFEST, manifest)
    return manifest


def read_manifest(artifact_dir: str | os.PathLike) -> dict:
    return read_json(Path(artifact_dir) / MANIFEST)


class CorruptArtifact(RuntimeError):
    """An artifact whose files no longer match its manifest; the message names it and how to rebuild it."""


def rebuild_hint(artifact_dir: str | os.PathLike) -> str:
    return (
        f"To rebuild it, delete the folder {artifact_dir} and run the workflow again "
        "(Snakemake then rebuilds it and everything computed from it)"
    )


def problems(artifact_dir: str | os.PathLike, files: bool = True) -> list[str]:
    """What is wrong with a built artifact, one line each (empty when it is intact).

    Checks that ``manifest.json`` parses and matches its own digest, and (``files``) that every
    file it lists exists with the recorded sha256. Manifests written before manifests carried
    their own digest are checked by their files only."""
    artifact_dir = Path(artifact_dir)
    try:
        manifest = read_manifest(artifact_dir)
    except FileNotFoundError:
        return [f"{MANIFEST} is missing (the artifact was never completed)"]
    except (OSError, ValueError) as exc:
        return [f"{MANIFEST} cannot be read ({exc})"]
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return [f"{MANIFEST} has no 'files' table"]
    out = []
    recorded = manifest.get(SELF_DIGEST)
    if recorded is not None and recorded != _manifest_digest(manifest):
        out.append(f"{MANIFEST} does not match its own sha256 (edited or corrupted)")
    if files:
        for name, digest in sorted(manifest["files"].items()):
            path = artifact_dir / name
            if not path.is_file():
                out.append(f"{name} is missing")
                continue
            actual = sha256_file(path)
            if actual != digest:
                out.append(f"{name}: sha256 {actual} differs from the manifest's {digest}")
    return out


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


def check(artifact_dir: str | os.PathLike, what: str = "artifact", files: bool = True) -> None:
    """Raise :class:`CorruptArtifact` naming the artifact, what is wrong and how to rebuild it."""
    found = problems(artifact_dir, files=files)
    if found:
        name = Path(artifact_dir).name  # an artifact's folder is named by its id
        raise CorruptArtifact(
            f"{what} {name} ({artifact_dir}) does not match its manifest, so it was not used: "
            + "; ".join(found)
            + f". {rebuild_hint(artifact_dir)}"
        )


def check_inputs(job: dict) -> None:
    """Verify every input artifact of a job against its manifest before the job loads any of it."""
    for role, inp in sorted(job["inputs"].items()):
        check(inp["dir"], f"input {role!r}: {inp['kind']}")
