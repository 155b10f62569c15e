"""FID (Heusel et al. 2017): the Frechet distance between InceptionV3 pool3
features (2048-d) of the reconstructions and of the private images of the
attacked classes, with pytorch-fid's InceptionV3 port of the TensorFlow FID
network (``pt_inception-2015-12-05-6726825d.pth``).

Weights: weight file ``fid-inception`` (``mibench weights list``), looked up
in the config's ``weights:`` mapping, ``$MIBENCH_WEIGHTS``,
``~/.cache/mibench/weights`` and the torch hub cache
(``$TORCH_HOME/hub/checkpoints``, where pytorch-fid itself would put it),
and verified against the published file's sha256 (see mibench_core/weights.py
for where that digest comes from) before it is loaded with
``weights_only=True``. pytorch-fid would load that cache file without any
hash check, and download it when absent; we instead hand its constructor the
verified state dict. Without the file, FID is missing with the reason (where
we looked), never 0.

Preprocessing as pytorch-fid's ``fid_score``: images in [0, 1] (private uint8
/ 255; reconstructions (x + 1) / 2 clamped), grayscale repeated to 3
channels; the network resizes bilinearly to 299x299 and maps to [-1, 1].
The Frechet distance is ``functional.frechet_distance_features``: the same
formula as ``functional.frechet_distance`` (tested equal to it), computed
exactly from the features through a small SVD instead of ``sqrtm`` of a
2048 x 2048 matrix, which takes minutes on a CPU and is singular with fewer
than 2048 samples (pytorch-fid's ``calculate_frechet_distance`` then adds
1e-6 to the diagonals, and passes the deprecated ``disp=False`` to
``scipy.linalg.sqrtm``; we call neither). FID with few samples is biased
upwards: compare FIDs only at equal sample sizes.

Interval: the Frechet distance recomputed on each of the stage's resamples of
the reconstructions (``feature_space.frechet_interval``; the private features
stay fixed).

``max_private`` caps the private reference images with a seeded random subset
(null: all; InceptionV3 costs about 0.1 s an image on a CPU).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from mibench_core import weights
from mibench_core.metrics.common import MetricContext, MetricResult, pretrained_or_missing
from mibench_core.metrics.feature_space import frechet_interval
from mibench_core.metrics.functional import frechet_distance_features
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "fid",
        "kind": "metric",
        "call": "fid",
        "description": "FID: Frechet distance of pytorch-fid InceptionV3 pool3 features (needs the FID weights)",
        "columns": {
            "fid": {"label": "FID (InceptionV3)", "better": "lower", "meaning": "closer distribution"},
        },
        "defaults": {"max_private": None, "batch_size": 50},
        "bounds": {"max_private": "[2, inf)", "batch_size": "[1, inf)"},
        "needs_weights": True,
    }
]


@contextmanager
def _state_dict_instead_of_download(state: dict):
    """Make pytorch-fid's constructor use ``state`` where it would download (and unpickle) the weights."""
    import pytorch_fid.inception as pfi

    original = pfi.load_state_dict_from_url

    def _verified(*_args, **_kwargs):
        return state

    pfi.load_state_dict_from_url = _verified
    try:
        yield pfi
    finally:
        pfi.load_state_dict_from_url = original


def build_inception(user_weights: dict | None = None) -> tuple[torch.nn.Module, weights.Resolved]:
    """pytorch-fid's InceptionV3 (pool3 block) with the verified FID weights."""
    state, res = weights.load_known("fid-inception", user_weights)
    with _state_dict_instead_of_download(state) as pfi:
        model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True)
    return model.eval(), res


@torch.no_grad()
def inception_features(model: torch.nn.Module, x01: torch.Tensor, batch_size: int = 50, desc: str = "") -> torch.Tensor:
    """Pool3 features ``[N, 2048]`` of images in [0, 1] (float) or uint8 (1 or 3 channels)."""
    device = next(model.parameters()).device
    out = []
    starts = range(0, len(x01), batch_size)
    for s in progress(starts, desc=f"inception {desc}", unit="batch") if len(starts) > 1 else starts:
        xb = x01[s : s + batch_size]
        xb = xb.float().div(255.0) if xb.dtype == torch.uint8 else xb.float()
        if xb.shape[1] == 1:
            xb = xb.expand(-1, 3, -1, -1)
        out.append(model(xb.to(device))[0].squeeze(-1).squeeze(-1).double().cpu())
    return torch.cat(out)


def fid(ctx: MetricContext, max_private: int | None = None, batch_size: int = 50) -> MetricResult:
    res = MetricResult()
    if len(ctx.recon) < 2:
        res.set_missing("fid", "fewer than 2 reconstructions")
        return res
    model = pretrained_or_missing(res, "fid", lambda: build_inception(ctx.weights), ctx.device)
    if model is None:
        return res
    private = ctx.private_x
    if max_private is not None and len(private) > max_private:
        private = private[torch.randperm(len(private), generator=ctx.gen)[:max_private]]
    res.notes["fid_samples"] = f"{len(ctx.recon)} reconstructions vs {len(private)} private images"
    fake = inception_features(model, ctx.recon.double().add(1).div(2).clamp(0, 1), batch_size, "recon")
    real = inception_features(model, private, batch_size, "private")
    res.overall["fid"] = frechet_distance_features(fake, real)
    ci, note = frechet_interval(ctx, fake, real, res.overall["fid"])
    if ci is not None:
        res.ci["fid"] = ci
    else:
        res.ci_notes["fid"] = note
    return res
