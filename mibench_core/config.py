"""Config validation: JSON schema for structure, the registries for names.

Runs while Snakemake parses the workflow (before any job), so it imports no
torch. Every error names the offending key, e.g.
``config key 'attacks[0].name': unknown attack 'gmx'; valid: gmi``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mibench_core import registry

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """An invalid configuration; the message names the key."""


def load_schema() -> dict:
    import yaml

    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _key(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref:
        node: Any = root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return _resolve(node, root)
    return schema


def _fill_defaults(value: Any, schema: dict, root: dict) -> Any:
    schema = _resolve(schema, root)
    for sub in schema.get("allOf", []):
        value = _fill_defaults(value, sub, root)
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            sub_r = _resolve(sub, root)
            if name not in value and "default" in sub_r:
                value[name] = copy.deepcopy(sub_r["default"])
            if name in value:
                value[name] = _fill_defaults(value[name], sub_r, root)
    elif isinstance(value, list) and "items" in schema:
        value = [_fill_defaults(v, schema["items"], root) for v in value]
    return value


def _check_params(params: dict, entry: registry.Entry, path: list[Any], extra: tuple[str, ...]) -> dict:
    """Merge an entry's paper defaults under the config's params, rejecting unknown keys."""
    merged = copy.deepcopy(entry.defaults)
    for key, val in params.items():
        if key in ("name", "label", *extra):
            continue
        if val is None and key not in entry.defaults:
            # null unsets a key inherited from config/config.yaml (config files merge dicts),
            # e.g. the default evaluation model's `width` under a paper config's other architecture
            continue
        if key not in entry.defaults:
            valid = ", ".join(sorted(entry.defaults)) or "(none)"
            raise ConfigError(
                f"config key '{_key(path + [key])}': {entry.kind} {entry.name!r} has no parameter "
                f"{key!r}; valid: {valid}"
            )
        default = entry.defaults[key]
        if default is not None and val is not None:
            ok = isinstance(val, type(default)) or (isinstance(default, float) and isinstance(val, int))
            if isinstance(default, (int, float)) and isinstance(val, bool):
                ok = isinstance(default, bool)
            if not ok:
                raise ConfigError(f"config key '{_key(path + [key])}': expected {type(default).__name__}, got {val!r}")
            if isinstance(default, float):
                val = float(val)
        merged[key] = val
    return merged


def _check_name(kind: str, name: str, path: list[Any]) -> registry.Entry:
    try:
        return registry.get(kind, name)
    except KeyError as exc:
        raise ConfigError(f"config key '{_key(path)}': {exc.args[0]}") from None


def _labels(items: list[dict], key: str, section: str) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        label = item.setdefault("label", str(item[key]))
        if label in seen:
            raise ConfigError(
                f"config key '{section}[{i}].label': label {label!r} is also used by "
                f"{section}[{seen[label]}]; give one of them a distinct 'label'"
            )
        seen[label] = i


def _check_aux(atk: dict, entry: registry.Entry, i: int, prior_by_label: dict) -> None:
    """``aux``: one prior label per auxiliary artifact kind the attack's entry names, in order."""
    aux = atk.get("aux") or []
    if not isinstance(aux, list) or not all(isinstance(a, str) for a in aux):
        raise ConfigError(f"config key 'attacks[{i}].aux': expected a list of prior labels, got {aux!r}")
    if len(aux) != len(entry.aux):
        want = ", ".join(entry.aux) or "none"
        raise ConfigError(
            f"config key 'attacks[{i}].aux': attack {atk['name']!r} takes {len(entry.aux)} auxiliary "
            f"prior(s) ({want}); got {len(aux)}"
        )
    for j, (label, kind) in enumerate(zip(aux, entry.aux)):
        prior = prior_by_label.get(label)
        if prior is None:
            raise ConfigError(
                f"config key 'attacks[{i}].aux[{j}]': no prior labelled {label!r}; "
                f"configured: {', '.join(sorted(prior_by_label))}"
            )
        if prior["name"] != kind:
            raise ConfigError(
                f"config key 'attacks[{i}].aux[{j}]': attack {atk['name']!r} needs a {kind!r} here, "
                f"but {label!r} is a {prior['name']!r}"
            )


