"""Pretrained StyleGAN2-ADA (Karras et al. 2020) as a prior: NVIDIA's published
generator (e.g. FFHQ 1024x1024, the prior of PPA, Mirror, IF-GMI, C2FMI and
VMI in their papers), loaded into our StyleGAN2 classes.

``weights_file`` is either NVIDIA's network pickle (``ffhq.pkl``), read by
the restricted unpickler of :mod:`mibench_core.priors.stylegan_pickle`
(tensors, storages and plain containers only; NVIDIA's embedded code is
never run), or the safetensors file that ``mibench weights convert
stylegan2-ada-ffhq`` writes from it. ``sha256`` (null: not checked; the
converter prints the digest of its output) is verified before anything is
read. The prior stage trains nothing: it converts, computes the P-space
statistics Mirror clips with (``p_samples`` mapped z), and writes the same
artifact files as the ``stylegan`` prior, so every StyleGAN attack runs on
either. ``center_crop`` (PPA: 800 for the 1024 FFHQ generator) is the square
crop of the generator output, in pixels, taken before images are resized
to the target's input (null: none).
"""

from __future__ import annotations

from pathlib import Path

from mibench_core.data.views import load_public
from mibench_core.priors.stylegan import StyleGANPrior, p_statistics, save_prior
from mibench_core.priors.stylegan import load as load_stylegan
from mibench_core.runtime import pick_device, seed_everything

METHODS = [
    {
        "name": "stylegan2-ada",
        "kind": "prior",
        "call": "train_prior",
        "description": "Pretrained StyleGAN2-ADA generator (NVIDIA pickle read safely, or its converted "
        "safetensors); nothing trained",
        "defaults": {"weights_file": None, "sha256": None, "center_crop": None, "p_samples": 10000},
        "bounds": {"center_crop": "[1, inf)", "p_samples": "[2, inf)"},
    }
]


def read_weights(path: str | Path, sha256: str | None):
    """(G, D, generator kwargs, discriminator kwargs, sha256 of the file) from a pickle or a converted file."""
    from mibench_core.priors import stylegan_pickle
    from mibench_core.weights import verify_sha256

    path = Path(path)
    digest = verify_sha256(path, sha256)
    if path.suffix == ".pkl":
        G, D, g_kw, d_kw = stylegan_pickle.read_networks(path)
    else:
        G, D, g_kw, d_kw, _ = stylegan_pickle.read_converted(path)
    return G, D, g_kw, d_kw, digest


def train_prior(job: dict) -> tuple[list[str], dict, str]:
    device = pick_device(job["device"])
    gen = seed_everything(job["seed"])
    p = job["spec"]["params"]
    if not p.get("weights_file"):
        raise ValueError("prior 'stylegan2-ada' needs weights_file: NVIDIA's .pkl or its converted .safetensors")
    G, D, g_kw, d_kw, digest = read_weights(p["weights_file"], p.get("sha256"))
    G = G.to(device).eval()
    D = D.to(device).eval() if D is not None else None
    public = load_public(job["inputs"]["data"]["dir"])["public_x"]  # the public view: all a prior sees
    channels, resolution = public.shape[1], public.shape[-1]
    p_mean, p_std = p_statistics(G.mapping, p["p_samples"], gen, device)
    files = save_prior(
        Path(job["outdir"]), G, D, p_mean, p_std, gen, device, resolution, channels, p.get("center_crop")
    )
    results = {
        "z_dim": g_kw["z_dim"],
        "w_dim": g_kw["w_dim"],
        "num_ws": G.num_ws,
        "channels": channels,
        "resolution": resolution,
        "generator_resolution": g_kw["img_resolution"],
        "generator_channels": g_kw["img_channels"],
        "center_crop": p.get("center_crop"),
        "architecture": {"generator": g_kw, "discriminator": d_kw},
        "weights_sha256": digest,
    }
    return files, results, str(device)


def load(prior_dir: str | Path, device="cpu") -> StyleGANPrior:
    return load_stylegan(prior_dir, device)
