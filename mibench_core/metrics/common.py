"""The metric stage and what every metric receives.

A metric function takes a :class:`MetricContext` and its parameters and
returns a :class:`MetricResult`: overall values, per-class values, and for
every value it could not compute a reason (the value is then missing, never
0). The evaluation model's penultimate features of the reconstructions and
of the private reference images are computed once per job and cached.

The private reference set is the target's training split of the attacked
classes (the data the attack tries to recover).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mibench_core import registry, store
from mibench_core.data.common import to_model_range
from mibench_core.runtime import pick_device, seed_everything


@dataclass
class MetricResult:
    overall: dict[str, float | None] = field(default_factory=dict)
    per_class: dict[int, dict[str, float | None]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # how values were computed (mode, weights used)

    def set_missing(self, name: str, reason: str) -> None:
        self.overall[name] = None
        self.missing[name] = reason


@dataclass
class MetricContext:
    recon: torch.Tensor  # [N, C, H, W] in [-1, 1]
    recon_labels: torch.Tensor  # [N]
    private_x: torch.Tensor  # uint8 [M, C, H, W]: target training images of attacked classes
    private_y: torch.Tensor  # [M]
    eval_model: torch.nn.Module
    device: torch.device
    gen: torch.Generator
    attack_extras: dict[str, torch.Tensor] = field(default_factory=dict)
    # Row of the data artifact's private_train_x for each row of private_x
    # (an attack's extras["private_index"] indexes private_train_x).
    private_source_index: torch.Tensor | None = None
    dataset: str = ""  # registry name of the dataset
    dataset_label: str = ""  # its label in the config
    weights: dict = field(default_factory=dict)  # the config's weights: mapping (name -> path)
    _cache: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[int]:
        return sorted(set(self.recon_labels.tolist()))

    @torch.no_grad()
    def _run_eval(self, x: torch.Tensor, uint8: bool, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        feats, logits = [], []
        for i in range(0, len(x), batch):
            xb = x[i : i + batch].to(self.device)
            xb = to_model_range(xb) if uint8 else xb.float()
            f = self.eval_model.features(xb)
            feats.append(f.cpu())
            logits.append(self.eval_model.head(f).cpu())
        return torch.cat(feats), torch.cat(logits)

    def recon_eval(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) of the evaluation model on the reconstructions."""
        if "recon" not in self._cache:
            self._cache["recon"] = self._run_eval(self.recon, uint8=False)
        return self._cache["recon"]

    def private_eval(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) of the evaluation model on the private reference images."""
        if "private" not in self._cache:
            self._cache["private"] = self._run_eval(self.private_x, uint8=True)
        return self._cache["private"]


def pretrained_or_missing(
    res: MetricResult, name: str, build: Callable[[], tuple[torch.nn.Module, Any]], device, note: str | None = None
) -> torch.nn.Module | None:
    """A metric's pretrained network, on ``device``: ``build()`` gives (model, weights.Resolved).

    When its weight file is absent, fails verification or is refused (``weights.WeightsError``), the
    metric ``name`` is recorded as missing with that reason and None is returned (never a 0); else
    which file was loaded, and how it was checked, goes into the notes (``note``, ``<name>_weights``)."""
    from mibench_core.weights import WeightsError

    try:
        model, found = build()
    except WeightsError as exc:
        res.set_missing(name, str(exc))
        return None
    res.notes[note or f"{name}_weights"] = f"{found.path} ({found.detail})"
    return model.to(device)


def mean_over_classes(per_class: dict[int, dict[str, float | None]], name: str) -> float | None:
    vals = [v[name] for v in per_class.values() if v.get(name) is not None and not math.isnan(v[name])]
    return sum(vals) / len(vals) if vals else None


def run(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.models.train import load_classifier

    device = pick_device(job["device"])
    gen = seed_everything(job["seed"])
    recon = store.load_tensors(Path(job["inputs"]["attack"]["dir"]) / "recon.safetensors")
    data = store.load_tensors(Path(job["inputs"]["data"]["dir"]) / "data.safetensors")
    labels = recon.pop("labels")
    images = recon.pop("images")
    data_manifest = store.read_manifest(job["inputs"]["data"]["dir"])
    keep = torch.isin(data["private_train_y"], labels.unique())
    ctx = MetricContext(
        recon=images,
        recon_labels=labels,
        private_x=data["private_train_x"][keep],
        private_y=data["private_train_y"][keep],
        eval_model=load_classifier(job["inputs"]["evaluation"]["dir"], device),
        device=device,
        gen=gen,
        attack_extras=recon,
        private_source_index=torch.nonzero(keep).squeeze(1),
        dataset=data_manifest["name"],
        dataset_label=data_manifest["label"],
        weights=job.get("options", {}).get("weights", {}),
    )
    combined = MetricResult()
    timings = {}
    for met in job["spec"]["metrics"]:
        t0 = time.time()
        # each metric its own stream, so adding or reordering metrics changes no other value
        ctx.gen = torch.Generator().manual_seed(
            job["seed"] ^ int(hashlib.sha256(met["label"].encode()).hexdigest()[:8], 16)
        )
        fn = registry.load(registry.get("metric", met["name"]))
        result: MetricResult = fn(ctx, **met["params"])
        timings[met["label"]] = round(time.time() - t0, 3)
        # two entries of one metric (different params) keep their values apart by label
        suffix = "" if met["label"] == met["name"] else f".{met['label']}"
        for name, value in result.overall.items():
            if value is not None and not math.isfinite(value):
                value = None
                result.missing.setdefault(name, f"non-finite value {result.overall[name]}")
            combined.overall[name + suffix] = value
        for name, reason in result.missing.items():
            combined.missing[name + suffix] = reason
        for name, note in result.notes.items():
            combined.notes[name + suffix] = note
        for c, vals in result.per_class.items():
            combined.per_class.setdefault(c, {}).update({k + suffix: v for k, v in vals.items()})
    payload = {
        "overall": combined.overall,
        "per_class": {str(c): v for c, v in sorted(combined.per_class.items())},
        "missing": combined.missing,
        "notes": combined.notes,
    }
    store.write_json(Path(job["outdir"]) / "metrics.json", payload)
    summary = {"overall": combined.overall, "missing": combined.missing, "notes": combined.notes, "seconds": timings}
    return ["metrics.json"], summary, str(device)
