"""The metric stage and what every metric receives.

A metric function takes a :class:`MetricContext` and its parameters and
returns a :class:`MetricResult`: overall values, per-class values, and for
every value it could not compute a reason (the value is then missing, never
0). The evaluation model's penultimate features of the reconstructions and
of the private reference images are computed once per job and cached.

The private reference set is the target's training split of the attacked
classes (the data the attack tries to recover). The metric stage is the
trusted evaluator: it reads the data artifact, which attacks never see, and,
for a per-sample attack, the victims artifact
(:mod:`mibench_core.data.views`). Such an attack names each
reconstruction's victim (extras ``victim``); this stage replaces that by
the victim's row of ``private_train_x`` (extras ``private_index``, which
per-sample metrics use) and scores the reconstruction against the victim's
own class (the attack could only give the class the target's answer names).

Intervals. A value that is a statistic of per-reconstruction values (Acc@1,
KNN distance, PSNR, ...) comes with those values (``per_sample``, aligned
with the reconstructions, and ``per_sample_stat``: how the value is made of
them, see :func:`mibench_core.stats.resampled_statistic`); the job checks
that they give the value, recomputes the value from them in float64 and
gives it an interval conditional on the run's trained models: a proportion
(0/1 values) the Wilson interval at n deflated by the class design effect
(:func:`mibench_core.stats.proportion_interval`, with its effective n in
``n_eff``), any other the percentile bootstrap interval over ``ctx.resamples``
(class-stratified resamples of the reconstructions, seeded from the job's
seed on a stream of their own, so no value changes). It saves them in
``per_sample.safetensors`` for the report's per-run values. A set-level value
(a Frechet distance) computes its own interval over the same resamples
(``ci``), or says why it has none (``ci_notes``). A run with fewer than two
reconstructions in some class gets no interval at all, with that reason: its
classes show no within-class variation to resample.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mibench_core import registry, stats, store
from mibench_core.data.common import to_model_range
from mibench_core.runtime import pick_device, seed_everything
from mibench_core.stats import PER_SAMPLE, PER_SAMPLE_LABELS


@dataclass
class MetricResult:
    overall: dict[str, float | None] = field(default_factory=dict)
    per_class: dict[int, dict[str, float | None]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # how values were computed (mode, weights used)
    # per-reconstruction values behind an overall value ([N], aligned with the reconstructions; NaN: none)
    per_sample: dict[str, torch.Tensor] = field(default_factory=dict)
    per_sample_stat: dict[str, str] = field(default_factory=dict)  # value -> "mean" (default) | "class_mean"
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)  # intervals of set-level values
    ci_notes: dict[str, str] = field(default_factory=dict)  # why a value has no interval
    n_eff: dict[str, float] = field(default_factory=dict)  # a proportion's effective n (design effect)

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
    # [B, N] class-stratified bootstrap resamples of the reconstructions (None: no intervals)
    resamples: np.ndarray | None = None
    confidence: float = 0.95
    interval_seconds: float = 0.0  # time spent on intervals (the job reports it)
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


def join_victims(extras: dict[str, torch.Tensor], attack_dir: str, victims_input: dict) -> torch.Tensor:
    """A per-sample attack's reconstructions, tied to their victims: sets ``extras["private_index"]``
    from ``extras["victim"]`` (which it removes) and returns the victims' own classes."""
    from mibench_core.data.views import load_victims

    made_from = store.read_manifest(attack_dir)["results"].get("victims_id")
    if made_from != victims_input["id"]:
        raise ValueError(f"the attack inverted the answers on victims {made_from!r}, not on {victims_input['id']!r}")
    victims = load_victims(victims_input["dir"])
    row = extras.pop("victim").long()
    extras["private_index"] = victims["private_index"][row]
    return victims["labels"][row]


BOOTSTRAP_STREAM = int(hashlib.sha256(b"bootstrap").hexdigest()[:8], 16)
SET_LEVEL_NOTE = "a set-level value without a resampling scheme: no interval"


def interval_settings(job: dict) -> tuple[int, float]:
    """(resamples, confidence) of the job's within-run intervals (config key ``statistics``)."""
    opts = job.get("options", {}).get("statistics", {})
    return int(opts.get("bootstrap", 1000)), float(opts.get("confidence", 0.95))


