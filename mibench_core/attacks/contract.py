"""The attack contract: what an attack receives (:class:`AttackContext`) and returns (:class:`AttackResult`).

An attack is a function ``run_attack(ctx, **params) -> AttackResult``. What the
context holds depends on the attack's threat model (its registry ``access``):
a white-box attack gets the target model (``ctx.target``); any other access
level gets only a query-counting oracle (``ctx.oracle``) and ``ctx.target``
stays None.

No attack sees private data. Its data is the public split
(:meth:`AttackContext.public_images`, from the public view artifact of
:mod:`mibench_core.data.views`); a per-sample attack (registry
``"victims": true``, e.g. learning-based inversion) also gets
``ctx.victims``, the target's answers on the private samples it inverts
(:class:`VictimAnswers`: the oracle's outputs at the attack's access level,
computed by a trusted job, :mod:`mibench_core.attacks.victims`), never those
samples' images or classes. The attack names, per reconstruction, which
victim it inverts (extras ``victim``: a row of ``ctx.victims``); the metric
stage, which may read private data, looks up that victim's image and class.
The old ways to private data (``data_dir``, ``private_sample_indices``,
``victim_outputs``) raise :class:`~mibench_core.data.views.PrivateDataError`
saying what to use instead. Like the oracle's hiding of the model, this is a
guard against mistakes in attack code, not a sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mibench_core import store
from mibench_core.data.views import PrivateDataError, load_public

ANSWERS_FILE = "answers.safetensors"


@dataclass
class VictimAnswers:
    """What a per-sample attack observes of its victims: the target's answers, one row per victim.

    ``outputs``: the oracle's answers on the victims' images at the attack's
    access level and output processing (``[N, K]`` probabilities, top-k
    truncated for ``top-k`` access; ``[N]`` int64 labels for ``label``
    access). ``queries``: oracle queries spent on each victim (int64 ``[N]``).
    """

    outputs: torch.Tensor
    queries: torch.Tensor
    access: str
    top_k: int | None = None
    victims_id: str | None = None  # the id of the (private) victims artifact the answers are of

    def __len__(self) -> int:
        return len(self.outputs)

    def classes(self) -> torch.Tensor:
        """The class each answer names (top-1, or the label for label-only access): int64 ``[N]``."""
        return self.outputs.long() if self.outputs.dim() == 1 else self.outputs.argmax(1)

    @classmethod
    def load(cls, answers_dir: str | Path, device: torch.device | str = "cpu") -> VictimAnswers:
        manifest = store.read_manifest(answers_dir)
        t = store.load_tensors(Path(answers_dir) / ANSWERS_FILE)
        res, victims_id = manifest["results"], manifest["inputs"]["victims"]
        return cls(t["outputs"].to(device), t["queries"], res["access"], res.get("top_k"), victims_id)


_USE_INSTEAD = (
    "attacks never see private data: use ctx.public_images() (the public split) and, for a per-sample attack "
    '(registry "victims": true), ctx.victims (the target\'s answers on its victims; name the victim of each '
    "reconstruction in extras['victim'])"
)


@dataclass
class AttackContext:
    num_classes: int
    channels: int
    resolution: int
    classes: list[int]  # target classes to invert
    device: torch.device
    gen: torch.Generator
    target: torch.nn.Module | None = None  # white-box only
    prior: Any = None
    public_dir: str | None = None  # the public view artifact (the auxiliary data an attacker holds)
    aux: list[Any] = field(default_factory=list)  # extra attacker-side priors (config key ``aux``), in order
    oracle: Any = None  # black-box / label-only only: mibench_core.attacks.oracle.Oracle
    victims: VictimAnswers | None = None  # per-sample attacks only

    def public_images(self) -> torch.Tensor:
        """The public split (uint8), the auxiliary data an attacker may hold."""
        if self.public_dir is None:
            raise PrivateDataError("this attack context has no public view")
        return load_public(self.public_dir)["public_x"]

    @property
    def data_dir(self) -> str:
        raise PrivateDataError(f"ctx.data_dir no longer exists: {_USE_INSTEAD}")

    def private_sample_indices(self, *args, **kwargs):
        raise PrivateDataError(
            f"ctx.private_sample_indices no longer exists (the plan draws the victims in a trusted job): {_USE_INSTEAD}"
        )

    def victim_outputs(self, *args, **kwargs):
        raise PrivateDataError(f"ctx.victim_outputs no longer exists: {_USE_INSTEAD}")


@dataclass
class AttackResult:
    """``labels``: the class each reconstruction is for. A per-sample attack, which never learns its
    victims' classes, gives the class the target's answer names (:meth:`VictimAnswers.classes`) and
    names each reconstruction's victim in ``extras["victim"]``; the metric stage scores it against
    that victim's image and own class."""

    images: torch.Tensor  # [N, C, H, W] in [-1, 1]
    labels: torch.Tensor  # [N] target classes
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # per-reconstruction tensors
    info: dict[str, Any] = field(default_factory=dict)  # JSON-able summary (losses, queries)
