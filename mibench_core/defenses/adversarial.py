"""Adversarial training with PGD (Madry, Makelov, Schmidt, Tsipras, Vladu
2018, "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR).

Each training batch is replaced by its PGD adversarial examples: a uniform
random start in the L-infinity ball of radius ``eps``, then ``steps`` signed
gradient ascent steps of size ``step_size`` on the cross-entropy, each
projected back onto the ball and the valid image range; the model is trained
on the adversarial batch only (Madry et al.'s min-max objective). The
MIBench paper uses such targets to study how robustness changes MI
vulnerability (robust models have more perceptually aligned gradients).

Defaults: Madry et al.'s CIFAR-10 setting, ``eps = 8/255``,
``step_size = 2/255``, 7 steps (their MNIST setting is eps 0.3, 40 steps of
0.01). ``eps`` and ``step_size`` are in [0, 1] pixel units; our images live
in [-1, 1], so both are doubled internally. Deviation: the adversarial
examples are made with the model in eval mode (BatchNorm statistics are not
updated by the attack's forward passes), a common implementation choice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mibench_core.models.train import Defense

METHODS = [
    {
        "name": "adv-training",
        "kind": "defense",
        "call": "adversarial_training",
        "description": "adversarial training with L-inf PGD (Madry et al. 2018); robust test accuracy reported",
        "defaults": {"eps": 0.03137254901960784, "step_size": 0.00784313725490196, "steps": 7, "eval_samples": 500},
        "bounds": {"eps": "(0, 1]", "step_size": "(0, 1]", "steps": "[1, inf)", "eval_samples": "[1, inf)"},
        "strength": ["eps"],
    }
]


def pgd(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    step_size: float,
    steps: int,
    gen: torch.Generator | None = None,
    lo: float = -1.0,
    hi: float = 1.0,
) -> torch.Tensor:
    """L-inf PGD with random start; ``eps`` and ``step_size`` in the units of ``x``."""
    was_training = model.training
    model.eval()
    noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device) * 2 - 1
    x_adv = (x + eps * noise).clamp(lo, hi).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(lo, hi).detach()
    model.train(was_training)
    return x_adv


class AdversarialTraining(Defense):
    def loss(self, model, x, y, progress):
        p = self.params
        # random starts come from the global generator, seeded from the artifact id
        x_adv = pgd(model, x, y, 2.0 * p["eps"], 2.0 * p["step_size"], p["steps"])
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits

    def results(self, model, tensors, device) -> dict:
        """Robust test accuracy under the training PGD (on up to ``eval_samples`` test images)."""
        from mibench_core.data.common import to_model_range

        p = self.params
        x = to_model_range(tensors["private_test_x"][: p["eval_samples"]]).to(device)
        y = tensors["private_test_y"][: p["eval_samples"]].to(device)
        correct = 0
        for i in range(0, len(x), 256):
            xa = pgd(model, x[i : i + 256], y[i : i + 256], 2.0 * p["eps"], 2.0 * p["step_size"], p["steps"])
            with torch.no_grad():
                correct += (model(xa).argmax(1) == y[i : i + 256]).sum().item()
        return {"robust_test_acc": correct / max(1, len(x)), "robust_eval_samples": len(x)}


def adversarial_training(**params) -> Defense:
    return AdversarialTraining(**params)
