"""Loading external weight files safely: sha256 verification, then
safetensors or ``torch.load(..., weights_only=True)`` (never a full pickle)."""

from __future__ import annotations

from pathlib import Path

from mibench_core.store import sha256_file


class WeightsError(RuntimeError):
    pass


def verify_sha256(path: str | Path, expected: str | None) -> str:
    """Return the file's sha256; raise if ``expected`` is given and differs."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    actual = sha256_file(path)
    if expected and actual.lower() != expected.lower():
        raise WeightsError(f"{path}: sha256 {actual} does not match the expected {expected}")
    return actual


def load_state_dict(path: str | Path, sha256: str | None = None) -> dict:
    verify_sha256(path, sha256)
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state
