"""What the metric tests share: a metric context and tiny data; for the metrics with pretrained networks,
tests/conftest.py's fixtures ``homes`` and ``save_expected`` put weight files where the real ones are looked for."""

from __future__ import annotations

import torch

from mibench_core.metrics.common import MetricContext

ALL = "all"  # private_source_index: every private image is its own source row


def metric_ctx(recon, labels, px, py, user_weights=None, dataset="fashion-mnist", label="fashion-mnist",
               extras=None, source_index=ALL, seed=0):  # fmt: skip
    return MetricContext(
        recon=recon,
        recon_labels=labels,
        private_x=px,
        private_y=py,
        eval_model=torch.nn.Identity(),
        device=torch.device("cpu"),
        gen=torch.Generator().manual_seed(seed),
        attack_extras=extras or {},
        private_source_index=torch.arange(len(px)) if source_index is ALL else source_index,
        dataset=dataset,
        dataset_label=label,
        weights=user_weights or {},
    )


def metric_data(res=32, n=2, m=3, classes=(0, 1), seed=0):
    """(reconstructions in [-1, 1], their labels, private uint8 images, their labels): n and m per class."""
    g = torch.Generator().manual_seed(seed)
    px = torch.randint(0, 256, (m * len(classes), 1, res, res), generator=g, dtype=torch.uint8)
    py = torch.tensor([c for c in classes for _ in range(m)])
    recon = torch.rand(n * len(classes), 1, res, res, generator=g) * 2 - 1
    labels = torch.tensor([c for c in classes for _ in range(n)])
    return recon, labels, px, py