def _intervals(name: str, value: float | None, result: MetricResult, ctx: MetricContext, labels: np.ndarray,
               label: str) -> tuple[tuple[float, float] | None, str | None, float | None, float | None]:  # fmt: skip
    """(interval, why none, the value in float64, effective n of a proportion) of one overall value.

    Every interval is conditional on the run's trained models (target, prior, attack state):
    proportions (per-reconstruction 0/1 values, mean) get the Wilson interval at n deflated by the
    class design effect (:func:`mibench_core.stats.proportion_interval`), other per-reconstruction
    statistics the percentile bootstrap over class-stratified resamples, set-level values their
    own (``ci``). A run with fewer than two reconstructions in a class gets no interval, and why.
    """
    if value is None:
        return None, None, None, None  # missing: its reason is in `missing`
    has_samples = name in result.per_sample
    if not has_samples and name not in result.ci:
        return None, result.ci_notes.get(name, SET_LEVEL_NOTE), value, None
    if has_samples:
        values = result.per_sample[name].double().cpu().numpy()
        stat = result.per_sample_stat.get(name, "mean")
        if len(values) != len(labels):
            raise ValueError(f"metric {label!r}: {len(values)} per-reconstruction values of {name!r} for {len(labels)}")
        again = float(stats.resampled_statistic(values, labels, stat=stat)[0])
        if not math.isclose(again, value, rel_tol=1e-6, abs_tol=1e-6):
            raise ValueError(
                f"metric {label!r}: per-reconstruction values of {name!r} give {again}, not its value {value}"
            )
        value = again  # float64: an estimate computed in float32 may sit outside its float64 interval
    few = stats.too_few_per_class(labels)
    if few is not None:
        return None, few, value, None
    if name in result.ci:
        return tuple(result.ci[name]), None, value, None
    if stat == "mean" and stats.is_binary(values):
        lo, hi, n_eff = stats.proportion_interval(values, labels, ctx.confidence)
        return (lo, hi), None, value, n_eff
    if ctx.resamples is None:
        return None, "statistics.bootstrap is 0: no bootstrap intervals", value, None
    ci = stats.bootstrap_interval(values, labels, ctx.resamples, ctx.confidence, stat)
    return ci, None if ci is not None else "bootstrap replicates not finite", value, None


INTERVAL_METHOD = (
    "{conf:.0%} within-run intervals, conditional on this run's models: proportions Wilson at n deflated "
    "by the class design effect; other per-reconstruction values percentile bootstrap over reconstructions "
    "resampled within each class ({b} resamples); Frechet distances basic bootstrap interval on the log scale"
)


def run(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.models.train import load_classifier

    device = pick_device(job["device"])
    gen = seed_everything(job["seed"])
    recon = store.load_tensors(Path(job["inputs"]["attack"]["dir"]) / "recon.safetensors")
    data = store.load_tensors(Path(job["inputs"]["data"]["dir"]) / "data.safetensors")
    labels = recon.pop("labels")
    images = recon.pop("images")
    if "victims" in job["inputs"]:
        labels = join_victims(recon, job["inputs"]["attack"]["dir"], job["inputs"]["victims"])
    data_manifest = store.read_manifest(job["inputs"]["data"]["dir"])
    keep = torch.isin(data["private_train_y"], labels.unique())
    n_resamples, confidence = interval_settings(job)
    labels_np = labels.cpu().numpy()
    t_resample = time.time()
    # the resamples' own stream: the metrics' streams (below) and values do not depend on them
    rng = np.random.default_rng([job["seed"], BOOTSTRAP_STREAM])
    resamples = stats.stratified_resamples(labels_np, n_resamples, rng) if n_resamples > 0 else None
    t_resample = time.time() - t_resample
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
        resamples=resamples,
        confidence=confidence,
        interval_seconds=t_resample,
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
        t1 = time.time()
        for name, value in result.overall.items():
            if value is not None and not math.isfinite(value):
                value = None
                result.missing.setdefault(name, f"non-finite value {result.overall[name]}")
            combined.overall[name + suffix] = value
            ci, note, value, n_eff = _intervals(name, value, result, ctx, labels_np, met["label"])
            combined.overall[name + suffix] = value
            if n_eff is not None:
                combined.n_eff[name + suffix] = n_eff
            if ci is not None:
                combined.ci[name + suffix] = ci
            if note is not None:
                combined.ci_notes[name + suffix] = note
            if value is not None and name in result.per_sample:
                combined.per_sample[name + suffix] = result.per_sample[name].double().cpu()
                combined.per_sample_stat[name + suffix] = result.per_sample_stat.get(name, "mean")
        ctx.interval_seconds += time.time() - t1
        for name, reason in result.missing.items():
            combined.missing[name + suffix] = reason
        for name, note in result.notes.items():
            combined.notes[name + suffix] = note
        for c, vals in result.per_class.items():
            combined.per_class.setdefault(c, {}).update({k + suffix: v for k, v in vals.items()})
    method = INTERVAL_METHOD.format(conf=confidence, b=n_resamples)
    payload = {
        "overall": combined.overall,
        "per_class": {str(c): v for c, v in sorted(combined.per_class.items())},
        "missing": combined.missing,
        "notes": combined.notes,
        "ci": {k: list(v) for k, v in combined.ci.items()},
        "ci_notes": combined.ci_notes,
        "n_eff": combined.n_eff,
        "intervals": {"method": method, "resamples": n_resamples, "confidence": confidence},
        "n_recon": len(labels),
    }
    store.write_json(Path(job["outdir"]) / "metrics.json", payload)
    store.save_tensors(
        Path(job["outdir"]) / PER_SAMPLE,
        {PER_SAMPLE_LABELS: labels.long(), **combined.per_sample},
        metadata={"stat": json.dumps(combined.per_sample_stat, sort_keys=True)},
    )
    summary = {
        "overall": combined.overall,
        "ci": payload["ci"],
        "missing": combined.missing,
        "notes": combined.notes,
        "seconds": timings,
        "interval_seconds": round(ctx.interval_seconds, 3),  # resamples, per-sample and set-level intervals
    }
    return ["metrics.json", PER_SAMPLE], summary, str(device)
