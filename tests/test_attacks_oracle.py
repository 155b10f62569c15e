"""The query-counting oracle: access levels, detachment, counting, budget, hiding the model."""

import pytest
import torch
from torch import nn

from mibench_core.attacks.oracle import Oracle, QueryBudgetExceeded, truncate_top_k


class FixedLogits(nn.Module):
    """Logits = a fixed linear map of the flattened image (known probabilities)."""

    def __init__(self, k: int = 4, pixels: int = 4):
        super().__init__()
        self.fc = nn.Linear(pixels, k, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.arange(k * pixels, dtype=torch.float32).view(k, pixels) / 10 - 0.7)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _x(n=3, requires_grad=False):
    return torch.linspace(-1, 1, n * 4).view(n, 1, 2, 2).requires_grad_(requires_grad)


def test_probabilities_access_returns_softmax_detached():
    model = FixedLogits()
    oracle = Oracle(model, "probabilities")
    x = _x(requires_grad=True)
    p = oracle(x)
    expected = torch.softmax(model(x.detach()), 1)
    assert torch.allclose(p, expected)
    assert not p.requires_grad and p.grad_fn is None
    with pytest.raises(RuntimeError):
        p.sum().backward()  # no path back to the model or the input
    assert x.grad is None


def test_top_k_access_zeroes_all_but_k_largest():
    model = FixedLogits()
    oracle = Oracle(model, "top-k", top_k=2)
    x = _x()
    p = oracle(x)
    full = torch.softmax(model(x), 1)
    assert ((p > 0).sum(1) == 2).all()
    top2 = full.topk(2, 1)
    assert torch.allclose(p.gather(1, top2.indices), top2.values)
    assert torch.allclose(truncate_top_k(full, 2), p)
    assert not p.requires_grad and p.grad_fn is None


def test_label_access_returns_only_int64_labels():
    model = FixedLogits()
    oracle = Oracle(model, "label")
    x = _x(requires_grad=True)
    y = oracle(x)
    assert y.dtype == torch.int64 and y.shape == (3,)
    assert torch.equal(y, model(x.detach()).argmax(1))
    assert not y.requires_grad and y.grad_fn is None


def test_postprocess_runs_before_truncation():
    model = FixedLogits()
    seen = []

    def flip(p):
        seen.append(p.clone())
        return p.flip(1)  # reverses the ranking

    oracle = Oracle(model, "label", postprocess=flip)
    y = oracle(_x())
    assert torch.equal(y, seen[0].argmin(1))
    rounded = Oracle(model, "probabilities", postprocess=lambda p: p.mul(10).round().div(10))(_x())
    assert torch.allclose(rounded * 10, (rounded * 10).round())


def test_counts_each_image_and_per_slot():
    oracle = Oracle(FixedLogits(), "probabilities")
    oracle(_x(3))
    oracle(_x(2), slots=torch.tensor([1, 1]))
    oracle(_x(3), slots=torch.tensor([0, 2, 2]))
    assert oracle.queries == 8
    assert oracle.shared_queries == 3
    assert oracle.slot_counts(3).tolist() == [1, 2, 2]
    per = oracle.per_reconstruction(3, extra_shared=3)
    assert per.tolist() == [3.0, 4.0, 4.0]
    assert per.sum().item() == oracle.queries + 3


def test_budget_is_enforced_before_the_model_runs():
    calls = []

    class Spy(FixedLogits):
        def forward(self, x):
            calls.append(len(x))
            return super().forward(x)

    oracle = Oracle(Spy(), "label", budget=5)
    oracle(_x(3))
    with pytest.raises(QueryBudgetExceeded, match="budget of 5"):
        oracle(_x(3))
    assert calls == [3] and oracle.queries == 3
    oracle(_x(2))
    assert oracle.remaining == 0


def test_model_not_reachable_by_attribute():
    model = FixedLogits()
    oracle = Oracle(model, "probabilities")
    for name in ("model", "target", "net", "module", "_model", "_Oracle__model"):
        assert not hasattr(oracle, name)
    for value in vars(oracle).values():
        assert not isinstance(value, nn.Module)
    assert oracle.num_classes == 4


def test_bad_arguments():
    with pytest.raises(ValueError, match="not one of"):
        Oracle(FixedLogits(), "logits")
    with pytest.raises(ValueError, match="top_k"):
        Oracle(FixedLogits(), "top-k")
    with pytest.raises(ValueError, match="exceeds"):
        Oracle(FixedLogits(), "top-k", top_k=5)
    with pytest.raises(ValueError, match="only meaningful"):
        Oracle(FixedLogits(), "label", top_k=2)