def validate(config: dict) -> dict:
    """Return a normalized deep copy of ``config`` or raise :class:`ConfigError`."""
    import jsonschema

    schema = load_schema()
    cfg = copy.deepcopy(dict(config))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"config key '{_key(list(err.absolute_path))}': {err.message}{more}")
    cfg = _fill_defaults(cfg, schema, schema)

    for i, ds in enumerate(cfg["datasets"]):
        _check_name("dataset", ds["name"], ["datasets", i, "name"])
        split = ds["split"]
        if split["mode"] == "class-disjoint":
            priv, pub = split["private_classes"], split["public_classes"]
            if not priv or not pub:
                raise ConfigError(
                    f"config key 'datasets[{i}].split': class-disjoint mode needs both "
                    "private_classes and public_classes"
                )
            if set(priv) & set(pub):
                raise ConfigError(
                    f"config key 'datasets[{i}].split.public_classes': overlaps private_classes "
                    f"({sorted(set(priv) & set(pub))}); class-disjoint means disjoint"
                )
    _labels(cfg["datasets"], "name", "datasets")

    for section in ("targets",):
        for i, clf in enumerate(cfg[section]):
            entry = _check_name("arch", clf["arch"], [section, i, "arch"])
            clf["arch_params"] = _check_params(clf["arch_params"], entry, [section, i, "arch_params"], ())
        _labels(cfg[section], "arch", section)
    ev = cfg["evaluation"]
    entry = _check_name("arch", ev["arch"], ["evaluation", "arch"])
    ev["arch_params"] = _check_params(ev["arch_params"], entry, ["evaluation", "arch_params"], ())
    ev.setdefault("label", ev["arch"])
    for i, clf in enumerate(cfg["targets"]):
        if clf["arch"] == ev["arch"] and clf["arch_params"] == ev["arch_params"]:
            raise ConfigError(
                f"config key 'evaluation.arch': the evaluation model must be a different "
                f"architecture from the target (targets[{i}] is also {ev['arch']!r})"
            )

    for section, kind, extra in (
        ("defenses", "defense", ("targets", "datasets")),
        ("priors", "prior", ()),
        ("attacks", "attack", ("prior", "aux")),
        ("metrics", "metric", ()),
    ):
        for i, item in enumerate(cfg[section]):
            entry = _check_name(kind, item["name"], [section, i, "name"])
            params = _check_params(item, entry, [section, i], extra)
            cfg[section][i] = {
                "name": item["name"],
                **({"label": item["label"]} if "label" in item else {}),
                **{k: item[k] for k in extra if k in item},
                "params": params,
            }
        _labels(cfg[section], "name", section)

    from mibench_core import weights

    for name in cfg.get("weights", {}):
        if name not in weights.KNOWN:
            raise ConfigError(
                f"config key 'weights.{name}': unknown weight file; known: {', '.join(sorted(weights.KNOWN))}"
            )

    _check_defense_scopes(cfg)
    _check_output_defenses(cfg)

    prior_by_label = {p["label"]: p for p in cfg["priors"]}
    for i, atk in enumerate(cfg["attacks"]):
        entry = registry.get("attack", atk["name"])
        _check_aux(atk, entry, i, prior_by_label)
        if not entry.priors:
            if atk.get("prior") is not None:
                raise ConfigError(f"config key 'attacks[{i}].prior': attack {atk['name']!r} uses no prior")
            continue
        if atk.get("prior") is None:
            raise ConfigError(
                f"config key 'attacks[{i}].prior': attack {atk['name']!r} needs a prior "
                f"({' or '.join(entry.priors)}); configured: {', '.join(sorted(prior_by_label))}"
            )
        prior = prior_by_label.get(atk["prior"])
        if prior is None:
            raise ConfigError(
                f"config key 'attacks[{i}].prior': no prior labelled {atk['prior']!r}; "
                f"configured: {', '.join(sorted(prior_by_label))}"
            )
        if prior["name"] not in entry.priors:
            raise ConfigError(
                f"config key 'attacks[{i}].prior': attack {atk['name']!r} needs a prior of kind "
                f"{' or '.join(entry.priors)}, but {atk['prior']!r} is a {prior['name']!r}"
            )
    from mibench_core.split.config import validate_split

    validate_split(cfg)  # the split-inference track's section
    return cfg


def _check_scope(value, key: str, known: list[str], section: str) -> None:
    """An optional scope (a list of labels of ``section``) must name configured labels."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"config key '{key}': expected a non-empty list of {section} labels")
    for label in value:
        if label not in known:
            raise ConfigError(
                f"config key '{key}': no {section[:-1]} labelled {label!r}; configured: {', '.join(known)}"
            )


def _check_defense_scopes(cfg: dict) -> None:
    """A defense's optional ``targets`` / ``datasets`` lists must name configured labels."""
    for i, dfn in enumerate(cfg["defenses"]):
        for section in ("targets", "datasets"):
            if section in dfn:
                known = [item["label"] for item in cfg[section]]
                _check_scope(dfn[section], f"defenses[{i}].{section}", known, section)


def _check_output_defenses(cfg: dict) -> None:
    """Output processing entries: registry entries of kind ``output`` (mibench_core/defenses/output.py)."""
    for i, item in enumerate(cfg["output_defenses"]):
        entry = _check_name("output", item["name"], ["output_defenses", i, "name"])
        name = entry.name
        params = _check_params(item, entry, ["output_defenses", i], ("defenses",))
        cfg["output_defenses"][i] = {"name": name, **({"label": item["label"]} if "label" in item else {}),
                                     "params": params}  # fmt: skip
        if "defenses" in item:  # only against targets trained with these defenses (labels)
            known = [d["label"] for d in cfg["defenses"]]
            _check_scope(item["defenses"], f"output_defenses[{i}].defenses", known, "defenses")
            cfg["output_defenses"][i]["defenses"] = item["defenses"]
    for item in cfg["output_defenses"]:
        if "label" not in item:
            p = item["params"]
            item["label"] = item["name"] + "".join(str(v) for _, v in sorted(p.items())).replace(".", "p")
    _labels(cfg["output_defenses"], "name", "output_defenses")
