"""Knowledge settings of the split-inference track and per-split-point parameters (stdlib only).

Shared by the config check (:mod:`mibench_core.split.config`), the plan and
the techniques, so that Snakefile parsing imports no torch.
"""

from __future__ import annotations

from typing import Any

# The attacker's data: the target's training set; other images of the same distribution (the private
# validation split: labelled, never trained on, never a victim); the public split (other classes under the
# class-disjoint protocol, unlabelled); standard Gaussian noise images.
DATA_SOURCES = ("train", "heldout", "public", "noise")
SELECT_SOURCES = ("train", "heldout", "public")  # images rMLE's attacker chooses its TV weight on
LABELLED_SOURCES = ("train", "heldout")
STRUCTURES = ("same", "alternative")  # the query-free shadow's edge structure


def resolve(value: Any, arch: str, point: str) -> Any:
    """A per-split-point parameter's value at ``point`` of ``arch``.

    A dict is looked up by ``"<arch>:<point>"``, then ``"<point>"``, then ``"default"``; anything else is
    the same at every point. Raises KeyError when a dict has none of the three keys."""
    if not isinstance(value, dict):
        return value
    for key in (f"{arch}:{point}", point, "default"):
        if key in value:
            return value[key]
    raise KeyError(f"no value for split point {point!r} of {arch!r} (keys: {', '.join(sorted(value))})")
