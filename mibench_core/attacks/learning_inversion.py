"""Learning-based model inversion (Yang et al., "Neural Network Inversion in
Adversarial Setting via Background Knowledge Alignment", CCS 2019).

The adversary trains an inversion network M that maps the target's
prediction vector back to the input, on auxiliary (public) data it owns:
query T on every public image, then minimise the mean squared error between
M(T(x)) and x. It then inverts *victims*: given the prediction vector that
T returned for a private input, M outputs a reconstruction of that input.
This is a per-sample attack (registry ``"victims": true``): the plan draws
``per_class`` private training samples of every class (the victims) and a
trusted job queries the oracle on them; the attack receives only those
answers (``ctx.victims``), never the images or their classes. Extras
``victim`` names, for every reconstruction, the victim whose answer was
inverted (a row of ``ctx.victims``), so the metric stage can compare it
with its own private image (PSNR/SSIM per sample) and score it against its
own class; the labels the attack gives are the classes the answers name
(the attacker does not know the victims' true classes).

M as in the authors' code: the (top-k truncated) vector p is mapped to
log(p_topk) + c (c = 50; clamped at -1000 before adding c), shifted so its
minimum is >= 0, scattered back into a K-vector (zeros elsewhere), then a
DCGAN-style decoder: a 4x4 transposed convolution to 8*ngf channels,
stride-2 4x4 transposed convolutions with BatchNorm and Tanh, and a final
Sigmoid (images in [0, 1]). Training: MSE, Adam lr 2e-4, betas (0.5, 0.999),
amsgrad, batch 128 (authors' code); the paper's ngf is 128.

Access: ``top-k`` with k = ``top_k`` (None: all K classes, the paper's main
setting; the paper also studies truncation). M's truncation uses the same k.

Ours: the decoder depth follows the resolution (any power of two >= 8; the
paper's 64x64 has four up-sampling blocks); ``epochs`` and ``ngf`` are
scaled down for the CPU, and ``public_samples`` (None: all) caps the public
images used (each costs a target query). The public set is queried once and its answers are
reused every epoch (the authors query T inside the training loop; with a
deterministic API the answers are the same, so this only saves queries).

Queries: one per public image (shared) and one per inverted private sample
(spent by the answers job, :mod:`mibench_core.attacks.victims`, and added to
the run's count by the attack stage).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.data.common import to_model_range
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "learning-inversion",
        "kind": "attack",
        "call": "run_attack",
        "description": "learning-based inversion (Yang et al. 2019): inversion network from (top-k) predictions to "
        "images",
        "defaults": {
            "per_class": 8,
            "top_k": None,
            "c": 50.0,
            "ngf": 128,
            "epochs": 100,
            "batch_size": 128,
            "lr": 0.0002,
            "beta1": 0.5,
            "beta2": 0.999,
            "public_samples": None,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "top_k": "[1, inf)",
            "c": "[0, inf)",
            "ngf": "[1, inf)",
            "epochs": "[1, inf)",
            "batch_size": "[1, inf)",
            "lr": "(0, inf)",
            "beta1": "[0, 1)",
            "beta2": "[0, 1)",
            "public_samples": "[1, inf)",
        },
        "access": "top-k",
        "victims": True,
    }
]


def prediction_encoding(p: torch.Tensor, k: int, c: float) -> torch.Tensor:
    """The authors' input transform: log of the top-k entries + c, shifted to >= 0, zeros elsewhere."""
    topk, idx = p.topk(k, dim=1)
    topk = torch.clamp(torch.log(topk), min=-1000) + c
    topk = topk + F.relu(-topk.min(1, keepdim=True).values)
    return torch.zeros_like(p).scatter_(1, idx, topk)


class InversionNet(nn.Module):
    def __init__(self, num_classes: int, channels: int, resolution: int, ngf: int, top_k: int, c: float):
        super().__init__()
        n_up = math.log2(resolution / 4)
        if n_up < 1 or not n_up.is_integer():
            raise ValueError(f"inversion network needs a power-of-two resolution >= 8, got {resolution}")
        n_up = int(n_up)
        self.top_k, self.c = top_k, c
        ch = ngf * 2 ** (n_up - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(num_classes, ch, 4, 1, 0), nn.BatchNorm2d(ch), nn.Tanh()]
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), nn.BatchNorm2d(ch // 2), nn.Tanh()]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        x = prediction_encoding(p, self.top_k, self.c)
        return self.decoder(x[:, :, None, None])


def run_attack(
    ctx: AttackContext,
    per_class: int,
    top_k: int | None,
    c: float,
    ngf: int,
    epochs: int,
    batch_size: int,
    lr: float,
    beta1: float,
    beta2: float,
    public_samples: int | None,
) -> AttackResult:
    """``per_class``: how many victims of each class the plan draws (this function inverts every one it gets)."""
    oracle, dev = ctx.oracle, ctx.device
    k = top_k or ctx.num_classes
    if ctx.victims is None or ctx.victims.top_k != k:
        raise ValueError(f"learning-inversion needs the target's top-{k} answers on its victims (ctx.victims)")
    public = ctx.public_images()
    if public_samples is not None and public_samples < len(public):
        public = public[torch.randperm(len(public), generator=ctx.gen)[:public_samples]]
    with torch.no_grad():
        pub_pred = torch.cat([oracle(to_model_range(public[i : i + 512]).to(dev)) for i in range(0, len(public), 512)])
    net = InversionNet(ctx.num_classes, ctx.channels, ctx.resolution, ngf, k, c).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(beta1, beta2), amsgrad=True)
    n = len(public)
    steps = epochs * ((n + batch_size - 1) // batch_size)
    bar = progress(total=steps, desc="learning-inversion", unit="step")
    history = []
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(n, generator=ctx.gen)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            target = public[idx].float().div(255).to(dev)
            loss = F.mse_loss(net(pub_pred[idx]), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            bar.update(1)
        history.append({"epoch": epoch + 1, "mse": total / n})
        bar.set_postfix(mse=f"{total / n:.4f}")
    bar.close()
    net.eval()
    victims = ctx.victims  # the answers on per_class private samples of every class, drawn by the plan
    with torch.no_grad():
        images = net(victims.outputs.to(dev)).mul(2).sub(1).cpu()
    info = {
        "train_history": history,
        "final_train_mse": history[-1]["mse"] if history else None,
        "top_k": k,
        "queries_shared": oracle.shared_queries,
    }
    extras = {
        "victim": torch.arange(len(victims), dtype=torch.int64),
        "victim_top1_confidence": victims.outputs.max(1).values.cpu(),
    }
    return AttackResult(images, victims.classes().cpu(), extras, info)
