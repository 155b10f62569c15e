"""Query-counting access to the edge part ``f1`` of a split model (the black-box setting).

In the paper's black-box setting the untrusted party can feed inputs to the
trusted edge and observe ``f1`` of them, but knows neither f1's weights nor
its structure. :class:`FeatureOracle` is that access, in the spirit of
:class:`mibench_core.attacks.oracle.Oracle`: every image is one query
(:attr:`FeatureOracle.queries`), an optional ``budget`` is enforced before
``f1`` runs, and every answer is a fresh tensor computed under
``torch.no_grad()`` (no gradient of ``f1`` reaches the attacker). ``f1`` is
held only in a closure under a name-mangled attribute: a guard against
mistakes in attack code, not a security boundary.
"""

from __future__ import annotations

import torch
from torch import nn

from mibench_core.attacks.oracle import QueryBudgetExceeded


class FeatureOracle:
    def __init__(self, f1: nn.Module, budget: int | None = None, batch_size: int = 512):
        if budget is not None and budget < 0:
            raise ValueError(f"oracle budget must be >= 0, got {budget}")
        self.budget = budget
        self._queries = 0
        f1.eval()
        device = next(iter(f1.parameters()), torch.empty(0)).device

        @torch.no_grad()
        def answer(x: torch.Tensor) -> torch.Tensor:
            outs = [
                f1(x[i : i + batch_size].detach().to(device=device, dtype=torch.float32)).detach().clone()
                for i in range(0, len(x), batch_size)
            ]
            return torch.cat(outs).to(x.device)

        self.__answer = answer

    @property
    def queries(self) -> int:
        return self._queries

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or len(x) == 0:
            raise ValueError("feature queries are non-empty image batches [N, C, H, W]")
        if self.budget is not None and self._queries + len(x) > self.budget:
            raise QueryBudgetExceeded(
                f"oracle budget of {self.budget} queries exceeded: {self._queries} used, {len(x)} more requested"
            )
        out = self.__answer(x)
        self._queries += len(x)
        return out

    def __repr__(self) -> str:
        return f"FeatureOracle(queries={self._queries}, budget={self.budget})"
