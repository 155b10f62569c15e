"""Config validation: JSON schema for structure, the registries for names.

Runs while Snakemake parses the workflow (before any job), so it imports no
torch. Every error names the offending key, e.g.
``config key 'attacks[0].name': unknown attack 'gmx'; valid: gmi``.

Numbers: a string that reads as a number where a number is expected is that
number (YAML 1.1, which PyYAML and Snakemake follow, reads ``1e-3`` as a
string); an integral float where an integer is expected is that integer
(``1e3`` iterations); NaN and infinities are refused everywhere. A method's
parameters are checked against its registry entry's ``bounds`` (interval
notation: ``"[1, inf)"``, ``"(0, inf)"``, ``"[0, 1)"``; a parameter whose
default is null may be null, and a bound with integer endpoints makes it an
integer).

:func:`checked` is what the Snakefile and ``mibench plan|show|verify`` run:
validation, then the preflight (mibench_core/preflight.py), raising one
:class:`ConfigError` whose message both print.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

from mibench_core import registry

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """An invalid configuration; the message names the key (or the file, and line)."""


def load_yaml(path: str | Path) -> dict:
    """One config file as a mapping; :class:`ConfigError` naming the file (and line) otherwise."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster on paper-scale grids
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path}{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from None
    if data is None:
        raise ConfigError(f"config file {path} is empty: a config file is a mapping of keys (see config/README.md)")
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path}: the top level must be a mapping of keys (seed:, datasets:, ...), "
            f"not a {type(data).__name__}"
        )
    return data


def checked(config: dict, workdir: str | Path | None = None) -> dict:
    """Validate, then preflight, a merged config: the normalized config or one :class:`ConfigError`."""
    from mibench_core import preflight

    try:
        cfg = validate(config)
    except ConfigError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    try:
        preflight.check(cfg, workdir)
    except preflight.PreflightError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def as_number(val: Any) -> Any:
    """``val`` as a float when it is a string that reads as a number (``"1e-3"``), else unchanged."""
    if isinstance(val, str) and NUMBER.match(val.strip()):
        return float(val)
    return val


