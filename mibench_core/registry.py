"""Name -> implementation registries for every pluggable method, discovered from the method modules.

A method is one file. Each method module declares its entries in a
module-level literal ``METHODS``, a list of plain dicts right after its
imports, e.g. (``mibench_core/attacks/gmi.py``)::

    METHODS = [
        {
            "name": "gmi",                 # the config's ``name:``
            "kind": "attack",              # see KINDS
            "call": "run_attack",          # the callable of this module that implements it
            "description": "GMI (Zhang et al. 2020): ...",
            "defaults": {"iterations": 1500, "lr": 0.02},      # the paper's hyperparameters
            "bounds": {"iterations": "[1, inf)", "lr": "(0, inf)"},  # valid ranges (optional)
            "priors": ["gmi-gan"],         # attack: prior kinds it accepts (none: no prior)
            "access": "white-box",         # attack: white-box | probabilities | top-k | label
        },
    ]

Kind-specific keys are listed in :data:`OPTIONAL` (e.g. a metric's
``columns``, how reports title its values; a defense's ``strength``) and
documented, with the generated tables of every method, in
``config/README.md`` (:mod:`mibench_core.docs`).

This module reads those literals with :mod:`ast` (``ast.literal_eval``),
never importing the method modules, so it stays stdlib-only and cheap while
Snakemake parses the workflow; the job that runs a method imports it
(:func:`load`). A config entry is merged over the entry's ``defaults``; a
key that is not among them is an error, so a typo fails at validation.

Adding a method is one new module with its ``METHODS`` literal and one
config entry: nothing here, in the plan or in the rules changes.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mibench_core.stages import ACCESS_BUILDERS

PACKAGE_DIR = Path(__file__).resolve().parent
KINDS = ("dataset", "arch", "defense", "output", "prior", "attack", "metric", "mia", "split_attack")
ACCESS_LEVELS = tuple(ACCESS_BUILDERS)  # white-box, probabilities, top-k, label: each has a context builder
# split_attack: what the untrusted party of a split model holds besides the features f1(x) it sees
# (the edge part f1's weights; queries of f1; the cloud part f2 only): mibench_core/split/
SPLIT_ACCESS_LEVELS = ("white-box", "feature-queries", "query-free")
# Optional keys of a METHODS entry and their defaults (beside name, kind, call, description).
OPTIONAL = {
    "defaults": {},
    "bounds": {},
    "choices": {},  # a string parameter's allowed values, {param: [values]} (checked by the config, before any job)
    "priors": [],  # attack: prior kinds it accepts (empty: no prior)
    "access": "white-box",  # attack: its threat model; prior tied to the target: how it queries it
    "aux": [],  # attack: prior kinds of extra attacker-side artifacts (config key ``aux``), in order;
    #             mia: what it needs beside the target: "offline" / "online" reference models, "scenarios"
    # attack: per-sample, it inverts the target's answers on ``per_class`` private samples of every class,
    # which the plan draws and queries in trusted jobs (ctx.victims; mibench_core.data.views)
    "victims": False,
    "needs_target": False,  # prior: trained with the target's help, so one per target
    "needs_weights": False,  # metric: loads external weight files (their presence enters its id)
    "strength": [],  # defense / output: the parameters that set its strength (report labels)
    # metric: the values it reports, {column: {"label": ..., "better": "higher" | "lower", "meaning": ...}}
    # (how tables and figures name them; a value it reports but does not declare is shown under its own name)
    "columns": {},
    "split_points": [],  # arch: layer names after which the model can be split, shallow to deep
}
COLUMN_KEYS = ("label", "better", "meaning")


class RegistryError(ValueError):
    """A malformed ``METHODS`` literal; the message names the file and the entry."""


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str
    module: str  # dotted module path, e.g. "mibench_core.attacks.gmi"
    call: str
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    bounds: dict[str, str] = field(default_factory=dict)
    choices: dict[str, list] = field(default_factory=dict)
    priors: tuple[str, ...] = ()
    access: str = "white-box"
    aux: tuple[str, ...] = ()
    victims: bool = False
    needs_target: bool = False
    needs_weights: bool = False
    strength: tuple[str, ...] = ()
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    split_points: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        return f"{self.module}:{self.call}"

    @property
    def module_file(self) -> str:
        """The module's path relative to ``mibench_core/``."""
        return module_file(self.module)


