"""Classifier training (targets, defended targets, evaluation models) and loading.

A defense is a training-time variant of the target: an object with
``prepare(model)`` (may wrap or modify the model) and
``loss(model, x, y, progress)`` returning ``(loss, logits)``; ``progress`` is
the fraction of training done, for defenses with warm-up ramps. The model
saved is the prepared one, so a defended target is an ordinary target artifact
whose spec carries the defense.

Three optional hooks serve defenses that need more than a loss (all default to
"do nothing", so plain training is unchanged):

* ``pretrain(model, tensors, train_cfg, device, gen)`` runs after ``prepare``
  and before the optimizer is built; it may use the public split and freeze
  parameters (transfer learning). Only parameters with ``requires_grad`` are
  optimised.
* ``fit(model, tensors, train_cfg, device, gen)`` may own the whole training
  loop (DP-SGD needs its own optimizer and Poisson-sampled batches); it returns
  ``(model, results)`` or ``None`` for the standard loop.
* ``start_epoch(epoch, epochs)`` is called before each epoch of the standard
  loop (0-based ``epoch``), for defenses with per-epoch schedules, and
  ``selectable(epoch, epochs)`` says whether that epoch's checkpoint may be
  kept by best-validation selection (a defense that starts late excludes
  the epochs trained without it). The epoch kept is recorded as
  ``selected_epoch`` (1-based) in the manifest's results.
* ``results(model, tensors, device)`` returns JSON-able defense facts
  (epsilon, robust accuracy, ...) for the model manifest's ``results``,
  under ``defense``.

``load_classifier`` calls only ``prepare``: it rebuilds the architecture,
never trains.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core import registry, store
from mibench_core.data.common import to_model_range
from mibench_core.models.classifiers import Classifier, build
from mibench_core.runtime import pick_device, progress, seed_everything

METHODS = [
    {
        "name": "none",
        "kind": "defense",
        "call": "no_defense",
        "description": "undefended target: plain cross-entropy training",
    }
]

log = logging.getLogger("mibench.train")


class Defense:
    """Plain cross-entropy training; defenses override ``prepare`` and ``loss``."""

    def __init__(self, **params):
        self.params = params
        self.selected_epoch: int | None = None  # set by the standard loop: the (1-based) epoch kept

    def prepare(self, model: Classifier) -> Classifier:
        return model

    def loss(
        self, model: Classifier, x: torch.Tensor, y: torch.Tensor, progress: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return F.cross_entropy(logits, y), logits

    def pretrain(
        self, model: Classifier, tensors: dict, train_cfg: dict, device: torch.device, gen: torch.Generator
    ) -> Classifier:
        return model

    def fit(
        self, model: Classifier, tensors: dict, train_cfg: dict, device: torch.device, gen: torch.Generator
    ) -> tuple[Classifier, dict] | None:
        return None

    def start_epoch(self, epoch: int, epochs: int) -> None:
        return None

    def selectable(self, epoch: int, epochs: int) -> bool:
        return True

    def results(self, model: Classifier, tensors: dict, device: torch.device) -> dict:
        return {}


def no_defense(**params) -> Defense:
    return Defense(**params)


def load_data(data_dir: str | Path, device: torch.device | str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    tensors = store.load_tensors(Path(data_dir) / "data.safetensors")
    info = store.read_manifest(data_dir)["results"]
    return tensors, info


@torch.no_grad()
def accuracy(model: nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int = 512) -> float:
    if len(x_uint8) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x_uint8), batch):
        xb = to_model_range(x_uint8[i : i + batch].to(device))
        correct += (model(xb).argmax(1).cpu() == y[i : i + batch]).sum().item()
    model.train(was_training)
    return correct / len(x_uint8)


def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random shifts by up to ``pad`` pixels (reflect padding); no flips, which
    would change the meaning of digits and some clothing classes."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def train_classifier(
    model: Classifier, defense: Defense, tensors: dict, train_cfg: dict, device: torch.device, gen: torch.Generator
) -> tuple[Classifier, dict]:
    model = defense.prepare(model).to(device)
    model = defense.pretrain(model, tensors, train_cfg, device, gen)
    owned = defense.fit(model, tensors, train_cfg, device, gen)
    if owned is not None:
        return owned
    params = [p for p in model.parameters() if p.requires_grad]
    if train_cfg["optimizer"] == "adam":
        opt = torch.optim.Adam(params, lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"])
    else:
        opt = torch.optim.SGD(
            params, lr=train_cfg["lr"], momentum=train_cfg["momentum"], weight_decay=train_cfg["weight_decay"]
        )
    x_train, y_train = tensors["private_train_x"], tensors["private_train_y"]
    n, bs, epochs = len(x_train), train_cfg["batch_size"], train_cfg["epochs"]
    steps_per_epoch = (n + bs - 1) // bs
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    history, best_state, best_val, selected = [], None, -1.0, epochs
    bar = progress(total=epochs * steps_per_epoch, desc="train", unit="step")
    step = 0
    for epoch in range(epochs):
        defense.start_epoch(epoch, epochs)
        model.train()
        perm = torch.randperm(n, generator=gen)
        total_loss, total_correct = 0.0, 0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            xb = to_model_range(x_train[idx])
            if train_cfg["augment"]:
                xb = augment_batch(xb, gen)
            xb, yb = xb.to(device), y_train[idx].to(device)
            loss, logits = defense.loss(model, xb, yb, step / (epochs * steps_per_epoch))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total_loss += loss.item() * len(idx)
            total_correct += (logits.argmax(1) == yb).sum().item()
            bar.update(1)
        val_acc = accuracy(model, tensors["private_val_x"], tensors["private_val_y"], device)
        history.append({"epoch": epoch + 1, "loss": total_loss / n, "train_acc": total_correct / n, "val_acc": val_acc})
        log.info(
            "epoch %d: loss %.4f train acc %.4f val acc %.4f", epoch + 1, total_loss / n, total_correct / n, val_acc
        )
        selectable = defense.selectable(epoch, epochs)
        if train_cfg["select_best_on_val"] and selectable and val_acc == val_acc and val_acc > best_val:
            best_val, best_state, selected = val_acc, copy.deepcopy(model.state_dict()), epoch + 1
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    defense.selected_epoch = selected
    model.eval()
    return model, {"history": history, "selected_epoch": selected}


def run(job: dict) -> tuple[list[str], dict, str]:
    device = pick_device(job["device"])
    gen = seed_everything(job["seed"])
    spec = job["spec"]
    tensors, info = load_data(job["inputs"]["data"]["dir"])
    model = build(spec["arch"], spec["arch_params"], info["num_classes"], info["channels"], info["resolution"])
    pretrained = getattr(model, "pretrained", None)  # the external file it starts from, and how it was checked
    defense = registry.load(registry.get("defense", spec["defense"]["name"]))(**spec["defense"]["params"])
    t0 = time.time()
    model, results = train_classifier(model, defense, tensors, spec["train"], device, gen)
    results["train_time_s"] = time.time() - t0
    defense_results = defense.results(model, tensors, device)
    if defense_results:
        results["defense"] = defense_results
    results["val_acc"] = accuracy(model, tensors["private_val_x"], tensors["private_val_y"], device)
    results["test_acc"] = accuracy(model, tensors["private_test_x"], tensors["private_test_y"], device)
    results["train_acc"] = accuracy(model, tensors["private_train_x"], tensors["private_train_y"], device)
    results.update(
        num_classes=info["num_classes"], channels=info["channels"], resolution=info["resolution"],
        feat_dim=model.feat_dim, num_params=sum(p.numel() for p in model.parameters()),
    )  # fmt: skip
    if pretrained:
        results["pretrained"] = pretrained
    log.info("test accuracy %.4f (val %.4f)", results["test_acc"], results["val_acc"])
    store.save_tensors(Path(job["outdir"]) / "model.safetensors", model.state_dict())
    return ["model.safetensors"], results, str(device)


def load_classifier(model_dir: str | Path, device: torch.device | str = "cpu") -> Classifier:
    """Rebuild a trained classifier from its artifact (safetensors state dict), frozen, in eval mode."""
    manifest = store.read_manifest(model_dir)
    spec, res = manifest["spec"], manifest["results"]
    model = build(spec["arch"], spec["arch_params"], res["num_classes"], res["channels"], res["resolution"])
    defense = registry.load(registry.get("defense", spec["defense"]["name"]))(**spec["defense"]["params"])
    model = defense.prepare(model)
    model.load_state_dict(store.load_tensors(Path(model_dir) / "model.safetensors"))
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
