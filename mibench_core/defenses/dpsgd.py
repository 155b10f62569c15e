"""DP-SGD (Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang 2016,
"Deep Learning with Differential Privacy", CCS) through Opacus.

Per-sample gradients are clipped to L2 norm ``max_grad_norm`` and Gaussian
noise of standard deviation ``noise_multiplier * max_grad_norm`` is added to
their sum; batches are Poisson-sampled with rate ``batch_size / N``. The
privacy accountant (``rdp`` by default; ``prv`` and ``gdp`` are Opacus'
others) gives epsilon at ``delta``. The model manifest records, under
``results.defense``, ``epsilon``, ``delta``, ``accountant``,
``sample_rate``, ``steps`` (the steps the accountant recorded) and
``guarantee``, one line with all of them that every table showing a DP
target carries. Every Poisson batch is a step, the empty ones included:
an empty batch goes through the private optimizer, which releases pure
noise, and the accountant counts it (skipping it would release nothing and
break the subsampled Gaussian mechanism).

Control: ``private: false`` trains the same GroupNorm architecture with the
same optimizer, Poisson-sampled batches and schedule (constant learning rate,
no augmentation), without clipping or noise, so the accuracy cost of DP can
be told from the cost of the architecture swap. Its manifest says it has no
guarantee; ``noise_multiplier``, ``max_grad_norm`` and ``delta`` are unused
there.

BatchNorm mixes samples and is incompatible with per-sample clipping:
``prepare`` applies ``opacus.validators.ModuleValidator.fix``, which replaces
every BatchNorm with a GroupNorm (``min(32, C)`` groups); ``load_classifier``
rebuilds the same architecture through ``prepare``. The defense owns the
training loop (``fit``): Opacus wraps the model, the optimizer and the data
loader. The target's optimizer settings are used; data augmentation is not
applied (each example must be one record).

Strength: ``noise_multiplier`` (more noise, smaller epsilon). Defaults:
``noise_multiplier`` 1.0, ``max_grad_norm`` 1.0, ``delta`` 1e-5 (Opacus'
tutorial values; Abadi et al. used clipping 4 and sigma 2-8 on MNIST).
Deviations: no cosine learning-rate schedule (the other targets have one;
the control shares ours); model selection on the validation split (when the
config asks for it) is post-processing with data outside the training set,
which the guarantee for training records does not cover the validation
records for; set ``select_best_on_val: false`` where those matter.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from mibench_core.data.common import to_model_range
from mibench_core.models.train import Defense, accuracy
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "dp-sgd",
        "kind": "defense",
        "call": "dp_sgd",
        "description": "DP-SGD (Abadi et al. 2016) via Opacus: per-sample clipping + Gaussian noise; epsilon reported",
        "defaults": {
            "noise_multiplier": 1.0,
            "max_grad_norm": 1.0,
            "delta": 1e-05,
            "accountant": "rdp",
            "private": True,
        },
        "bounds": {"noise_multiplier": "(0, inf)", "max_grad_norm": "(0, inf)", "delta": "(0, 1)"},
        "strength": ["noise_multiplier", "private"],
    }
]

log = logging.getLogger("mibench.defense.dpsgd")


def guarantee_line(epsilon: float, delta: float, accountant: str, sample_rate: float, steps: int) -> str:
    """The guarantee as one line: (epsilon, delta), the accountant, the sampling rate and the steps."""
    return f"(eps={epsilon:.3g}, delta={delta:.3g}), {accountant} accountant, q={sample_rate:.4g}, {steps} steps"


class DPSGD(Defense):
    def __init__(self, **params):
        super().__init__(**params)
        self._results: dict = {}

    def prepare(self, model):
        from opacus.validators import ModuleValidator

        return ModuleValidator.fix(model)

    def fit(self, model, tensors, train_cfg, device, gen):
        import warnings

        from opacus import PrivacyEngine

        p = self.params
        x, y = to_model_range(tensors["private_train_x"]), tensors["private_train_y"]
        loader = DataLoader(TensorDataset(x, y), batch_size=train_cfg["batch_size"], shuffle=True, generator=gen)
        if train_cfg["optimizer"] == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"])
        else:
            opt = torch.optim.SGD(
                model.parameters(), lr=train_cfg["lr"], momentum=train_cfg["momentum"],
                weight_decay=train_cfg["weight_decay"],
            )  # fmt: skip
        private = p["private"]
        engine = PrivacyEngine(accountant=p["accountant"]) if private else None
        model.train()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus warns about secure RNG; we document it
            if private:
                private_model, opt, loader = engine.make_private(
                    module=model, optimizer=opt, data_loader=loader,
                    noise_multiplier=p["noise_multiplier"], max_grad_norm=p["max_grad_norm"], poisson_sampling=True,
                )  # fmt: skip
            else:
                from opacus.data_loader import DPDataLoader

                private_model, loader = model, DPDataLoader.from_data_loader(loader, generator=gen)
        history, best_state, best_val, selected = [], None, -1.0, train_cfg["epochs"]
        bar = progress(total=train_cfg["epochs"] * len(loader), desc="dp-sgd", unit="step")
        for epoch in range(train_cfg["epochs"]):
            private_model.train()
            total_loss, total_correct, seen = 0.0, 0, 0
            for xb, yb in loader:
                bar.update(1)
                # an empty Poisson batch is still a step: the private optimizer adds noise to a zero sum
                xb, yb = xb.to(device), yb.to(device)
                logits = private_model(xb)
                loss = F.cross_entropy(logits, yb, reduction="sum") / max(1, len(xb))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total_loss += loss.item() * len(xb)
                total_correct += (logits.argmax(1) == yb).sum().item()
                seen += len(xb)
            val_acc = accuracy(model, tensors["private_val_x"], tensors["private_val_y"], device)
            eps = engine.get_epsilon(p["delta"]) if private else float("inf")
            history.append(
                {"epoch": epoch + 1, "loss": total_loss / max(1, seen), "train_acc": total_correct / max(1, seen),
                 "val_acc": val_acc, "epsilon": eps}
            )  # fmt: skip
            log.info("epoch %d: loss %.4f val acc %.4f epsilon %.3f", epoch + 1, history[-1]["loss"], val_acc, eps)
            if train_cfg["select_best_on_val"] and val_acc == val_acc and val_acc > best_val:
                best_val, best_state, selected = val_acc, copy.deepcopy(model.state_dict()), epoch + 1
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        sample_rate = 1.0 / len(loader)
        if private:
            # the guarantee covers every step taken, whichever epoch's weights are kept
            steps = sum(n for _, _, n in engine.accountant.history)
            epsilon = float(engine.get_epsilon(p["delta"]))
            self._results = {
                "epsilon": epsilon, "delta": p["delta"], "noise_multiplier": p["noise_multiplier"],
                "max_grad_norm": p["max_grad_norm"], "accountant": p["accountant"], "sample_rate": sample_rate,
                "steps": steps, "guarantee": guarantee_line(epsilon, p["delta"], p["accountant"], sample_rate, steps),
            }  # fmt: skip
        else:
            steps = train_cfg["epochs"] * len(loader)
            self._results = {
                "sample_rate": sample_rate, "steps": steps,
                "guarantee": f"none (non-private control: no clipping, no noise), q={sample_rate:.4g}, {steps} steps",
            }  # fmt: skip
        model.eval()
        return model, {"history": history, "selected_epoch": selected}

    def results(self, model, tensors, device):
        return self._results


def dp_sgd(**params) -> Defense:
    return DPSGD(**params)
