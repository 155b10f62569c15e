"""Tiny artifacts for the white-box tests: sklearn-digits at 16x16, a small MCNN
target, built through the real stage entry points (``cli.run_job``). Priors and
attacks get the data artifact's public view, as in the plan."""

from __future__ import annotations

from pathlib import Path

from mibench_core import registry

SPLIT = {
    "mode": "class-disjoint",
    "private_classes": [0, 1, 2],
    "public_classes": [5, 6, 7, 8, 9],
    "val_fraction": 0.1,
    "test_fraction": 0.2,
    "public_fraction": 0.5,
}


def job(kind: str, name: str, spec: dict, outdir: Path, inputs: dict[str, Path], seed: int = 1) -> dict:
    return {
        "kind": kind,
        "id": f"{name}-test",
        "name": name,
        "label": f"test.{name}",
        "spec": spec,
        "seed": seed,
        "fingerprint": "test",
        "device": "cpu",
        "outdir": str(outdir),
        "options": {},
        "inputs": {role: {"id": f"{role}-test", "kind": role, "dir": str(d)} for role, d in inputs.items()},
    }


def build_data(root: Path) -> Path:
    from mibench_core.cli import run_job

    spec = {"name": "sklearn-digits", "resolution": 16, "channels": 1, "split": SPLIT, "max_public": 300}
    out = root / "data"
    run_job(job("data", "sklearn-digits", spec, out, {}))
    return out


def public_view(data_dir: Path) -> Path:
    """The public view of a data artifact (built once, next to it): what priors and attacks get."""
    from mibench_core.cli import run_job

    out = data_dir.parent / f"{data_dir.name}-public"
    if not (out / "manifest.json").exists():
        run_job(job("public", "public", {}, out, {"data": data_dir}))
    return out


def write_answers(adir: Path, outputs, top_k: int | None, access: str = "top-k") -> Path:
    """A stand-in for an answers artifact (made by hand): the outputs, one query per victim."""
    import torch

    from mibench_core import store

    store.save_tensors(adir / "answers.safetensors", {"outputs": outputs, "queries": torch.ones(len(outputs)).long()})
    store.write_json(
        adir / "manifest.json", {"inputs": {"victims": "victims-test"}, "results": {"access": access, "top_k": top_k}}
    )
    return adir


def build_target(root: Path, data_dir: Path, arch: str = "mcnn", arch_params: dict | None = None) -> Path:
    from mibench_core.cli import run_job

    spec = {
        "role": "target",
        "arch": arch,
        "arch_params": arch_params if arch_params is not None else {"width": 8},
        "defense": {"name": "none", "params": {}},
        "train": {
            "epochs": 3, "batch_size": 64, "optimizer": "adam", "lr": 3e-3, "momentum": 0.9,
            "weight_decay": 0.0, "augment": False, "select_best_on_val": True,
        },
    }  # fmt: skip
    out = root / f"target-{arch}"
    run_job(job("model", arch, spec, out, {"data": data_dir}))
    return out


def build_prior(root: Path, name: str, data_dir: Path, target_dir: Path | None, **params) -> Path:
    from mibench_core.cli import run_job

    entry = registry.get("prior", name)
    merged = {**entry.defaults, **params}
    inputs = {"data": public_view(data_dir)}
    if entry.needs_target:
        inputs["target"] = target_dir
    out = root / f"prior-{name}"
    run_job(job("prior", name, {"name": name, "params": merged}, out, inputs))
    return out


def run_attack_job(
    root: Path, name: str, data_dir: Path, target_dir: Path, prior_dir=None, aux=(), answers=None, **params
):
    from mibench_core.cli import run_job

    entry = registry.get("attack", name)
    merged = {**entry.defaults, **params}
    inputs = {"target": target_dir, "data": public_view(data_dir)}
    if prior_dir is not None:
        inputs["prior"] = prior_dir
    if answers is not None:
        inputs["answers"] = answers
    for j, a in enumerate(aux):
        inputs[f"aux{j}"] = a
    out = root / f"attack-{name}"
    manifest = run_job(job("attack", name, {"name": name, "params": merged}, out, inputs))
    return out, manifest