def module_file(module: str) -> str:
    assert module.startswith("mibench_core."), module
    return module[len("mibench_core.") :].replace(".", "/") + ".py"


def methods_literal(tree: ast.Module) -> ast.Assign | None:
    """The top-level ``METHODS = [...]`` assignment of a parsed module, if any."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "METHODS" for t in node.targets):
            return node
    return None


def _entries_of(path: Path) -> list[Entry]:
    text = path.read_text()
    if "METHODS" not in text:
        return []
    rel = path.relative_to(PACKAGE_DIR)
    node = methods_literal(ast.parse(text, filename=str(path)))
    if node is None:
        return []
    where = f"mibench_core/{rel.as_posix()}"
    try:
        items = ast.literal_eval(node.value)
    except ValueError as exc:
        raise RegistryError(f"{where}: METHODS must be a plain literal ({exc})") from None
    if not isinstance(items, list):
        raise RegistryError(f"{where}: METHODS must be a list of dicts")
    module = "mibench_core." + ".".join(rel.with_suffix("").parts)
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RegistryError(f"{where}: METHODS[{i}] is not a dict")
        missing = [k for k in ("name", "kind", "call", "description") if k not in item]
        unknown = sorted(set(item) - {"name", "kind", "call", "description", *OPTIONAL})
        if missing or unknown:
            raise RegistryError(f"{where}: METHODS[{i}]: missing keys {missing}, unknown keys {unknown}")
        if item["kind"] not in KINDS:
            raise RegistryError(f"{where}: METHODS[{i}]: kind {item['kind']!r} is not one of {', '.join(KINDS)}")
        levels = SPLIT_ACCESS_LEVELS if item["kind"] == "split_attack" else ACCESS_LEVELS
        if item.get("access", "white-box") not in levels:
            raise RegistryError(f"{where}: METHODS[{i}]: access {item['access']!r} is not one of {levels}")
        white_box = item.get("access", "white-box") == "white-box"
        if item.get("victims") and ("per_class" not in item.get("defaults", {}) or white_box):
            raise RegistryError(
                f"{where}: METHODS[{i}]: a per-sample attack (victims: true) needs a query access level and a "
                "'per_class' default (how many private samples of each class the plan draws as its victims)"
            )
        _check_columns(item.get("columns", {}), f"{where}: METHODS[{i}]")
        kw = {k: item.get(k, default) for k, default in OPTIONAL.items()}
        for k in ("priors", "aux", "strength", "split_points"):
            kw[k] = tuple(kw[k])
        out.append(Entry(item["name"], item["kind"], module, item["call"], item["description"], **kw))
    return out


def _check_columns(columns: Any, where: str) -> None:
    if not isinstance(columns, dict):
        raise RegistryError(f"{where}: columns must be a dict (column -> {{label, better, meaning}})")
    for col, spec in columns.items():
        if not isinstance(spec, dict) or not set(spec) <= set(COLUMN_KEYS) or "label" not in spec:
            raise RegistryError(f"{where}: columns[{col!r}] must be a dict with a label (keys: {COLUMN_KEYS})")
        if spec.get("better", "higher") not in ("higher", "lower"):
            raise RegistryError(f"{where}: columns[{col!r}].better must be 'higher' or 'lower'")


def discover(package_dir: Path = PACKAGE_DIR) -> dict[str, dict[str, Entry]]:
    """Every ``METHODS`` entry under the package, by kind and name (sorted by file for a stable order)."""
    registries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
    origin: dict[tuple[str, str], str] = {}
    for path in sorted(package_dir.rglob("*.py")):
        for entry in _entries_of(path):
            key = (entry.kind, entry.name)
            if key in origin:
                raise RegistryError(
                    f"{entry.kind} {entry.name!r} is declared twice: in {origin[key]} and {entry.module_file}"
                )
            origin[key] = entry.module_file
            registries[entry.kind][entry.name] = entry
    return registries


REGISTRIES: dict[str, dict[str, Entry]] = discover()


def get(kind: str, name: str) -> Entry:
    try:
        return REGISTRIES[kind][name]
    except KeyError:
        valid = ", ".join(sorted(REGISTRIES.get(kind, {})))
        raise KeyError(f"unknown {kind} {name!r}; valid: {valid}") from None


def load(entry: Entry) -> Callable[..., Any]:
    """Import the implementation behind an entry (heavy imports happen here)."""
    return getattr(importlib.import_module(entry.module), entry.call)
