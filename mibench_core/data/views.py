"""What each side may see of a data artifact: the public view, and the victims of per-sample attacks.

A data artifact (:mod:`mibench_core.data.common`) holds the private splits
the target is trained and scored on and the public split an attacker owns.
Only trusted jobs read it: the data, model and metric stages, and the two
jobs of this module and :mod:`mibench_core.attacks.victims`. Attacker-side
jobs (every prior, every attack) receive derived artifacts instead:

* the **public view** (kind ``public``, :func:`run_public`): the public
  split alone (``public_x``, uint8 ``[N, C, R, R]``, no labels) and its
  shape. The plan gives it to priors and attacks under the input role
  ``data``, the data they may see; :func:`load_public` returns it as a
  :class:`PublicData` mapping whose lookup of any other key fails with a
  :class:`PrivateDataError` that says what is available;
* for per-sample attacks (registry ``"victims": true``), the target's
  *answers* on the private samples they invert (kind ``answers``, made by
  :mod:`mibench_core.attacks.victims`), never the samples themselves.

Which private samples those are is the **victims** artifact (kind
``victims``, :func:`run_victims`): ``per_class`` private training samples
of every class, a seeded draw, with their classes. It is private, like the
data: the answers job and the metric stage (which scores each
reconstruction against its own victim) read it, attacks never do.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mibench_core import store
from mibench_core.runtime import seed_everything

PUBLIC_FILE = "public.safetensors"
VICTIMS_FILE = "victims.safetensors"
DATA_FILE = "data.safetensors"


class PrivateDataError(RuntimeError):
    """Attacker-side code reached for data it may not see; the message says what it may use."""


class PublicData(dict):
    """The tensors of a public view; looking up anything else (a private split) fails clearly."""

    def __missing__(self, key):
        raise PrivateDataError(
            f"{key!r} is not in the public view: attacker-side jobs see only {sorted(self)} (the public split, "
            "unlabelled), the target (white-box) or its oracle, and, for per-sample attacks that declare "
            '"victims": true, the target\'s answers on their victims (ctx.victims)'
        )


def load_public(public_dir: str | Path) -> PublicData:
    """The public view's tensors (``public_x``) as a :class:`PublicData` mapping."""
    path = Path(public_dir) / PUBLIC_FILE
    if not path.exists():
        raise PrivateDataError(
            f"{public_dir} is not a public view (no {PUBLIC_FILE}); attacker-side jobs get the public view as "
            "their 'data' input, never the data artifact"
        )
    return PublicData(store.load_tensors(path))


def run_public(job: dict) -> tuple[list[str], dict, str]:
    """Public-view stage: copy the data artifact's public split, and its shape, into its own artifact."""
    data_dir = job["inputs"]["data"]["dir"]
    public = store.load_tensors(Path(data_dir) / DATA_FILE)["public_x"]
    info = store.read_manifest(data_dir)["results"]
    store.save_tensors(Path(job["outdir"]) / PUBLIC_FILE, {"public_x": public})
    results = {
        "size": int(public.shape[0]),
        "channels": info["channels"],
        "resolution": info["resolution"],
        "public_classes": info["public_classes"],  # source class ids (class-disjoint protocol; else empty)
    }
    return [PUBLIC_FILE], results, "cpu"


def select_victims(
    labels: torch.Tensor, classes: list[int], per_class: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` random samples of every class in ``classes`` (fewer when a class has fewer):
    (index into ``labels`` [N] int64, class [N]), class by class, one permutation per class."""
    idx = []
    for c in classes:
        pool = torch.nonzero(labels == c).flatten()
        idx.append(pool[torch.randperm(len(pool), generator=gen)[:per_class]])
    index = torch.cat(idx).to(torch.int64) if idx else torch.zeros(0, dtype=torch.int64)
    return index, labels[index]


def run_victims(job: dict) -> tuple[list[str], dict, str]:
    """Victims stage: draw ``per_class`` private training samples of every class (seeded by the job)."""
    gen = seed_everything(job["seed"])
    data_dir = job["inputs"]["data"]["dir"]
    y = store.load_tensors(Path(data_dir) / DATA_FILE)["private_train_y"]
    num_classes = store.read_manifest(data_dir)["results"]["num_classes"]
    per_class = job["spec"]["per_class"]
    index, labels = select_victims(y, list(range(num_classes)), per_class, gen)
    store.save_tensors(Path(job["outdir"]) / VICTIMS_FILE, {"private_index": index, "labels": labels})
    results = {"count": len(index), "per_class": per_class, "num_classes": num_classes}
    return [VICTIMS_FILE], results, "cpu"


def load_victims(victims_dir: str | Path) -> dict[str, torch.Tensor]:
    """The victims' rows of the data artifact's ``private_train_x`` (``private_index``) and their ``labels``."""
    return store.load_tensors(Path(victims_dir) / VICTIMS_FILE)
