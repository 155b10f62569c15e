"""Attack accuracy: the evaluation model's top-1 (and top-5) accuracy on
reconstructions labelled with the class they were made for (Zhang et al. 2020).
Acc@5 is reported only with more than 5 classes; otherwise it is missing
with that reason, since it would trivially be 1."""

from __future__ import annotations

from mibench_core.metrics.common import MetricContext, MetricResult
from mibench_core.metrics.functional import topk_accuracy

METHODS = [
    {
        "name": "accuracy",
        "kind": "metric",
        "call": "compute",
        "description": "Acc@1 (and Acc@5 with more than 5 classes) of the evaluation model on reconstructions",
        "columns": {
            "acc1": {"label": "Acc@1 (eval model)", "better": "higher", "meaning": "stronger attack"},
            "acc5": {"label": "Acc@5 (eval model)", "better": "higher", "meaning": "stronger attack"},
        },
    }
]


def compute(ctx: MetricContext) -> MetricResult:
    _, logits = ctx.recon_eval()
    n_classes = logits.shape[1]
    res = MetricResult()
    # float64: a float32 mean (0.2 -> 0.20000000298) would sit outside its float64 interval
    acc1 = topk_accuracy(logits, ctx.recon_labels, 1).double()
    acc5 = topk_accuracy(logits, ctx.recon_labels, 5).double() if n_classes > 5 else None
    for c in ctx.classes:
        m = ctx.recon_labels == c
        res.per_class[c] = {"acc1": acc1[m].mean().item()}
        if acc5 is not None:
            res.per_class[c]["acc5"] = acc5[m].mean().item()
    res.overall["acc1"] = acc1.mean().item()
    res.per_sample["acc1"] = acc1
    if acc5 is not None:
        res.overall["acc5"] = acc5.mean().item()
        res.per_sample["acc5"] = acc5
    else:
        res.set_missing("acc5", f"only {n_classes} classes: top-5 accuracy needs more than 5")
    return res
