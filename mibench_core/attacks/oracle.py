"""The query-counting oracle through which black-box and label-only attacks see the target.

A black-box adversary against an API sees only what the API returns. The
:class:`Oracle` wraps the target classifier and answers image queries at one
access level:

* ``"probabilities"``: the softmax vector;
* ``"top-k"``: the softmax vector with all but the ``top_k`` largest entries
  set to 0 (the API publishes only the k most likely classes);
* ``"label"``: the predicted class (int64), nothing else.

Every answer is a fresh, detached tensor computed under ``torch.no_grad()``:
it has ``requires_grad=False`` and no ``grad_fn`` even when the query
requires gradients, so no gradient of the target can flow back to an attack.
Each image is one query; :attr:`Oracle.queries` counts them, and a query that
would exceed ``budget`` raises :class:`QueryBudgetExceeded` before the target
runs. An optional ``postprocess`` callable is applied to the probability
tensor before the access truncation (output-processing defenses: rounding,
noise); the label of ``"label"`` access is the arg-max of the post-processed
vector.

The target model is held only inside a closure stored under a name-mangled
attribute, so no attack reaches it by ordinary attribute access
(``oracle.model``, ``oracle.target`` ... do not exist). This is a guard
against *mistakes* in attack code, not a security boundary: Python code in
the same process can always dig it out (``__closure__``, ``gc``).

Per-reconstruction accounting: a query may name the reconstruction slots it
serves (``oracle(x, slots=...)``, one slot id per image); :meth:`slot_counts`
then returns how many queries each slot used. Queries without slots (shared
work: an initial latent search, training a surrogate) are counted in
:attr:`queries` and :attr:`shared_queries`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ACCESS_LEVELS = ("probabilities", "top-k", "label")


class QueryBudgetExceeded(RuntimeError):
    """A query would take the oracle past its budget."""


def truncate_top_k(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest entries of each row, set the others to 0."""
    idx = probs.topk(k, dim=1).indices
    return torch.zeros_like(probs).scatter_(1, idx, probs.gather(1, idx))


class Oracle:
    """Query access to a classifier at one access level (see the module docstring)."""

    def __init__(
        self,
        model: torch.nn.Module,
        access: str,
        top_k: int | None = None,
        budget: int | None = None,
        postprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        num_classes: int | None = None,
        batch_size: int = 512,
    ):
        if access not in ACCESS_LEVELS:
            raise ValueError(f"oracle access {access!r} is not one of {', '.join(ACCESS_LEVELS)}")
        if access == "top-k":
            if top_k is None or top_k < 1:
                raise ValueError("oracle access 'top-k' needs top_k >= 1")
        elif top_k is not None:
            raise ValueError(f"top_k is only meaningful with access 'top-k', not {access!r}")
        if budget is not None and budget < 0:
            raise ValueError(f"oracle budget must be >= 0, got {budget}")
        if num_classes is None:
            linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
            if not linears:
                raise ValueError("cannot infer num_classes from the model; pass it")
            num_classes = linears[-1].out_features
        if top_k is not None and top_k > num_classes:
            raise ValueError(f"top_k={top_k} exceeds the number of classes ({num_classes})")
        self.access = access
        self.top_k = top_k
        self.budget = budget
        self.num_classes = int(num_classes)
        self._queries = 0
        self._shared = 0
        self._slot_counts: dict[int, int] = {}
        self.__answer = _make_answer(model, access, top_k, postprocess, batch_size, self.num_classes)

    @property
    def queries(self) -> int:
        """Images queried so far."""
        return self._queries

    @property
    def shared_queries(self) -> int:
        """Images queried without naming a reconstruction slot."""
        return self._shared

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self._queries

    def __call__(self, x: torch.Tensor, slots: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError("oracle queries are image batches [N, C, H, W]")
        n = len(x)
        if slots is not None and len(slots) != n:
            raise ValueError(f"slots has {len(slots)} entries for {n} images")
        if self.budget is not None and self._queries + n > self.budget:
            raise QueryBudgetExceeded(
                f"oracle budget of {self.budget} queries exceeded: {self._queries} used, {n} more requested"
            )
        out = self.__answer(x)
        self._queries += n
        if slots is None:
            self._shared += n
        else:
            for s, c in zip(*torch.unique(slots.detach().cpu(), return_counts=True)):
                self._slot_counts[int(s)] = self._slot_counts.get(int(s), 0) + int(c)
        return out

    def slot_counts(self, n_slots: int) -> torch.Tensor:
        """Queries made for each slot 0..n_slots-1 (int64)."""
        return torch.tensor([self._slot_counts.get(i, 0) for i in range(n_slots)], dtype=torch.int64)

    def per_reconstruction(self, n_slots: int, extra_shared: int = 0) -> torch.Tensor:
        """Each slot's own queries plus an equal share of the shared ones (float64).

        Sums to ``queries + extra_shared`` when every slotted query named a slot
        below ``n_slots``; ``extra_shared`` adds queries spent elsewhere (a prior
        trained through its own oracle).
        """
        share = (self._shared + extra_shared) / max(n_slots, 1)
        return self.slot_counts(n_slots).double() + share

    def __repr__(self) -> str:
        k = f", top_k={self.top_k}" if self.top_k is not None else ""
        return f"Oracle(access={self.access!r}{k}, queries={self._queries}, budget={self.budget})"


def _make_answer(
    model: torch.nn.Module,
    access: str,
    top_k: int | None,
    postprocess: Callable[[torch.Tensor], torch.Tensor] | None,
    batch_size: int,
    num_classes: int,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The closure that holds the model; returns detached answers on the query's device."""
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device

    @torch.no_grad()
    def answer(x: torch.Tensor) -> torch.Tensor:
        outs = []
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].detach().to(device=device, dtype=torch.float32)
            probs = F.softmax(model(xb).float(), dim=1)
            if postprocess is not None:
                probs = postprocess(probs)
            if access == "label":
                outs.append(probs.argmax(1).to(torch.int64))
            elif access == "top-k":
                outs.append(truncate_top_k(probs, top_k))
            else:
                outs.append(probs)
        if not outs:
            shape = (0,) if access == "label" else (0, num_classes)
            return torch.zeros(shape, dtype=torch.int64 if access == "label" else torch.float32, device=x.device)
        return torch.cat(outs).detach().clone().to(x.device)

    return answer


def build_oracle(
    target_dir: str | Path,
    access: str,
    device: torch.device | str = "cpu",
    top_k: int | None = None,
    budget: int | None = None,
    postprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Oracle:
    """An oracle on a target artifact. The loaded model never leaves this function."""
    from mibench_core import store
    from mibench_core.models.train import load_classifier

    info = store.read_manifest(target_dir)["results"]
    model = load_classifier(target_dir, device)
    return Oracle(model, access, top_k=top_k, budget=budget, postprocess=postprocess, num_classes=info["num_classes"])
