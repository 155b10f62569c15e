"""LPIPS (Zhang, Isola, Efros, Shechtman, Wang, "The Unreasonable
Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018), v0.1,
through the ``lpips`` package: for each reconstruction, the LPIPS distance to
the nearest private image of its class; averaged (lower is closer).

Weights. The linear heads ship with the ``lpips`` wheel (we check their
sha256 against the 0.1.4 wheel's files and load them with
``weights_only=True``). The backbone (torchvision's ImageNet AlexNet, VGG16 or
SqueezeNet 1.1, the file torchvision would download) does not ship: it is
looked up as weight file ``lpips-<net>`` (``mibench weights list``; a path
in the config's ``weights:`` mapping, ``$MIBENCH_WEIGHTS``,
``~/.cache/mibench/weights`` or the torch hub cache), verified by sha256,
and copied into the lpips network. Without it the value is missing with the
reason (where we looked), never 0; we never let lpips download it.

Inputs: reconstructions (in [-1, 1]) and private images (uint8, mapped to
[-1, 1]), the range LPIPS expects; grayscale images are repeated to 3
channels. Both are resized bilinearly (antialiased when shrinking) to
``resize`` x ``resize`` (default 64: LPIPS was calibrated on 64x64 patches,
and AlexNet's stride-4 stem leaves too little of a 32x32 image); null keeps
the native size. Distances are computed from each image's normalised layer
activations, once per image, which gives exactly ``lpips.LPIPS.forward``.
``max_reference_per_class`` caps the private images searched per class with
a seeded random subset (null: all).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from mibench_core import weights
from mibench_core.data.common import to_model_range
from mibench_core.metrics.common import MetricContext, MetricResult, pretrained_or_missing
from mibench_core.metrics.pixel import class_references
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "lpips",
        "kind": "metric",
        "call": "lpips_distance",
        "description": "LPIPS v0.1 (Zhang et al. 2018) to the nearest private image of the class (needs backbone "
        "weights)",
        "columns": {
            "lpips": {"label": "LPIPS to nearest private", "better": "lower", "meaning": "closer"},
        },
        "defaults": {"net": "alex", "resize": 64, "max_reference_per_class": None},
        "bounds": {"resize": "[32, inf)", "max_reference_per_class": "[1, inf)"},
        "needs_weights": True,
    }
]

NETS = ("alex", "vgg", "squeeze")
# sha256 of the linear heads in the lpips 0.1.4 wheel (lpips/weights/v0.1/<net>.pth).
HEAD_SHA256 = {
    "alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    "squeeze": "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76",
}


def build_lpips(net: str = "alex", user_weights: dict | None = None) -> tuple[torch.nn.Module, weights.Resolved]:
    """An ``lpips.LPIPS`` with the wheel's heads and the verified torchvision backbone.

    Raises :class:`weights.WeightsError` (with where it looked) when the backbone is absent or fails verification.
    """
    import lpips

    if net not in NETS:
        raise ValueError(f"LPIPS net {net!r}; valid: {', '.join(NETS)}")
    backbone, res = weights.load_known(f"lpips-{net}", user_weights)
    with warnings.catch_warnings():  # lpips passes torchvision the deprecated `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    head_path = Path(lpips.__file__).resolve().parent / "weights" / "v0.1" / f"{net}.pth"
    heads = weights.load_state_dict(head_path, HEAD_SHA256[net])
    result = model.load_state_dict(heads, strict=False)
    needed = {k for k in model.state_dict() if k.startswith("lin") and not k.startswith("lins.")}
    if result.unexpected_keys or not needed <= set(heads):
        raise weights.WeightsError(f"LPIPS heads {head_path} do not fit the {net} network: {result}")
    # lpips keeps torchvision's `features` modules under slices: net.sliceK.<i>.<param> is features.<i>.<param>.
    mapped = {}
    for key in model.net.state_dict():
        src = "features." + key.split(".", 1)[1]
        if src not in backbone:
            raise weights.WeightsError(f"{res.path}: no tensor {src!r}; is it torchvision's {net} state dict?")
        mapped[key] = backbone[src]
    model.net.load_state_dict(mapped, strict=True)
    return model.eval(), res


def prepare(x: torch.Tensor, resize: int | None) -> torch.Tensor:
    """Images in [-1, 1] -> 3 channels at ``resize`` x ``resize``."""
    x = x.float().clamp(-1, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if resize and tuple(x.shape[-2:]) != (resize, resize):
        shrink = resize < max(x.shape[-2:])
        x = F.interpolate(x, size=(resize, resize), mode="bilinear", align_corners=False, antialias=shrink)
    return x


@torch.no_grad()
def features(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Unit-normalised layer activations (what LPIPS compares) of images in [-1, 1]."""
    import lpips

    outs = model.net(model.scaling_layer(x))
    return [lpips.normalize_tensor(o) for o in outs]


@torch.no_grad()
def distance_from_features(model: torch.nn.Module, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
    """LPIPS between feature lists (broadcast over the batch): per pair, ``[B]``."""
    total = 0.0
    for lin, a, b in zip(model.lins, fa, fb):
        total = total + lin((a - b) ** 2).mean(dim=(2, 3))
    return total.reshape(-1)


@torch.no_grad()
def nearest_lpips(
    model: torch.nn.Module, x: torch.Tensor, refs: torch.Tensor, resize: int | None, chunk: int = 256
) -> torch.Tensor:
    """For each image of ``x`` (in [-1, 1]), the smallest LPIPS to any image of ``refs`` (uint8)."""
    device = next(model.parameters()).device
    fx = features(model, prepare(x, resize).to(device))
    best = torch.full((len(x),), float("inf"))
    for start in range(0, len(refs), chunk):
        fr = features(model, prepare(to_model_range(refs[start : start + chunk]), resize).to(device))
        for i in range(len(x)):
            d = distance_from_features(model, [f[i : i + 1] for f in fx], fr)
            best[i] = min(best[i].item(), d.min().item())
    return best


def lpips_distance(
    ctx: MetricContext, net: str = "alex", resize: int | None = 64, max_reference_per_class: int | None = None
) -> MetricResult:
    res = MetricResult()
    model = pretrained_or_missing(res, "lpips", lambda: build_lpips(net, ctx.weights), ctx.device)
    if model is None:
        return res
    res.notes["lpips_input"] = f"net {net}, v0.1, 3 channels, resized to {resize or 'native size'}"
    values = torch.empty(len(ctx.recon))
    for c in progress(ctx.classes, desc="lpips", unit="class"):
        m = ctx.recon_labels == c
        ref = class_references(ctx, c, max_reference_per_class)
        if len(ref) == 0:
            values[m] = float("nan")
            continue
        values[m] = nearest_lpips(model, ctx.recon[m], ref, resize)
        res.per_class[c] = {"lpips": values[m].mean().item()}
    res.overall["lpips"] = values.mean().item()
    res.per_sample["lpips"] = values
    return res
