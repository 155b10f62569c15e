"""The split stage: one job per (target, technique and knowledge setting, split point).

The job loads the trained target (an ordinary model artifact of a split
architecture, :mod:`mibench_core.split.nets`), splits it after the node's
split point into ``f1`` (edge) and ``f2`` (cloud), draws the victims and
computes what the untrusted party observes, ``f1(x0)``. It then gives the
technique only what its threat model (registry ``access``) holds
(:mod:`mibench_core.split.contract`): ``f1`` itself (white-box), a
query-counting oracle of ``f1`` (feature-queries), or ``f2`` and fresh
networks of the edge's structure (query-free). The victims' images never
reach the technique: its own data comes through
:class:`~mibench_core.split.contract.AttackerData`, which cannot read the
private test split, and the stage drops its copy of the data before the
technique runs.

Victims: ``victims.count`` images of the private *test* split (inference
inputs the model never trained on, as in the paper), drawn with a generator
seeded by ``victims.seed`` alone, so every technique and split point of a
dataset inverts the same inputs.

The artifact ``recon.safetensors``: ``images`` (float32 ``[N, C, H, W]`` in
[-1, 1]), ``victim_index`` (rows of the data artifact's ``private_test_x``)
and ``labels`` (the victims' classes, for the evaluation model's Acc@1),
plus the technique's per-victim extras.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from mibench_core import registry, store
from mibench_core.data.common import to_model_range
from mibench_core.runtime import pick_device, seed_everything
from mibench_core.split.contract import AttackerData, SplitContext, SplitResult

log = logging.getLogger("mibench.split")


def victim_indices(n_test: int, count: int, seed: int) -> torch.Tensor:
    """Rows of the private test split to invert: a seeded random ``count`` of them (all when fewer)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n_test, generator=gen)[:count].to(torch.int64)


@torch.no_grad()
def observe(f1: torch.nn.Module, x: torch.Tensor, device: torch.device, batch: int = 256) -> torch.Tensor:
    """``f1(x)`` in batches: what the untrusted party receives (CPU tensor)."""
    return torch.cat([f1(x[i : i + batch].to(device)).cpu() for i in range(0, len(x), batch)])


def run(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.models.classifiers import build
    from mibench_core.models.train import load_classifier
    from mibench_core.split.oracle import FeatureOracle

    device = pick_device(job["device"])
    gen = seed_everything(job["seed"])
    spec = job["spec"]
    params, point = spec["params"], spec["split_point"]
    entry = registry.get("split_attack", job["name"])
    target_dir, data_dir = job["inputs"]["target"]["dir"], job["inputs"]["data"]["dir"]
    target_manifest = store.read_manifest(target_dir)
    info, tspec = target_manifest["results"], target_manifest["spec"]
    model = load_classifier(target_dir, device)
    if not hasattr(model, "split"):
        raise RuntimeError(
            f"target {target_manifest['label']!r} ({tspec['arch']}, defense {tspec['defense']['name']!r}) is not "
            "a split model: split inference needs an architecture of mibench_core/split/nets.py, unwrapped"
        )
    f1, f2 = model.split(point)
    data = store.load_tensors(Path(data_dir) / "data.safetensors")
    index = victim_indices(len(data["private_test_x"]), spec["victims"]["count"], spec["victims"]["seed"])
    features = observe(f1, to_model_range(data["private_test_x"][index]), device)
    del data
    image_shape = (info["channels"], info["resolution"], info["resolution"])
    ctx = SplitContext(
        features, image_shape, info["num_classes"], point, device, gen, AttackerData(data_dir), arch=tspec["arch"]
    )
    oracle = None
    if entry.access == "white-box":
        ctx.f1 = f1
    elif entry.access == "feature-queries":
        oracle = ctx.oracle = FeatureOracle(f1, budget=params.get("query_budget"))
    else:  # query-free: the cloud part, and the edge's architecture without its weights

        def shadow_f1(structure: str) -> torch.nn.Module:
            fresh = build(tspec["arch"], tspec["arch_params"], info["num_classes"], *image_shape[:2])
            if structure == "same":
                return fresh.split(point)[0].to(device)
            if structure == "alternative":
                return fresh.alternative_f1(point).to(device)
            raise ValueError(f"unknown shadow structure {structure!r}; valid: same, alternative")

        ctx.f2, ctx.shadow_f1 = f2, shadow_f1
    result: SplitResult = registry.load(entry)(ctx, **params)
    if result.images.shape != (len(index), *image_shape):
        raise RuntimeError(f"{entry.name!r} returned images of shape {tuple(result.images.shape)}")
    bad = (~torch.isfinite(result.images.reshape(len(index), -1))).any(1).sum().item()
    if bad:
        raise RuntimeError(f"{entry.name!r}: {bad} of {len(index)} reconstructions are not finite")
    labels = store.load_tensors(Path(data_dir) / "data.safetensors")["private_test_y"][index]
    tensors = {"images": result.images.float().cpu(), "victim_index": index, "labels": labels, **result.extras}
    store.save_tensors(Path(job["outdir"]) / "recon.safetensors", tensors)
    out = {
        "num_reconstructions": len(index),
        "split_point": point,
        "feature_shape": list(features.shape[1:]),
        "queries": oracle.queries if oracle is not None else None,
        **result.info,
    }
    return ["recon.safetensors"], out, str(device)
