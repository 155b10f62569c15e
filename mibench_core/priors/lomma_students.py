"""LOMMA's augmented models: students distilled from the target on public data
(Nguyen et al., "Re-thinking Model Inversion Attacks Against Deep Neural
Networks", CVPR 2023, "model augmentation").

An attacker-side artifact, not a generative prior, stored in the prior stage
because it is trained there from the same inputs (the public split and the
target, ``needs_target``). ``n_students`` (3 in the paper) students are
trained by knowledge distillation only: KL(softmax(T(x)) || softmax(S(x)))
at temperature 1 on public images (which never carry labels), Adam.

Like every prior, the students are the attacker's: the job sees the public
view, never private data. How well a student imitates the target is
measured where an attacker can: its top-1 agreement with the target on
public images held out from distillation (:data:`HELDOUT_FRACTION` of the
public split, drawn from the same permutation as the ``max_public``
subset: the images after it), in the manifest's ``history``. (A constant,
not a parameter: a diagnostic that enters no attack, so it stays out of the
artifact's spec and seed.)

Files: the prior stage's main weight file ``generator.safetensors`` (the name
the prior rule waits for) holds the students' state dicts, keys prefixed
``student<i>.``; ``samples.png`` shows, per class (row), the public images the
target (column 0) and each student (columns 1..) are most confident about.

Deviations: the paper distils EfficientNet-B0/B1/B2 students from a VGG16 /
IR152 / FaceNet64 target at 64x64; at our 32x32 CPU scale the students are
``arch`` (default ``mcnn``, the paper's MNIST-family CNN; null = the
target's architecture) with widths ``widths`` (one per student), trained
``epochs`` epochs (the paper: until convergence, with its own schedule), on
the public images not held out, or a random ``max_public`` of them. The
held-out images are ours (the paper reports no student diagnostic).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mibench_core import store
from mibench_core.data.common import to_model_range
from mibench_core.models.classifiers import build
from mibench_core.priors.common import freeze, save_grid, start, target_probs
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "lomma-students",
        "kind": "prior",
        "call": "train_prior",
        "description": "LOMMA model augmentation: students distilled from the target on public data (Nguyen et al. "
        "2023)",
        "defaults": {
            "n_students": 3,
            "arch": None,
            "widths": None,
            "epochs": 10,
            "batch_size": 64,
            "lr": 0.001,
            "temperature": 1.0,
            "max_public": None,
        },
        "bounds": {
            "n_students": "[1, inf)",
            "widths": "[1, inf)",
            "epochs": "[1, inf)",
            "batch_size": "[1, inf)",
            "lr": "(0, inf)",
            "temperature": "(0, inf)",
            "max_public": "[1, inf)",
        },
        "needs_target": True,
    }
]

log = logging.getLogger("mibench.prior")
HELDOUT_FRACTION = 0.1  # of the public split, held out from distillation to measure agreement with the target


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at a temperature, batch mean, times T^2 (Hinton et al. 2015)."""
    log_s = F.log_softmax(student_logits / temperature, 1)
    if temperature != 1.0:
        teacher_probs = F.softmax(teacher_probs.clamp_min(1e-12).log() / temperature, 1)
    return F.kl_div(log_s, teacher_probs, reduction="batchmean") * temperature**2


@dataclass
class Students:
    models: list[nn.Module]


def _student_specs(p: dict, target_spec: dict) -> list[tuple[str, dict]]:
    arch = p["arch"] or target_spec["arch"]
    specs = []
    for i in range(p["n_students"]):
        params = dict(target_spec["arch_params"]) if arch == target_spec["arch"] else {}
        if p["widths"]:
            params["width"] = p["widths"][i % len(p["widths"])]
        specs.append((arch, params))
    return specs


