"""GMI attack: time per iteration relative to a bare forward+backward pass.

Prints the attack's time per iteration divided by the time of one forward
pass through G, D and T plus the backward pass to the latents, for the same
batch (all classes x reconstructions x restarts), on the same device. The
target is <= 1.2: the attack loop should add little beyond the unavoidable
network work. Random-weight networks of the default architectures are used
(timing does not depend on the weights).

    python benchmarks/gmi_iteration.py [--device cpu|cuda] [--iterations 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mibench_core.attacks.contract import AttackContext  # noqa: E402
from mibench_core.attacks.gmi import run_attack  # noqa: E402
from mibench_core.models.classifiers import build  # noqa: E402
from mibench_core.priors.gmi_gan import Critic, GANPrior, Generator  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--per-class", type=int, default=8)
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    G = Generator(100, 64, 1, args.resolution).to(dev).eval().requires_grad_(False)
    D = Critic(64, 1, args.resolution).to(dev).eval().requires_grad_(False)
    T = build("mcnn", {"width": 64}, args.classes, 1, args.resolution).to(dev).eval().requires_grad_(False)
    batch = args.classes * args.per_class * args.restarts
    y = torch.arange(args.classes, device=dev).repeat_interleave(args.per_class).repeat(args.restarts)

    def bare(n):
        z = torch.randn(batch, 100, device=dev, requires_grad=True)
        for _ in range(n):
            x = G(z)
            loss = -D(x).sum() + torch.nn.functional.cross_entropy(T(x), y, reduction="sum")
            (g,) = torch.autograd.grad(loss, z)
        sync(dev)

    ctx = AttackContext(args.classes, 1, args.resolution, list(range(args.classes)), dev,
                        torch.Generator().manual_seed(0), target=T, prior=GANPrior(G, D, 100))  # fmt: skip

    def attack(n):
        run_attack(ctx, per_class=args.per_class, iterations=n, lr=0.02, momentum=0.9, lambda_iden=100.0,
                   clip_z=1.0, restarts=args.restarts, reference_batch=60)  # fmt: skip
        sync(dev)

    bare(3)
    attack(3)  # warm-up
    times = {}
    for name, fn in (("bare", bare), ("attack", attack), ("bare2", bare), ("attack2", attack)):
        t0 = time.perf_counter()
        fn(args.iterations)
        times[name] = (time.perf_counter() - t0) / args.iterations
    bare_t = min(times["bare"], times["bare2"])
    attack_t = min(times["attack"], times["attack2"])
    res = f"{args.resolution}x{args.resolution}"
    print(f"device {dev}, batch {batch} latents, {res}, threads {torch.get_num_threads()}")
    print(f"bare forward+backward (G, D, T): {bare_t * 1e3:.2f} ms")
    print(f"GMI attack iteration:            {attack_t * 1e3:.2f} ms")
    print(f"ratio attack / bare:             {attack_t / bare_t:.3f}   (target <= 1.2)")


if __name__ == "__main__":
    main()
