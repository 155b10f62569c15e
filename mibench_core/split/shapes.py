"""Shape check of the split-inference track before any job (torch, imported only when the track is on).

Every split target is built on torch's ``meta`` device (no memory, no
weights) at the resolution and channels of each dataset it is trained on,
and a meta batch is passed through the whole model, through ``f1`` and
``f2`` of every configured split point, through the shadow's alternative
edge at that point and through the inverse network's decoder. An
architecture that cannot take the data (LeNet's two valid 5x5 convolutions
and two poolings need 16x16 images; the CIFAR CNN needs a multiple of 8)
is reported with the config key of the target and the dataset, so the run
stops before its first job instead of at its first split job.
"""

from __future__ import annotations


def problems(cfg: dict) -> list[str]:
    """One line per (split target, dataset) whose networks cannot take the dataset's images."""
    sec = cfg.get("split_inference") or {}
    if not sec.get("targets"):
        return []
    import torch

    from mibench_core.models.classifiers import build
    from mibench_core.split.inverse_net import build_decoder

    datasets = {d["label"]: d for d in sec.get("datasets") or []}
    out = []
    for i, tgt in enumerate(sec["targets"]):
        for label in tgt.get("datasets") or []:
            ds = datasets.get(label)
            if ds is None:
                continue
            res, ch = ds["resolution"], ds.get("channels", 1)
            n_classes = max(2, len((ds.get("split") or {}).get("private_classes") or []) or 2)
            point = None
            try:
                with torch.device("meta"):
                    model = build(tgt["arch"], tgt["arch_params"], n_classes, ch, res)
                    x = torch.empty(2, ch, res, res)
                    model(x)
                    for point in tgt["split_points"]:
                        f1, f2 = model.split(point)
                        h = f1(x)
                        f2(h)
                        if model.alternative_f1(point)(x).shape != h.shape:
                            raise ValueError("the alternative edge's features differ in shape from f1's")
                        y = build_decoder(tgt["arch"], point, (ch, res, res))(h)
                        if y.shape != x.shape:
                            raise ValueError(f"the inverse network's decoder gives {tuple(y.shape[1:])}")
            except (ValueError, RuntimeError) as exc:
                where = f" at split point {point!r}" if point else ""
                out.append(
                    f"config key 'split_inference.targets[{i}]': {tgt['arch']!r}{where} cannot take dataset "
                    f"{label!r} ({ch}x{res}x{res} images): {exc}; give the track a dataset it can take "
                    "(split_inference.datasets, or the target's datasets) or turn it off (split_inference: "
                    "{targets: []})"
                )
    return out
