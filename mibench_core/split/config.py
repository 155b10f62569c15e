"""Validation of the ``split_inference`` config section (stdlib only; called by mibench_core.config).

The JSON schema fixes the structure; here the names and values: datasets
(as the top-level ones), split architectures and their split points (the
valid names are in each architecture's registry entry), defense labels,
techniques and their knowledge settings. Per-split-point parameters (dict
defaults such as rMLE's ``lambda_tv``) are merged key by key over the
technique's defaults and must give a value at every configured split point.
The section is normalised in place: ``datasets`` becomes the list of dataset
entries the track uses, split points get their canonical spelling, and every
technique entry becomes ``{name, label, params}``.
"""

from __future__ import annotations

import copy
from typing import Any

from mibench_core import registry
from mibench_core.split.settings import DATA_SOURCES, LABELLED_SOURCES, SELECT_SOURCES, STRUCTURES, resolve

# Defenses whose models the split stage cannot cut at a layer of the architecture: MID wraps the features
# in a bottleneck with its own head, so f2 would not be the architecture's remaining layers.
UNSPLITTABLE_DEFENSES = {"mid": "MID wraps the model in a variational bottleneck with its own head"}


def _err(key: str, msg: str):
    from mibench_core.config import ConfigError

    return ConfigError(f"config key '{key}': {msg}")


def split_archs() -> dict[str, registry.Entry]:
    return {n: e for n, e in registry.REGISTRIES["arch"].items() if e.split_points}


def _check_datasets(sec: dict, cfg: dict) -> list[dict]:
    from mibench_core.config import _check_name, _fill_defaults, load_schema

    if sec.get("datasets") is None:
        return cfg["datasets"]
    schema = load_schema()
    item_schema = schema["properties"]["datasets"]["items"]
    out = []
    top = {d["label"]: d for d in cfg["datasets"]}
    for i, ds in enumerate(sec["datasets"]):
        key = f"split_inference.datasets[{i}]"
        ds = _fill_defaults(copy.deepcopy(ds), item_schema, schema)
        _check_name("dataset", ds["name"], ["split_inference", "datasets", i, "name"])
        split = ds["split"]
        if split["mode"] == "class-disjoint":
            priv, pub = split["private_classes"], split["public_classes"]
            if not priv or not pub:
                raise _err(f"{key}.split", "class-disjoint mode needs both private_classes and public_classes")
            if set(priv) & set(pub):
                raise _err(f"{key}.split.public_classes", f"overlaps private_classes ({sorted(set(priv) & set(pub))})")
        ds.setdefault("label", ds["name"])
        if any(d["label"] == ds["label"] for d in out):
            raise _err(f"{key}.label", f"label {ds['label']!r} is used twice; give one a distinct 'label'")
        other = top.get(ds["label"])
        strip = ("label", "root", "download")
        if other is not None and {k: v for k, v in other.items() if k not in strip} != {
            k: v for k, v in ds.items() if k not in strip
        }:
            raise _err(f"{key}.label", f"label {ds['label']!r} names a different top-level dataset; rename one")
        out.append(ds)
    return out


def _check_targets(sec: dict, cfg: dict, dataset_labels: list[str]) -> None:
    from mibench_core.config import _check_params

    archs = split_archs()
    seen: dict[str, int] = {}
    ev = cfg["evaluation"]
    for i, tgt in enumerate(sec["targets"]):
        key = f"split_inference.targets[{i}]"
        entry = archs.get(tgt["arch"])
        if entry is None:
            raise _err(f"{key}.arch", f"{tgt['arch']!r} is not a split architecture; valid: {', '.join(sorted(archs))}")
        tgt["arch_params"] = _check_params(
            tgt["arch_params"], entry, ["split_inference", "targets", i, "arch_params"], ()
        )
        if tgt["arch"] == ev["arch"] and tgt["arch_params"] == ev["arch_params"]:
            raise _err(f"{key}.arch", "the evaluation model must be a different architecture from the target")
        canon = {p.lower(): p for p in entry.split_points}
        points = []
        for j, p in enumerate(tgt["split_points"]):
            if p.lower() not in canon:
                raise _err(
                    f"{key}.split_points[{j}]",
                    f"{tgt['arch']!r} has no split point {p!r}; valid: {', '.join(entry.split_points)}",
                )
            if canon[p.lower()] in points:
                raise _err(f"{key}.split_points[{j}]", f"split point {p!r} is listed twice")
            points.append(canon[p.lower()])
        tgt["split_points"] = sorted(points, key=entry.split_points.index)  # shallow to deep
        label = tgt.setdefault("label", tgt["arch"])
        if label in {t["label"] for t in cfg["targets"]}:
            raise _err(f"{key}.label", f"label {label!r} is also a top-level target's; give this one another")
        if label in seen:
            raise _err(f"{key}.label", f"label {label!r} is also used by targets[{seen[label]}]")
        seen[label] = i
        for j, ds in enumerate(tgt.setdefault("datasets", list(dataset_labels))):
            if ds not in dataset_labels:
                raise _err(
                    f"{key}.datasets[{j}]", f"no dataset labelled {ds!r}; configured: {', '.join(dataset_labels)}"
                )


