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

Robust accuracy (``results.defense.robust_test_acc``) is measured with a
stronger evaluation attack than the training one: PGD with ``eval_steps``
steps (default 50) and ``eval_restarts`` random restarts (default 5) at the
training ``eps`` and ``step_size``; an image counts as robust only if every
restart fails (the worst case over restarts, as in Madry et al.'s
evaluation). ``robust_eval_attack`` names it; the training attack's own
robust accuracy is kept as ``robust_test_acc_train_attack`` (an upper
bound). Training cost is measured, not estimated: the manifest's
``train_time_s``.
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
        "defaults": {
            "eps": 0.03137254901960784,
            "step_size": 0.00784313725490196,
            "steps": 7,
            "eval_samples": 500,
            "eval_steps": 50,
            "eval_restarts": 5,
        },
        "bounds": {
            "eps": "(0, 1]",
            "step_size": "(0, 1]",
            "steps": "[1, inf)",
            "eval_samples": "[1, inf)",
            "eval_steps": "[1, inf)",
            "eval_restarts": "[1, inf)",
        },
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
        """Robust test accuracy on up to ``eval_samples`` test images, under the evaluation and the training PGD."""
        from mibench_core.data.common import to_model_range

        p = self.params
        x = to_model_range(tensors["private_test_x"][: p["eval_samples"]]).to(device)
        y = tensors["private_test_y"][: p["eval_samples"]].to(device)
        eps, step = 2.0 * p["eps"], 2.0 * p["step_size"]
        return {
            "robust_test_acc": robust_accuracy(model, x, y, eps, step, p["eval_steps"], p["eval_restarts"]),
            "robust_eval_attack": (
                f"PGD L-inf, {p['eval_steps']} steps, {p['eval_restarts']} random restarts (worst case), "
                f"eps {p['eps']:.4g}, step {p['step_size']:.4g}"
            ),
            "robust_test_acc_train_attack": robust_accuracy(model, x, y, eps, step, p["steps"], 1),
            "robust_eval_samples": len(x),
        }


def robust_accuracy(model, x, y, eps: float, step_size: float, steps: int, restarts: int, batch: int = 256) -> float:
    """Fraction of images that PGD misclassifies under none of ``restarts`` random starts."""
    robust = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        for i in range(0, len(x), batch):
            xa = pgd(model, x[i : i + batch], y[i : i + batch], eps, step_size, steps)
            with torch.no_grad():
                robust[i : i + batch] &= model(xa).argmax(1) == y[i : i + batch]
    return robust.float().mean().item() if len(x) else float("nan")


def adversarial_training(**params) -> Defense:
    return AdversarialTraining(**params)
