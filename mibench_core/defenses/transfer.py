"""TL: transfer learning as a defense (Ho, Hao, Wang, Wang, Abdollahzadeh,
Cheung 2024, "Model Inversion Robustness: Can Transfer Learning Help?", CVPR).

Pretrain the target on public data, freeze its early layers, fine-tune the
rest on the private data. Fewer parameters that see private data means less
private information encoded in the early layers that attacks exploit.

Pretraining task. Our data artifacts hold the public split *without labels*
in both protocols (class-disjoint: other classes; sample-disjoint: other
images of the private classes), and the paper's labelled public pretraining
(e.g. ImageNet / public identities) is not available offline. So we pretrain
with a self-supervised rotation task (Gidaris, Singh, Komodakis 2018): each
public image is rotated by 0/90/180/270 degrees at random and a temporary
4-way linear head on the model's features predicts the rotation. The head is
discarded; the pretrained features are kept. This learns generic
low-level features from public data only, which is what TL relies on.

Freezing is by parameter fraction over whole blocks. A block is a
parameterised layer (convolution or linear) together with the normalisation
layers that directly follow it, so a convolution is never frozen while its
BatchNorm goes on training. Blocks are ordered as defined, the
classification head ``fc`` excluded; the frozen part is the prefix of blocks
whose share of all the model's parameters (head included) is closest to
``frozen_fraction`` (ties: the shorter prefix). Frozen parameters get
``requires_grad = False`` and frozen BatchNorm layers stay in inference mode
(running statistics are not updated by fine-tuning), so the frozen part is
exactly the pretrained function. The manifest records the requested and the
achieved fraction (``frozen_param_fraction``) and the frozen layers; the
tables show the achieved fraction. On a shallow model the achievable
fractions are few (MCNN: about 1 %, 40 % and 96 % of the parameters), so
strengths must be chosen among them.

Strength: ``frozen_fraction`` (Ho et al. sweep how much of the network is
fine-tuned on private data, freezing the early part; the TL-DMI code freezes
the first children of the feature extractor, i.e. whole blocks; freezing
more is stronger). Defaults: ``frozen_fraction`` 0.5, ``pretrain_epochs`` 5
over the public split with the target's optimizer settings. Cost: one extra
pass over the public split per pretraining epoch.

Deviations: the rotation pretraining above instead of labelled public
pretraining; the fraction is of parameters, rounded to whole blocks.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core.data.common import to_model_range
from mibench_core.models.classifiers import Classifier
from mibench_core.models.train import Defense
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "tl",
        "kind": "defense",
        "call": "transfer_learning",
        "description": "TL (Ho et al. 2024): rotation-pretrain on the public split, freeze early layers, fine-tune",
        "defaults": {"frozen_fraction": 0.5, "pretrain_epochs": 5},
        "bounds": {"frozen_fraction": "[0, 1]", "pretrain_epochs": "[1, inf)"},
        "strength": ["frozen_fraction"],
    }
]

log = logging.getLogger("mibench.defense.tl")


def layers_in_order(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf modules that own parameters, in definition order, the head ``fc`` excluded."""
    out = []
    for name, mod in model.named_modules():
        if name.split(".")[0] == "fc":
            continue
        if list(mod.children()) or not list(mod.parameters(recurse=False)):
            continue
        out.append((name, mod))
    return out


NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def blocks_in_order(model: nn.Module) -> list[list[tuple[str, nn.Module]]]:
    """Parameterised layers grouped into blocks: a layer with the normalisation layers right after it."""
    blocks: list[list[tuple[str, nn.Module]]] = []
    for name, mod in layers_in_order(model):
        if isinstance(mod, NORMS) and blocks:
            blocks[-1].append((name, mod))
        else:
            blocks.append([(name, mod)])
    return blocks


def _keep_inference_mode(module: nn.Module, _inputs) -> None:
    module.training = False


def frozen_prefix(model: nn.Module, frozen_fraction: float) -> tuple[list[list[tuple[str, nn.Module]]], float]:
    """The prefix of blocks whose parameter share is closest to ``frozen_fraction``, and that share."""
    blocks = blocks_in_order(model)
    total = sum(p.numel() for p in model.parameters())
    best_n, best_share, share = 0, 0.0, 0.0
    for n, block in enumerate(blocks, start=1):
        share += sum(p.numel() for _, m in block for p in m.parameters(recurse=False)) / total
        if abs(share - frozen_fraction) < abs(best_share - frozen_fraction):
            best_n, best_share = n, share
    return blocks[:best_n], best_share


def freeze_early_layers(model: nn.Module, frozen_fraction: float) -> list[str]:
    """Freeze the block prefix holding about ``frozen_fraction`` of the parameters; return the layer names."""
    names = []
    for block in frozen_prefix(model, frozen_fraction)[0]:
        for name, mod in block:
            for p in mod.parameters(recurse=False):
                p.requires_grad_(False)
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.register_forward_pre_hook(_keep_inference_mode)
            names.append(name)
    return names


def rotate_batch(x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each image by a random multiple of 90 degrees; return images and rotation labels."""
    k = torch.randint(0, 4, (len(x),), generator=gen)
    out = torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(x, k, strict=True)])
    return out, k


def pretrain_rotation(
    model: Classifier, public_x: torch.Tensor, epochs: int, train_cfg: dict, device, gen: torch.Generator
) -> list[float]:
    head = nn.Linear(model.feat_dim, 4).to(device)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"])
    n, bs = len(public_x), train_cfg["batch_size"]
    losses = []
    bar = progress(total=epochs * ((n + bs - 1) // bs), desc="tl-pretrain", unit="step")
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, bs):
            xb, rb = rotate_batch(to_model_range(public_x[perm[i : i + bs]]), gen)
            loss = F.cross_entropy(head(model.features(xb.to(device))), rb.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
            bar.update(1)
        losses.append(total / n)
        log.info("rotation pretraining: loss %.4f", losses[-1])
    bar.close()
    return losses


class TransferLearning(Defense):
    def __init__(self, **params):
        super().__init__(**params)
        self._results: dict = {}

    def pretrain(self, model, tensors, train_cfg, device, gen):
        p = self.params
        losses = pretrain_rotation(model, tensors["public_x"], p["pretrain_epochs"], train_cfg, device, gen)
        frozen = freeze_early_layers(model, p["frozen_fraction"])
        n_total = sum(q.numel() for q in model.parameters())
        n_frozen = sum(q.numel() for q in model.parameters() if not q.requires_grad)
        self._results = {
            "pretrain_task": "rotation",
            "pretrain_loss": losses,
            "frozen_layers": frozen,
            "frozen_fraction_requested": p["frozen_fraction"],
            "frozen_param_fraction": n_frozen / n_total,
        }
        return model

    def results(self, model, tensors, device):
        return self._results


def transfer_learning(**params) -> Defense:
    return TransferLearning(**params)