def _check_defenses(sec: dict, cfg: dict) -> None:
    """Labels of top-level defenses; ``none`` (plain training) is always available."""
    by_label = {"none": {"name": "none", "label": "none", "params": {}}}
    by_label.update({d["label"]: d for d in cfg["defenses"]})
    for i, label in enumerate(sec["defenses"]):
        key = f"split_inference.defenses[{i}]"
        if label not in by_label:
            raise _err(key, f"no defense labelled {label!r}; configured: {', '.join(by_label)}")
        why = UNSPLITTABLE_DEFENSES.get(by_label[label]["name"])
        if why:
            raise _err(key, f"defense {label!r} does not apply to split inference: {why}")
    if len(set(sec["defenses"])) != len(sec["defenses"]):
        raise _err("split_inference.defenses", "a defense label is listed twice")
    sec["defense_entries"] = {label: by_label[label] for label in sec["defenses"]}


def _merge_per_point(params: dict, entry: registry.Entry, key: str, user: dict) -> None:
    """Per-split-point parameters: the user's dict merged over the default dict, keys checked."""
    archs = split_archs()
    points = {p for e in archs.values() for p in e.split_points}
    for name, default in entry.defaults.items():
        if not isinstance(default, dict):
            continue
        given = user.get(name)
        if given is None:
            continue
        if not isinstance(given, dict):  # one value at every split point
            if isinstance(given, bool) or not isinstance(given, (int, float)):
                raise _err(f"{key}.{name}", f"expected a number or a dict by split point, got {given!r}")
            params[name] = float(given)
            continue
        for k, v in given.items():
            arch, _, point = k.rpartition(":")
            ok = k == "default" or (not arch and k in points) or (arch in archs and point in archs[arch].split_points)
            if not ok:
                raise _err(
                    f"{key}.{name}.{k}",
                    "expected 'default', a split point or '<arch>:<split point>' "
                    f"(split architectures: {', '.join(sorted(archs))})",
                )
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise _err(f"{key}.{name}.{k}", f"expected a number, got {v!r}")
        params[name] = {**default, **{k: float(v) for k, v in given.items()}}


def _check_attacks(sec: dict) -> None:
    from mibench_core.config import _check_name, _check_params

    seen: dict[str, int] = {}
    for i, item in enumerate(sec["attacks"]):
        key = f"split_inference.attacks[{i}]"
        entry = _check_name("split_attack", item["name"], ["split_inference", "attacks", i, "name"])
        per_point = {k for k, v in entry.defaults.items() if isinstance(v, dict)}
        plain = {k: v for k, v in item.items() if k not in per_point}
        params = _check_params(plain, entry, ["split_inference", "attacks", i], ())
        _merge_per_point(params, entry, key, item)
        if "data" in params:
            allowed = LABELLED_SOURCES if entry.access == "query-free" else DATA_SOURCES
            if params["data"] not in allowed:
                why = " (the shadow model is trained on labels)" if entry.access == "query-free" else ""
                raise _err(f"{key}.data", f"{params['data']!r} is not one of {', '.join(allowed)}{why}")
            if params["data"] == "noise" and not params.get("samples"):
                raise _err(f"{key}.samples", "noise queries need a number of samples")
        if "lambda_tv_grid" in params:
            grid = params["lambda_tv_grid"]
            if not grid or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in grid):
                raise _err(f"{key}.lambda_tv_grid", f"expected a non-empty list of weights >= 0, got {grid!r}")
            params["lambda_tv_grid"] = [float(v) for v in grid]
        if "select_data" in params and params["select_data"] not in SELECT_SOURCES:
            raise _err(
                f"{key}.select_data",
                f"{params['select_data']!r} is not one of {', '.join(SELECT_SOURCES)} (the attacker's own images)",
            )
        if "structure" in params and params["structure"] not in STRUCTURES:
            raise _err(f"{key}.structure", f"{params['structure']!r} is not one of {', '.join(STRUCTURES)}")
        label = item.get("label") or "-".join(
            [item["name"]] + [str(params[k]) for k in ("data", "structure") if k in params]
        )
        if label in seen:
            raise _err(f"{key}.label", f"label {label!r} is also used by attacks[{seen[label]}]; give one a 'label'")
        seen[label] = i
        sec["attacks"][i] = {"name": item["name"], "label": label, "params": params}


def _check_resolvable(sec: dict) -> None:
    for i, atk in enumerate(sec["attacks"]):
        for name, value in atk["params"].items():
            for tgt in sec["targets"]:
                for point in tgt["split_points"]:
                    try:
                        resolve(value, tgt["arch"], point)
                    except KeyError as exc:
                        raise _err(f"split_inference.attacks[{i}].{name}", exc.args[0]) from None


def validate_split(cfg: dict) -> None:
    """Check and normalise ``cfg['split_inference']`` in place (raises ConfigError naming the key)."""
    sec: dict[str, Any] = cfg["split_inference"]
    if not sec["targets"]:  # the track is off (an overlay turns it off with `targets: []`)
        sec.update(datasets=[], attacks=[])
        return
    if not sec["attacks"]:
        raise _err("split_inference.attacks", "split targets are configured but no technique")
    sec["datasets"] = _check_datasets(sec, cfg)
    _check_targets(sec, cfg, [d["label"] for d in sec["datasets"]])
    _check_defenses(sec, cfg)
    _check_attacks(sec)
    _check_resolvable(sec)
