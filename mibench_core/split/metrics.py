"""Scores of split-inference reconstructions: one job per trained target, over all its split runs.

Per run (a split artifact), against the exact inputs whose features were
inverted (the artifact's ``victim_index`` rows of ``private_test_x``):

* ``psnr``: per-sample PSNR with data range 1 on [0, 1] images, averaged;
* ``ssim``: per-sample Gaussian SSIM (Wang et al. 2004), averaged (missing,
  with the reason, for images smaller than the 11x11 window);
* ``acc1``: the evaluation model's top-1 accuracy on the reconstructions,
  labelled with their victims' classes (how recognisable they are).

Both pixel metrics are the implementations of
:mod:`mibench_core.metrics.pixel` (reconstructions ``(x + 1) / 2``
clamped, originals ``uint8 / 255``). ``reference_acc1`` is the evaluation
model's accuracy on the victims' original images (the ceiling of
``acc1``). One job per target rather than per run: the scores take
milliseconds, a job start seconds, and attack artifacts stay independent of
the metric code.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mibench_core import store
from mibench_core.data.common import to_model_range
from mibench_core.metrics.pixel import SSIM_WINDOW, psnr, recon_to_unit, ssim, ssim_possible, uint8_to_unit
from mibench_core.runtime import pick_device, seed_everything


@torch.no_grad()
def top1(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, device, batch: int = 512) -> torch.Tensor:
    """Per-image correctness (bool) of ``model`` on images ``x`` in [-1, 1]."""
    preds = [model(x[i : i + batch].to(device)).argmax(1).cpu() for i in range(0, len(x), batch)]
    return torch.cat(preds) == labels


def score(recon: dict, originals_uint8: torch.Tensor, eval_model: torch.nn.Module, device) -> dict:
    """Means and per-sample values of PSNR, SSIM and Acc@1 for one split run."""
    x = recon_to_unit(recon["images"])
    y = uint8_to_unit(originals_uint8)
    p = psnr(x, y)
    out: dict = {"missing": {}}
    out["psnr"] = p.mean().item()
    per_sample: dict = {"psnr": p.tolist()}
    if ssim_possible(x.shape):
        s = ssim(x, y)
        out["ssim"] = s.mean().item()
        per_sample["ssim"] = s.tolist()
    else:
        out["ssim"] = None
        out["missing"]["ssim"] = (
            f"images of {tuple(x.shape[-2:])} are smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} window"
        )
    correct = top1(eval_model, recon["images"].float(), recon["labels"], device)
    out["acc1"] = correct.float().mean().item()
    per_sample["acc1"] = correct.float().tolist()
    out["per_sample"] = per_sample
    return out


def run(job: dict) -> tuple[list[str], dict, str]:
    from mibench_core.models.train import load_classifier

    device = pick_device(job["device"])
    seed_everything(job["seed"])
    data = store.load_tensors(Path(job["inputs"]["data"]["dir"]) / "data.safetensors")
    eval_model = load_classifier(job["inputs"]["evaluation"]["dir"], device)
    runs, references = {}, {}
    for role, inp in sorted(job["inputs"].items()):
        if not role.startswith("split"):
            continue
        recon = store.load_tensors(Path(inp["dir"]) / "recon.safetensors")
        index = recon["victim_index"].long()
        originals = data["private_test_x"][index]
        runs[inp["id"]] = score(recon, originals, eval_model, device)
        key = ",".join(map(str, index.tolist()))
        if key not in references:
            references[key] = top1(eval_model, to_model_range(originals), recon["labels"], device).float().mean().item()
        runs[inp["id"]]["reference_acc1"] = references[key]
    store.write_json(Path(job["outdir"]) / "metrics.json", {"runs": runs})
    summary = {aid: {k: v for k, v in r.items() if k not in ("per_sample",)} for aid, r in runs.items()}
    return ["metrics.json"], {"runs": summary}, str(device)
