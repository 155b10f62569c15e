"""The membership-inference attack contract: what an attack receives (:class:`MIAContext`) and returns
(:class:`MIAResult`).

An attack is a function ``run(ctx, **params) -> MIAResult``. It sees:

* the **target only through the query-counting oracle** at its registry
  ``access`` level (probabilities, top-k, or labels; output processing of the
  config applied by the oracle). :meth:`MIAContext.query` answers uint8 images
  under an augmentation; every image is one counted query;
* the **candidates**' images and labels (what it must label member /
  non-member), never their membership;
* the attacker's **population** (images and labels, disjoint from every
  candidate and every member, :mod:`mibench_core.membership.population`);
* its **reference / shadow models** (:class:`Reference`): white-box to the
  attacker, who trained them; their outputs on population and candidates
  under the first ``n_augmentations`` augmentations are precomputed by the
  shadow stage, and :meth:`MIAContext.shadow_answers` passes them through the
  same output processing and truncation as the target's answers;
* for set-dependent attacks (BlindMI-Diff, SHAPr) the **scenarios**: per
  scenario, the target set (candidate indices, members and non-members mixed
  in candidate order), the non-member-only set and ``n_members``, how many
  members the target set holds (the scenario's design; never which).

It returns per-candidate ``scores`` (higher = more likely a member) and
``decisions`` (its own threshold or classifier, fitted on shadow data only),
or per-scenario ones for set-dependent attacks, plus a JSON-able ``info``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mibench_core.data.common import to_model_range
from mibench_core.membership.signals import augment, release, softmax


@dataclass
class Reference:
    """One shadow / reference model; ``*_in``: which points it trained on."""

    dir: str
    mode: str  # "offline" (never trained on a candidate) or "online" (trained on half the candidates)
    pop_logits: torch.Tensor  # [A, P, K]
    cand_logits: torch.Tensor  # [A, N, K]
    pop_in: np.ndarray  # bool [P]
    cand_in: np.ndarray  # bool [N]
    _model: Any = None

    def model(self, device: torch.device) -> torch.nn.Module:
        """The model itself (the attacker owns it), loaded on first use."""
        if self._model is None:
            from mibench_core.models.train import load_classifier

            self._model = load_classifier(self.dir, device)
        return self._model


@dataclass
class MIAResult:
    scores: np.ndarray | None  # [N] float, per candidate (None: set-dependent attack)
    decisions: np.ndarray | None  # [N] bool
    per_scenario: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # sid -> scores / decisions
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class MIAContext:
    num_classes: int
    channels: int
    resolution: int
    device: torch.device
    seed: int
    access: str
    top_k: int | None
    oracle: Any  # mibench_core.attacks.oracle.Oracle
    candidates_x: torch.Tensor  # uint8 [N, C, R, R]
    candidates_y: torch.Tensor  # int64 [N]
    population_x: torch.Tensor
    population_y: torch.Tensor
    offline: list[Reference] = field(default_factory=list)
    online: list[Reference] = field(default_factory=list)
    n_augmentations: int = 1  # augmentations precomputed in the references' outputs
    shadow_postprocess: Callable[[torch.Tensor], torch.Tensor] | None = None
    scenarios: dict[str, dict] | None = None  # sid -> {"targets", "reference", "n_members"}
    target_arch: dict = field(default_factory=dict)  # the target's architecture (public knowledge)
    _cache: dict = field(default_factory=dict)

    def rng(self, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed % (2**32), salt])

    def query(self, x_uint8: torch.Tensor, aug: int = 0, batch: int = 2048) -> np.ndarray:
        """The oracle's answers on uint8 images under augmentation ``aug`` (counted): float64 ``[N, K]``
        (probabilities, top-k) or int64 labels ``[N]``."""
        out = []
        for i in range(0, len(x_uint8), batch):
            xb = augment(to_model_range(x_uint8[i : i + batch]).to(self.device), aug)
            ans = self.oracle(xb).cpu()
            out.append(ans if self.access == "label" else ans.double())
        if not out:
            return np.zeros((0,) if self.access == "label" else (0, self.num_classes))
        return torch.cat(out).numpy()

    def query_float(self, x: torch.Tensor, batch: int = 2048) -> np.ndarray:
        """The oracle's answers on images already in model range (noisy neighbours, ...), counted."""
        out = [self.oracle(x[i : i + batch].to(self.device)).cpu() for i in range(0, len(x), batch)]
        return torch.cat(out).numpy().astype(np.int64 if self.access == "label" else np.float64)

    def target_answers(self, aug: int = 0) -> np.ndarray:
        """The oracle's answers on every candidate (queried once per augmentation, then cached)."""
        key = ("cand", aug)
        if key not in self._cache:
            self._cache[key] = self.query(self.candidates_x, aug)
        return self._cache[key]

    def population_answers(self, index: np.ndarray, aug: int = 0) -> np.ndarray:
        """The oracle's answers on population images ``index`` (counted)."""
        return self.query(self.population_x[torch.from_numpy(np.asarray(index, np.int64))], aug)

    def release(self, probs: np.ndarray) -> np.ndarray:
        """Attacker-side view of its own models' probabilities: the API's processing and truncation."""
        return release(probs, self.access, self.top_k, self.shadow_postprocess)

    def shadow_answers(self, ref: Reference, part: str, aug: int = 0) -> np.ndarray:
        """A reference model's answers on the population (``part="pop"``) or the candidates (``"cand"``)."""
        if aug >= self.n_augmentations:
            raise ValueError(
                f"augmentation {aug} requested, the reference models hold {self.n_augmentations} "
                "(raise membership.shadows.augmentations)"
            )
        key = (id(ref), part, aug)
        if key not in self._cache:
            logits = (ref.pop_logits if part == "pop" else ref.cand_logits)[aug]
            self._cache[key] = self.release(softmax(logits))
        return self._cache[key]
