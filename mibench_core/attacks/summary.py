"""Target-side diagnostics that the white-box attacks record beside their reconstructions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mibench_core.attacks.contract import AttackContext


def summarise(ctx: AttackContext, images: torch.Tensor, labels: torch.Tensor) -> tuple[dict, dict]:
    """Target-side diagnostics shared by the white-box attacks (info, extras)."""
    with torch.no_grad():
        logits = ctx.target(images)
    y = labels.to(logits.device)
    probs = logits.softmax(1)
    info = {
        "target_success": (logits.argmax(1) == y).float().mean().item(),
        "final_ce_mean": F.cross_entropy(logits, y).item(),
        "queries": None,  # white-box: gradients, no counted queries
    }
    extras = {
        "target_confidence": probs.gather(1, y[:, None]).squeeze(1).cpu(),
        "target_logit": logits.gather(1, y[:, None]).squeeze(1).cpu(),
    }
    return info, extras
