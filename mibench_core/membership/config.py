"""Validation of the ``membership:`` config section (stdlib + yaml/jsonschema, no torch).

Structure and defaults come from ``workflow/schemas/membership.schema.yaml``;
attack names and parameters from the registry (kind ``mia``: each attack's
paper defaults are merged under the config's values, an unknown parameter is
an error naming the valid ones). Cross-checks: scope labels name configured
datasets / targets / defenses; attacks that need offline or online reference
models have enough of them; a scenario grid is complete; quantile levels lie
in [0, 1]; an attack's augmentations do not exceed those the reference models
precompute. Every error names its key.
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent.parent.parent / "workflow" / "schemas" / "membership.schema.yaml"
GRID_KEYS = ("distributions", "levels", "differentials", "ratios")
DEFENSE_ATTACKS = ("lira-online", "rmia-online", "lira-offline", "rmia-offline")  # the default, in this order


def check_membership(cfg: dict) -> None:
    """Validate and normalise ``cfg["membership"]`` in place (absent: nothing to do)."""
    import jsonschema
    import yaml

    from mibench_core.config import ConfigError, _check_name, _check_params, _fill_defaults, _key, _labels

    if cfg.get("membership") is None:
        cfg.pop("membership", None)
        return
    with open(SCHEMA_PATH) as fh:
        schema = yaml.safe_load(fh)
    mem = cfg["membership"]
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(mem), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        raise ConfigError(f"config key '{_key(['membership', *err.absolute_path])}': {err.message}")
    mem = cfg["membership"] = _fill_defaults(mem, schema, schema)
    if not mem["enabled"]:
        return
    if not mem["attacks"]:
        raise ConfigError("config key 'membership.attacks': list at least one attack, or set membership.enabled: false")
    for section in ("datasets", "targets", "defenses"):
        known = [item["label"] for item in cfg[section]]
        for label in mem.get(section, []):
            if label not in known:
                raise ConfigError(
                    f"config key 'membership.{section}': no {section[:-1]} labelled {label!r}; "
                    f"configured: {', '.join(known)}"
                )
    if mem["selection_baselines"]:
        names = {a.get("name") for a in mem["attacks"]}
        mem["attacks"] = list(mem["attacks"])
        mem["attacks"] += [{"name": "selection-random"}] if "selection-random" not in names else []
        if mem["shadows"]["offline"] >= 1 and "selection-independent" not in names:
            mem["attacks"].append({"name": "selection-independent"})
    needs = set()
    for i, atk in enumerate(mem["attacks"]):
        entry = _check_name("mia", atk["name"], ["membership", "attacks", i, "name"])
        params = _check_params(atk, entry, ["membership", "attacks", i], ())
        mem["attacks"][i] = {"name": atk["name"], **({"label": atk["label"]} if "label" in atk else {}),
                             "params": params}  # fmt: skip
        needs |= set(entry.aux)
        aug = params.get("augmentations")
        if aug is not None and aug > mem["shadows"]["augmentations"]:
            raise ConfigError(
                f"config key 'membership.attacks[{i}].augmentations': {aug} exceeds "
                f"membership.shadows.augmentations ({mem['shadows']['augmentations']}), what the reference models hold"
            )
        if entry.access == "top-k" and params.get("top_k") is not None and params["top_k"] < 1:
            raise ConfigError(f"config key 'membership.attacks[{i}].top_k': must be >= 1")
    _labels(mem["attacks"], "name", "membership.attacks")
    labels = [a["label"] for a in mem["attacks"]]
    if mem["defense_attack"] is None:
        mem["defense_attack"] = next((a for a in DEFENSE_ATTACKS if a in labels), labels[0])
    if mem["defense_attack"] not in labels:
        raise ConfigError(
            f"config key 'membership.defense_attack': no membership attack labelled {mem['defense_attack']!r}; "
            f"configured: {', '.join(labels)}"
        )
    sh, sc = mem["shadows"], mem["scenarios"]
    grid = sc["grid"]
    given = [k for k in GRID_KEYS if grid.get(k)]
    if given and len(given) != len(GRID_KEYS):
        missing = [k for k in GRID_KEYS if k not in given]
        raise ConfigError(f"config key 'membership.scenarios.grid': a grid needs all of {GRID_KEYS}; missing {missing}")
    if not (sc["natural"] or given or sc["list"]):
        raise ConfigError("config key 'membership.scenarios': no scenario (natural: false, no grid, no list)")
    if sc["mode"] == "quantile":
        values = [("grid.levels", v) for v in grid.get("levels", [])]
        values += [("grid.differentials", v) for v in grid.get("differentials", [])]
        for j, item in enumerate(sc["list"]):
            values += [(f"list[{j}].level", item["level"]), (f"list[{j}].differential", item["differential"])]
        for where, v in values:
            if not 0 <= v <= 1:
                raise ConfigError(
                    f"config key 'membership.scenarios.{where}': {v} is not a quantile in [0, 1] (mode: quantile)"
                )
    ids = [item["id"] for item in sc["list"]]
    if len(set(ids)) != len(ids) or any(i == "ES00" or (i.startswith("ES") and i[2:].isdigit()) for i in ids):
        raise ConfigError(
            "config key 'membership.scenarios.list': ids must be distinct and not of the form ESnn (the grid's)"
        )
    if given and 0 not in [float(r) for r in grid["ratios"]]:
        raise ConfigError(
            "config key 'membership.scenarios.grid.ratios': include 0 (every grid keeps its unfiltered scenarios, "
            "the baseline its filtered ones are read against)"
        )
    filters = any(r > 0 for r in grid.get("ratios", [])) or any(item.get("ratio", 0) > 0 for item in sc["list"])
    if sc["space"] == "reference" and sh["offline"] < 1:
        raise ConfigError(
            "config key 'membership.scenarios.space': 'reference' computes the scenarios on an offline reference "
            "model, so at least one (membership.shadows.offline)"
        )
    if filters and sh["offline"] < 1:
        raise ConfigError(
            "config key 'membership.shadows.offline': scenario ratios need the privacy risk score, "
            "so at least one offline reference model"
        )
    if "offline" in needs and sh["offline"] < 1:
        raise ConfigError("config key 'membership.shadows.offline': some attacks need offline reference models (>= 1)")
    if "online" in needs and sh["online"] < 2:
        raise ConfigError(
            "config key 'membership.shadows.online': LiRA / RMIA online need at least 2 online reference models"
        )