def split_public(
    public: torch.Tensor, max_public: int | None, heldout_fraction: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(distillation images, held-out images) of the public split.

    One random permutation (drawn only when something is held out or
    subsampled): the first ``max_public`` images (all but the held-out ones
    when None, or when fewer remain) distil, the next
    ``round(heldout_fraction * N)`` are held out. With ``max_public`` below
    the public size, the distillation images are the ones
    :func:`~mibench_core.priors.common.public_subset` draws from the same
    generator."""
    n = len(public)
    n_held = int(round(n * heldout_fraction))
    n_train = n - n_held if max_public is None else min(max_public, n - n_held)
    if n_train < 1:
        raise ValueError(f"lomma-students: no public image left to distil on ({n} public, {n_held} held out)")
    if n_held == 0 and n_train == n:
        return public, public[:0]
    perm = torch.randperm(n, generator=gen)
    return public[perm[:n_train]], public[perm[n_train : n_train + n_held]]


def train_prior(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.models.train import augment_batch, load_classifier

    run = start(job)
    p, gen, device = run.params, run.gen, run.device
    T = load_classifier(run.target_dir, device)
    public, heldout = split_public(run.data["public_x"], p["max_public"], HELDOUT_FRACTION, gen)
    teacher = target_probs(T, public, device)
    teacher_heldout = target_probs(T, heldout, device) if len(heldout) else None
    t_manifest = store.read_manifest(run.target_dir)
    t_res = t_manifest["results"]
    K = teacher.shape[1]
    specs = _student_specs(p, t_manifest["spec"])
    state: dict[str, torch.Tensor] = {}
    models, student_probs, history = [], [], []
    n, bs = len(public), p["batch_size"]
    for i, (arch, params) in enumerate(specs):
        S = build(arch, params, K, t_res["channels"], t_res["resolution"]).to(device)
        opt = torch.optim.Adam(S.parameters(), lr=p["lr"])
        steps = p["epochs"] * ((n + bs - 1) // bs)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        S.train()
        for _ in progress(range(p["epochs"]), desc=f"student{i}", unit="epoch"):
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for j in range(0, n, bs):
                idx = perm[j : j + bs]
                xb = augment_batch(to_model_range(public[idx]), gen).to(device)
                loss = distillation_loss(S(xb), teacher[idx].to(device), p["temperature"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
        S.eval()
        with torch.no_grad():
            student_probs.append(target_probs(S, public, device))
            agree_pub = (student_probs[-1].argmax(1) == teacher.argmax(1)).float().mean().item()
            agree_held = None
            if len(heldout):
                held_pred = target_probs(S, heldout, device).argmax(1)
                agree_held = (held_pred == teacher_heldout.argmax(1)).float().mean().item()
        history.append(
            {"student": i, "arch": arch, "arch_params": params, "final_kd_loss": total / n,
             "agreement_with_target_on_public": agree_pub, "agreement_with_target_on_heldout_public": agree_held}
        )  # fmt: skip
        log.info("student %d (%s %s): agreement %.3f (held-out public %s)", i, arch, params, agree_pub, agree_held)
        state.update({f"student{i}.{k}": v for k, v in S.state_dict().items()})
        models.append(S)
    outdir = run.outdir
    store.save_tensors(outdir / "generator.safetensors", state)
    rows = []
    for c in range(K):
        for net_probs in [teacher, *student_probs]:
            rows.append(to_model_range(public[net_probs[:, c].argmax()]))
    save_grid(torch.stack(rows), outdir / "samples.png", nrow=1 + len(models))
    results = {
        "distilled_on": n,
        "heldout_public": len(heldout),
        "num_classes": K,
        "channels": t_res["channels"],
        "resolution": t_res["resolution"],
        "students": [{"arch": a, "arch_params": ap} for a, ap in specs],
        "history": history,
    }
    return ["generator.safetensors", "samples.png"], results, str(device)


def load(prior_dir: str | Path, device="cpu") -> Students:
    res = store.read_manifest(prior_dir)["results"]
    state = store.load_tensors(Path(prior_dir) / "generator.safetensors")
    models = []
    for i, s in enumerate(res["students"]):
        S = build(s["arch"], s["arch_params"], res["num_classes"], res["channels"], res["resolution"])
        prefix = f"student{i}."
        S.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        models.append(freeze(S, device))
    return Students(models)
