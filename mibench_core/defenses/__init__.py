"""Defenses against model inversion.

Training-time defenses (one module each, registered in
``mibench_core.registry.DEFENSES``) are :class:`mibench_core.models.train.Defense`
subclasses: a defended target is an ordinary target artifact whose spec
carries the defense. Output processing for black-box attacks lives in
:mod:`mibench_core.defenses.output` and is applied by the query oracle.

This package's ``__init__`` stays stdlib-only: the plan and the config
validation read :data:`OUTPUT_PROCESSING` while Snakemake parses the workflow.
"""

from __future__ import annotations

# Output processing (black-box only): name -> (defaults, description).
OUTPUT_PROCESSING: dict[str, tuple[dict, str]] = {
    "topk": ({"k": 1}, "keep the k largest probabilities, zero the rest (not renormalised)"),
    "rounding": ({"decimals": 2}, "round every probability to a number of decimals"),
    "noise": ({"std": 0.01}, "add N(0, std^2) noise to the probabilities, clip to [0, 1], renormalise"),
    "label_only": ({}, "return only the predicted label, as a one-hot vector"),
}
