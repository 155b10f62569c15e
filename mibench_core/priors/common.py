"""Helpers shared by the prior modules: the GAN-training scaffold (job unpacking,
optimisers, the seeded batch sampler, the alternating schedule with its
history, saving and loading the networks, the sample grid), resolution checks,
public subsets and pseudo-labels.

The scaffold draws a random number only when its caller asks for one (a
batch, latents, labels), from the job's generator; weight initialisation and
augmentations use torch's global stream, which
:func:`~mibench_core.runtime.seed_everything` seeds. So the order of the
draws is the one each prior's module writes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mibench_core import store
from mibench_core.data.common import to_model_range
from mibench_core.data.views import PublicData, load_public
from mibench_core.runtime import pick_device, progress, seed_everything

GENERATOR_FILE, DISCRIMINATOR_FILE, SAMPLES_FILE = "generator.safetensors", "discriminator.safetensors", "samples.png"


# ----------------------------------------------------------------- training


def descend(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimiser step on ``loss``."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


class BatchSampler:
    """Index batches of ``batch_size`` out of ``n`` items from the job's generator.

    Without replacement (default): a random permutation walked by a cursor,
    redrawn when fewer than a batch remain (the rest of that permutation is
    skipped). With replacement: uniform indices, drawn anew for each batch.
    """

    def __init__(self, n: int, batch_size: int, gen: torch.Generator, replacement: bool = False):
        self.n, self.batch_size, self.gen, self.replacement = n, batch_size, gen, replacement
        if not replacement:
            self._perm, self._cursor = torch.randperm(n, generator=gen), 0

    def __call__(self) -> torch.Tensor:
        if self.replacement:
            return torch.randint(0, self.n, (self.batch_size,), generator=self.gen)
        if self._cursor + self.batch_size > self.n:
            self._perm, self._cursor = torch.randperm(self.n, generator=self.gen), 0
        idx = self._perm[self._cursor : self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return idx


Logged = dict[str, torch.Tensor | float]


def alternate(
    steps: int, n_dis: int, d_step: Callable[[], Logged], g_step: Callable[[], Logged], desc: str, every: int = 50
) -> list[dict]:
    """The GAN schedule: ``steps`` times, ``n_dis`` discriminator steps then one generator step.

    ``d_step`` and ``g_step`` do one update each and return the scalars to log
    (tensors are read only when logged, so a GPU is not synchronised every
    step). Every ``every`` steps and at the last one, the values of the last
    discriminator step and of the generator step are recorded in the returned
    history (and shown on the progress bar).
    """
    history: list[dict] = []
    bar = progress(range(steps), desc=desc, unit="G-step")
    for step in bar:
        logged: Logged = {}
        for _ in range(n_dis):
            logged = d_step()
        logged = {**logged, **g_step()}
        if step % every == 0 or step == steps - 1:
            row = {k: v.item() if torch.is_tensor(v) else float(v) for k, v in logged.items()}
            history.append({"step": step, **row})
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items()})
    return history


@dataclass
class Training:
    """The GAN-training scaffold of a prior: the device, the job's seeded
    generator and the spec's parameters (``z_dim``, ``lr``, ``beta1``,
    ``beta2``, ``batch_size``, ``steps`` as the prior has them)."""

    device: torch.device
    gen: torch.Generator
    params: dict

    def latents(self, n: int) -> torch.Tensor:
        """``n`` standard-normal latents of dimension ``z_dim`` from the job's generator, on the device."""
        return torch.randn(n, self.params["z_dim"], generator=self.gen).to(self.device)

    def labelled_latents(self, n: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`latents` and ``n`` uniform class labels (drawn after the latents)."""
        z = self.latents(n)
        return z, torch.randint(0, num_classes, (n,), generator=self.gen).to(self.device)

    def adam(self, module: nn.Module) -> torch.optim.Adam:
        """Adam with the spec's ``lr`` and betas (``beta1``, ``beta2``)."""
        p = self.params
        return torch.optim.Adam(module.parameters(), lr=p["lr"], betas=(p["beta1"], p["beta2"]))

    def real_batches(
        self, images: torch.Tensor, labels: torch.Tensor | None = None, replacement: bool = False
    ) -> Callable[[], tuple[torch.Tensor, torch.Tensor | None]]:
        """A function that draws the next batch of the spec's ``batch_size``
        (:class:`BatchSampler`) and returns (the uint8 ``images`` in the
        models' range [-1, 1], their ``labels`` or None), on the device."""
        batches = BatchSampler(len(images), self.params["batch_size"], self.gen, replacement)

        def draw() -> tuple[torch.Tensor, torch.Tensor | None]:
            idx = batches()
            return to_model_range(images[idx]).to(self.device), None if labels is None else labels[idx].to(self.device)

        return draw

    def alternate(self, n_dis: int, d_step: Callable[[], Logged], g_step: Callable[[], Logged], desc: str):
        """:func:`alternate` for the spec's ``steps``."""
        return alternate(self.params["steps"], n_dis, d_step, g_step, desc)


@dataclass
class PriorJob(Training):
    """A prior job, unpacked (:func:`start`): the training scaffold plus the
    output folder, the public view (``data["public_x"]``: priors are trained
    by the attacker, who never sees private data; any other key fails with a
    :class:`~mibench_core.data.views.PrivateDataError`) and the job's inputs."""

    outdir: Path
    data: PublicData
    inputs: dict

    @property
    def target_dir(self) -> str:
        return self.inputs["target"]["dir"]

    def labelled_public(self, target: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The public images the target labels (all, or a random ``max_public``
        of them when the spec sets it) and its softmax on them."""
        public = public_subset(self.data["public_x"], self.params["max_public"], self.gen)
        return public, target_probs(target, public, self.device)

    def finish(
        self, G: nn.Module, D: nn.Module, samples: torch.Tensor, results: dict, nrow: int = 8
    ) -> tuple[list[str], dict, str]:
        """Save G and D and the grid of ``samples``; the prior stage's return value."""
        files = save_gan(self.outdir, G, D)
        save_grid(samples.cpu(), self.outdir / SAMPLES_FILE, nrow=nrow)
        return [*files, SAMPLES_FILE], results, str(self.device)


def image_shape(images: torch.Tensor, num_classes: int | None = None) -> dict:
    """``channels``, ``resolution`` (and ``num_classes``): what rebuilds a prior's networks, kept in its results."""
    shape = {"channels": images.shape[1], "resolution": images.shape[-1]}
    return shape if num_classes is None else {**shape, "num_classes": num_classes}


def start(job: dict) -> PriorJob:
    """Unpack a prior job: pick the device, seed every stream, load the public view (its ``data`` input)."""
    device = pick_device(job["device"])
    gen = seed_everything(job["seed"])
    data = load_public(job["inputs"]["data"]["dir"])
    return PriorJob(device, gen, job["spec"]["params"], Path(job["outdir"]), data, job["inputs"])


# ----------------------------------------------------------------- saving and loading


def save_gan(outdir: Path, G: nn.Module, D: nn.Module) -> list[str]:
    store.save_tensors(outdir / GENERATOR_FILE, G.state_dict())
    store.save_tensors(outdir / DISCRIMINATOR_FILE, D.state_dict())
    return [GENERATOR_FILE, DISCRIMINATOR_FILE]


def freeze(net: nn.Module, device: torch.device | str) -> nn.Module:
    """``net`` on ``device``, in eval mode, without gradients for its parameters."""
    net.to(device).eval()
    for q in net.parameters():
        q.requires_grad_(False)
    return net


def load_gan(
    prior_dir: str | Path, networks: Callable[[dict, dict], tuple[nn.Module, nn.Module]], device: torch.device | str
) -> tuple[nn.Module, nn.Module, dict, dict]:
    """Rebuild a saved GAN: ``networks(params, results)`` makes the untrained (G, D)
    (``results`` holds ``channels``, ``resolution`` and, where the prior has
    one, ``num_classes``); returns (G, D, params, results) with the saved
    weights, frozen on ``device``."""
    manifest = store.read_manifest(prior_dir)
    p, res = manifest["spec"]["params"], manifest["results"]
    G, D = networks(p, res)
    G.load_state_dict(store.load_tensors(Path(prior_dir) / GENERATOR_FILE))
    D.load_state_dict(store.load_tensors(Path(prior_dir) / DISCRIMINATOR_FILE))
    return freeze(G, device), freeze(D, device), p, res


class SamplesLatents:
    """Mixin of the prior dataclasses: standard-normal latents of dimension ``z_dim``."""

    z_dim: int

    def sample_z(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.z_dim, generator=gen)


# ----------------------------------------------------------------- data helpers


def n_blocks(resolution: int) -> int:
    n = math.log2(resolution / 4)
    if n < 1 or not n.is_integer():
        raise ValueError(f"the DCGAN-style priors need a power-of-two resolution >= 8, got {resolution}")
    return int(n)


def public_subset(public: torch.Tensor, max_public: int | None, gen: torch.Generator) -> torch.Tensor:
    """The public images an attacker-side artifact uses: all (the papers), or a random ``max_public``
    (a CPU budget: every public image costs a forward pass of the target)."""
    if max_public is None or max_public >= len(public):
        return public
    return public[torch.randperm(len(public), generator=gen)[:max_public]]


@torch.no_grad()
def target_probs(target: nn.Module, x_uint8: torch.Tensor, device: torch.device, batch: int = 512) -> torch.Tensor:
    """Softmax of the target on uint8 images (CPU tensor)."""
    out = []
    for i in range(0, len(x_uint8), batch):
        out.append(target(to_model_range(x_uint8[i : i + batch].to(device))).softmax(1).cpu())
    return torch.cat(out)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    from torchvision.utils import save_image

    with store.atomic_path(path) as tmp:
        save_image(images.add(1).div(2).clamp(0, 1), str(tmp), nrow=nrow, format="png")
