"""The shadow stage: one attacker-side shadow / reference model per job.

A shadow model imitates the target's training: the same architecture and
architecture parameters, the same training settings and (``shadows.defense:
same``, the default) the same training-time defense, through the same code
(:func:`mibench_core.models.train.train_classifier`). What differs is its
data (:mod:`mibench_core.membership.population`):

* ``offline`` models train on a random half of the attacker's **population**
  (disjoint from every target member and every candidate), so they never see
  a target member and are OUT models for every candidate;
* ``online`` models train on a random half of the **candidate pool** (LiRA /
  RMIA online need models trained *with* the candidate, IN models): Carlini et
  al.'s protocol, where target and shadow models are drawn from one universe
  (the candidates: the target's members among them and as many non-members,
  so a half is the size of the target's training set when every member is a
  candidate). The halves are drawn without the membership bits: each
  candidate is in half of the online models whether it is a member or not
  (the attacker holds the candidate, not its membership).

The masks of a set of ``count`` models are drawn together
(:func:`mibench_core.membership.population.shadow_masks`: every point is in
exactly ``count // 2`` models) from the set's seed; this job keeps row
``index``. With ``train_size`` (``shadows.train_size``) an offline model
trains on that many random points of its half instead (the target's
training-set size when the population is larger than twice it); the rest of
its half counts as OUT. Online models always train on a full half (every
candidate keeps IN and OUT models). Model selection on validation data mirrors the target's: when the
target's training selects on validation accuracy, the shadow selects on
``val_fraction`` of its own OUT population points (never a candidate).

The job reads the pool from a ``mia_input`` artifact
(:mod:`mibench_core.membership.inputs`: candidates, population and the public
split, no membership), never the data artifact.

Outputs: ``model.safetensors`` (loadable with
:func:`mibench_core.models.train.load_classifier`), ``outputs.safetensors``
with the model's logits on the population and on the candidates under the
first ``augmentations`` augmentations (``pop_logits`` ``[A, P, K]``,
``cand_logits`` ``[A, N, K]``) and the masks ``pop_in`` / ``cand_in``. The
manifest records the training set size, whether it saw candidates, and the
accuracies on its own members and non-members.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from mibench_core import registry, store
from mibench_core.membership.population import shadow_masks
from mibench_core.runtime import pick_device, seed_everything

log = logging.getLogger("mibench.membership.shadows")


@torch.no_grad()
def logits_of(model, x_uint8: torch.Tensor, n_aug: int, device, batch: int = 1024) -> torch.Tensor:
    """``[A, N, K]`` float32 logits under the first ``n_aug`` augmentations."""
    from mibench_core.data.common import to_model_range
    from mibench_core.membership.signals import augment

    model.eval()
    out = []
    for a in range(n_aug):
        parts = [
            model(augment(to_model_range(x_uint8[i : i + batch]).to(device), a)).float().cpu()
            for i in range(0, len(x_uint8), batch)
        ]
        out.append(torch.cat(parts))
    return torch.stack(out)


def run(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.membership.inputs import load as load_inputs
    from mibench_core.models.classifiers import build
    from mibench_core.models.train import accuracy, train_classifier

    device = pick_device(job["device"])
    gen = seed_everything(job["seed"])
    spec = job["spec"]
    pool, _, info = load_inputs(job["inputs"]["candidates"]["dir"])
    pool = SimpleNamespace(**pool)
    online = spec["mode"] == "online"
    n_pop, n_cand = len(pool.pop_y), len(pool.cand_y)
    keep = shadow_masks(int(spec["count"]), n_cand if online else n_pop, int(spec["set_seed"]))[int(spec["index"])]
    if spec.get("train_size") and not online and keep.sum() > spec["train_size"]:  # the target's size, not a half
        sub = np.random.default_rng([int(spec["set_seed"]), int(spec["index"])])
        chosen = sub.choice(np.flatnonzero(keep), int(spec["train_size"]), replace=False)
        keep = np.zeros_like(keep)
        keep[chosen] = True
    pop_in = np.zeros(n_pop, bool) if online else keep
    cand_in = keep if online else np.zeros(n_cand, bool)

    rng = np.random.default_rng(job["seed"] % (2**32))
    x_train = torch.cat([pool.pop_x[torch.from_numpy(np.flatnonzero(pop_in))],
                         pool.cand_x[torch.from_numpy(np.flatnonzero(cand_in))]])  # fmt: skip
    y_train = torch.cat([pool.pop_y[torch.from_numpy(np.flatnonzero(pop_in))],
                         pool.cand_y[torch.from_numpy(np.flatnonzero(cand_in))]])  # fmt: skip
    pop_out = np.flatnonzero(~pop_in)
    n_val = min(len(pop_out) // 2, int(round(float(spec["val_fraction"]) * len(y_train))))
    val = torch.from_numpy(np.sort(rng.choice(pop_out, n_val, replace=False)))
    own = {
        "private_train_x": x_train, "private_train_y": y_train,
        "private_val_x": pool.pop_x[val], "private_val_y": pool.pop_y[val],
        "private_test_x": pool.pop_x[val], "private_test_y": pool.pop_y[val],
        "public_x": getattr(pool, "public_x", pool.pop_x[:0]),
    }  # fmt: skip
    model = build(spec["arch"], spec["arch_params"], info["num_classes"], info["channels"], info["resolution"])
    defense = registry.load(registry.get("defense", spec["defense"]["name"]))(**spec["defense"]["params"])
    t0 = time.time()
    model, history = train_classifier(model, defense, own, spec["train"], device, gen)
    train_time = time.time() - t0
    store.save_tensors(Path(job["outdir"]) / "model.safetensors", model.state_dict())
    n_aug = int(spec["augmentations"])
    outputs = {
        "pop_logits": logits_of(model, pool.pop_x, n_aug, device),
        "cand_logits": logits_of(model, pool.cand_x, n_aug, device),
        "pop_in": torch.from_numpy(pop_in.astype(np.uint8)),
        "cand_in": torch.from_numpy(cand_in.astype(np.uint8)),
    }
    store.save_tensors(Path(job["outdir"]) / "outputs.safetensors", outputs)
    out_idx = torch.from_numpy(pop_out)
    results = {
        "mode": spec["mode"],
        "index": int(spec["index"]),
        "train_size": int(len(y_train)),
        "population_in": int(pop_in.sum()),
        "candidates_in": int(cand_in.sum()),
        "trained_on_candidates": bool(cand_in.any()),
        "train_acc": accuracy(model, x_train, y_train, device),
        "out_acc": accuracy(model, pool.pop_x[out_idx], pool.pop_y[out_idx], device),
        "train_time_s": train_time,
        "history": history.get("history", []),
        "num_classes": info["num_classes"],
        "channels": info["channels"],
        "resolution": info["resolution"],
    }
    if "defense" in history:
        results["defense"] = history["defense"]
    log.info("shadow %s/%d: train acc %.4f, out acc %.4f", spec["mode"], spec["index"], results["train_acc"],
             results["out_acc"])  # fmt: skip
    return ["model.safetensors", "outputs.safetensors"], results, str(device)