def _coerce_numbers(value: Any, schema: dict, root: dict) -> Any:
    """Numbers written as strings become numbers, integral floats integers, where the schema wants them."""
    schema = _resolve(schema, root)
    types = schema.get("type")
    types = set(types) if isinstance(types, list) else {types}
    if types & {"number", "integer"}:
        value = as_number(value)
        if "integer" in types and isinstance(value, float) and value.is_integer():
            value = int(value)
        return value
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k in list(value):
            sub = props.get(k, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[k] = _coerce_numbers(value[k], sub, root)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [_coerce_numbers(v, schema["items"], root) for v in value]
    return value


def _refuse_non_finite(value: Any, path: list[Any]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{_key(path)}': {value} is not a usable number (NaN and infinity are refused)")
    if isinstance(value, dict):
        for k, v in value.items():
            _refuse_non_finite(v, path + [k])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_non_finite(v, path + [i])


INTERVAL = re.compile(r"^\s*([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])\s*$")


def parse_interval(text: str) -> tuple[float, bool, float, bool, bool]:
    """``"[1, inf)"`` -> (low, low closed, high, high closed, integer endpoints)."""
    m = INTERVAL.match(text)
    if not m:
        raise ValueError(f"bad interval {text!r}; write e.g. '[1, inf)', '(0, inf)' or '[0, 1]'")
    lo_b, lo, hi, hi_b = m.groups()
    integral = all(re.fullmatch(r"[-+]?(\d+|inf)", e) for e in (lo, hi))
    return float(lo), lo_b == "[", float(hi), hi_b == "]", integral


def check_bound(val: Any, interval: str, key: str, default: Any) -> Any:
    """``val`` (a number, or a list of numbers) within ``interval``, or :class:`ConfigError` naming ``key``."""
    if isinstance(val, list):
        return [check_bound(v, interval, f"{key}[{i}]", default) for i, v in enumerate(val)]
    lo, lo_closed, hi, hi_closed, integral = parse_interval(interval)
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        raise ConfigError(f"config key '{key}': expected a number in {interval}, got {val!r}")
    if default is None and integral and isinstance(val, float):
        if not val.is_integer():
            raise ConfigError(f"config key '{key}': expected an integer in {interval}, got {val!r}")
        val = int(val)
    inside = (val >= lo if lo_closed else val > lo) and (val <= hi if hi_closed else val < hi)
    if not inside or (isinstance(val, float) and not math.isfinite(val)):
        raise ConfigError(f"config key '{key}': {val!r} is outside the valid range {interval}")
    return val


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
        if isinstance(default, (int, float)) and not isinstance(default, bool) or key in entry.bounds:
            val = as_number(val)
        if isinstance(default, int) and not isinstance(default, bool) and isinstance(val, float) and val.is_integer():
            val = int(val)
        if default is not None and val is not None:
            ok = isinstance(val, type(default)) or (isinstance(default, float) and isinstance(val, int))
            if isinstance(default, (int, float)) and isinstance(val, bool):
                ok = isinstance(default, bool)
            if not ok:
                raise ConfigError(f"config key '{_key(path + [key])}': expected {type(default).__name__}, got {val!r}")
            if isinstance(default, float):
                val = float(val)
        if val is not None and key in entry.bounds:
            val = check_bound(val, entry.bounds[key], _key(path + [key]), default)
        if val is not None and key in entry.choices and val not in entry.choices[key]:
            valid = ", ".join(map(str, entry.choices[key]))
            raise ConfigError(f"config key '{_key(path + [key])}': {val!r} is not one of {valid}")
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
    cfg = _coerce_numbers(cfg, schema, schema)
    _refuse_non_finite(cfg, [])
    _check_replicates_vary(cfg)
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
    _check_external_digests(cfg)
    _check_rank_by(cfg)

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
    from mibench_core.membership.config import check_membership

    check_membership(cfg)
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


REPLICATED_STAGES = ("target", "prior", "attack")


def _check_replicates_vary(cfg: dict) -> None:
    """``replicates.vary`` names stages a seed re-draws; the data and the evaluation model are fixed."""
    vary = (cfg.get("replicates") or {}).get("vary")
    if not isinstance(vary, list):
        return  # the schema reports a wrong type
    for i, stage in enumerate(vary):
        if stage in ("data", "dataset", "evaluation", "metric", "metrics"):
            raise ConfigError(
                f"config key 'replicates.vary[{i}]': {stage!r} never varies (every replicate is measured on the "
                f"same data, by the same evaluation model and metrics); vary any of {', '.join(REPLICATED_STAGES)}"
            )


def _check_rank_by(cfg: dict) -> None:
    """``statistics.rank_by``: values a metric declares (``columns``), with a direction (``better``)."""
    declared: dict[str, dict] = {}
    for entry in registry.REGISTRIES["metric"].values():
        for col, spec in entry.columns.items():
            declared.setdefault(col, spec)
    for i, name in enumerate(cfg["statistics"]["rank_by"]):
        base = name.split(".", 1)[0]  # acc1.<label>: a labelled copy of a metric entry
        spec = declared.get(name) or declared.get(base)
        if spec is None:
            raise ConfigError(
                f"config key 'statistics.rank_by[{i}]': no metric reports {name!r}; "
                f"declared values: {', '.join(sorted(declared))}"
            )
        if spec.get("better") not in ("higher", "lower"):
            raise ConfigError(
                f"config key 'statistics.rank_by[{i}]': {name!r} has no direction (its metric declares no "
                "'better'), so it cannot rank methods"
            )


def _check_external_digests(cfg: dict) -> None:
    """Every external file a config names has a digest to check it against, or says it is unverified."""
    from mibench_core import weights

    clfs = [(f"targets[{i}]", t) for i, t in enumerate(cfg["targets"])] + [("evaluation", cfg["evaluation"])]
    for where, clf in clfs:
        p = clf["arch_params"]
        path = p.get("pretrained_weights")
        if not path:
            continue
        digest = p.get("pretrained_sha256")
        if digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", str(digest)):
            raise ConfigError(
                f"config key '{where}.arch_params.pretrained_sha256': expected 64 hex digits, got {digest!r}"
            )
        if not digest and not weights.hub_prefix(path) and p.get("pretrained_unverified") is not True:
            raise ConfigError(
                f"config key '{where}.arch_params.pretrained_weights': {path} has no digest to check it against: "
                "give its sha256 (pretrained_sha256), or set pretrained_unverified: true to load it unchecked"
            )
    for name in cfg.get("weights", {}):
        path, user_sha = weights.user_spec(name, cfg["weights"])
        if path and not user_sha and not weights.has_digest(weights.KNOWN[name]):
            if not weights.user_unverified(name, cfg["weights"]):
                raise ConfigError(
                    f"config key 'weights.{name}': no digest of {weights.KNOWN[name].filename} is known: give its "
                    "sha256 ({path: ..., sha256: ...}), or load it unchecked with {path: ..., unverified: true}"
                )
