"""Code fingerprints follow the code: every artifact's file set is its code's import closure.

The expected file sets are computed independently of mibench_core.fingerprint
(which parses source with ast): stdlib ``modulefinder`` scans the compiled
bytecode of each module, including imports inside functions.
"""

from __future__ import annotations

import modulefinder
import shutil
from functools import cache
from pathlib import Path

import pytest
import yaml

from mibench_core import fingerprint, registry
from mibench_core import plan as plan_mod
from mibench_core.cli import _merge
from mibench_core.config import validate
from mibench_core.plan import build
from mibench_core.stages import ACCESS_BUILDERS, RUNNERS, access_module, runner_module

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "mibench_core"
STAGE_OF_KIND = {"dataset": "data", "arch": "model", "defense": "model", "prior": "prior", "attack": "attack",
                 "metric": "metric", "mia": "mia", "split_attack": "split"}  # fmt: skip
WHITE_BOX = {e.name for e in registry.REGISTRIES["attack"].values() if e.access == "white-box"}
BLACK_BOX = set(registry.REGISTRIES["attack"]) - WHITE_BOX


class _InPackage(modulefinder.ModuleFinder):
    """A ModuleFinder that follows only mibench_core's own modules."""

    def import_module(self, partname, fqname, parent):
        if fqname.split(".")[0] != "mibench_core":
            return None
        return super().import_module(partname, fqname, parent)


@cache
def imports_of(*modules: str) -> frozenset[str]:
    """Files of mibench_core (relative) that importing ``modules`` can run, by modulefinder."""
    finder = _InPackage(path=[str(REPO)])
    for module in modules:
        finder.import_hook(module)
    files = {Path(m.__file__).resolve() for m in finder.modules.values() if m.__file__}
    return frozenset(str(f.relative_to(PACKAGE)) for f in files if PACKAGE in f.parents)


def expected_files(kind: str, *entries: registry.Entry) -> set[str]:
    """What an artifact's fingerprint must cover: the stage runner, the method modules and,
    for an attack, its access level's context builder (the modules the jobs import by name)."""
    modules = [runner_module(kind), *(e.module for e in entries)]
    modules += [access_module(e.access) for e in entries if e.kind == "attack"]
    return imports_of(*modules)


def grid() -> dict:
    """Every registered attack and prior (the smoke config), a defense and output processing."""
    cfg: dict = {}
    for path in ("config/config.yaml", "config/smoke.yaml"):
        _merge(cfg, yaml.safe_load((REPO / path).read_text()))
    cfg["defenses"] = [{"name": "none"}, {"name": "mid"}]
    cfg["output_defenses"] = [{"name": "topk", "k": 1}, {"name": "noise"}]
    return validate(cfg)


def by_label(p) -> dict[tuple[str, str], str]:
    return {(n.kind, n.label): nid for nid, n in p.nodes.items()}


def downstream(p, node_ids: set[str]) -> set[str]:
    """The nodes and every node that takes one of them as an input, transitively."""
    out = set(node_ids)
    changed = True
    while changed:
        changed = False
        for nid, node in p.nodes.items():
            if nid not in out and any(i in out for i in node.inputs.values()):
                out.add(nid)
                changed = True
    return out


@pytest.mark.parametrize(
    "kind,name", [(k, n) for k in STAGE_OF_KIND for n in sorted(registry.REGISTRIES[k])], ids=lambda v: str(v)
)
def test_every_method_covers_exactly_its_transitive_imports(kind, name):
    entry = registry.get(kind, name)
    stage = STAGE_OF_KIND[kind]
    assert set(plan_mod._files(stage, entry)) == expected_files(stage, entry)


@pytest.mark.parametrize("name", sorted(registry.REGISTRIES["output"]))
def test_output_processing_adds_its_module_to_black_box_attacks(name):
    attack, output = registry.get("attack", "rlb-mi"), registry.get("output", name)
    files = set(plan_mod._files("attack", attack, output))
    assert files == expected_files("attack", attack, output)
    assert output.module_file in files and output.module_file not in plan_mod._files("attack", attack)


def entries_of_node(node) -> list[registry.Entry]:
    """The registry entries whose modules a node's job loads by name, from its kind and spec."""
    output = [registry.get("output", node.spec["output"]["name"])] if "output" in node.spec else []
    if node.kind == "data":
        return [registry.get("dataset", node.spec["name"])]
    if node.kind in ("public", "victims"):
        return []
    if node.kind == "answers":
        return output
    if node.kind in ("model", "shadow"):
        return [registry.get("arch", node.spec["arch"]), registry.get("defense", node.spec["defense"]["name"])]
    if node.kind == "prior":  # a prior that queries the target applies the run's output processing too
        return [registry.get("prior", node.name), *output]
    if node.kind in ("attack", "mia"):
        return [registry.get(node.kind, node.name), *output]
    if node.kind == "split":
        return [registry.get("split_attack", node.name)]
    if node.kind in ("scenario", "mia_input", "mia_eval", "split-metric"):
        return []
    return [registry.get("metric", m["name"]) for m in node.spec["metrics"]]


def test_the_plan_fingerprints_each_node_with_its_code():
    p = build(grid())
    kinds = set()
    for node in p.nodes.values():
        kinds.add(node.kind)
        assert set(node.files) == imports_of_node(node), node.label
    assert kinds == set(RUNNERS)


def test_the_mappings_name_real_functions_and_every_access_level_has_a_builder():
    import importlib

    assert set(ACCESS_BUILDERS) == set(registry.ACCESS_LEVELS)
    for target in [*RUNNERS.values(), *ACCESS_BUILDERS.values()]:
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), target


def test_white_box_attacks_do_not_import_the_oracle_black_box_ones_do():
    for name, entry in registry.REGISTRIES["attack"].items():
        files = plan_mod._files("attack", entry)
        assert ("attacks/oracle.py" in files) == (name in BLACK_BOX), name
        assert "defenses/output.py" not in files, name  # only when the spec has output processing


@pytest.mark.parametrize(
    "helper",
    [
        "attacks/oracle.py",
        "data/common.py",
        "priors/common.py",
        "attacks/summary.py",
        "metrics/pixel.py",
        "models/classifiers.py",
        "defenses/mid.py",
        "defenses/output.py",
    ],  # fmt: skip
)
def test_editing_a_helper_changes_exactly_the_ids_of_what_imports_it(helper, monkeypatch):
    cfg = grid()
    before = build(cfg)
    real = plan_mod.source_hash
    monkeypatch.setattr(plan_mod, "source_hash", lambda rel: "edited" if rel == helper else real(rel))
    after = build(cfg)
    old, new = by_label(before), by_label(after)
    assert old.keys() == new.keys()
    changed = {old[k] for k in old if old[k] != new[k]}
    importers = {nid for nid, n in before.nodes.items() if helper in imports_of_node(n)}
    assert importers, helper  # every helper here is used by some artifact of the grid
    # the artifacts that import it, and through their ids the artifacts made from them; no others
    assert changed == downstream(before, importers), helper


def imports_of_node(node) -> set[str]:
    """The node's files computed independently (modulefinder) from its kind and spec."""
    return expected_files(node.kind, *entries_of_node(node))


def test_a_query_counting_fix_reruns_black_box_attacks_only(monkeypatch):
    cfg = grid()
    before = build(cfg)
    real = plan_mod.source_hash
    monkeypatch.setattr(plan_mod, "source_hash", lambda rel: "fixed" if rel == "attacks/oracle.py" else real(rel))
    after = build(cfg)
    old, new = by_label(before), by_label(after)
    changed = {before.nodes[old[k]].name for k in old if old[k] != new[k] and k[0] == "attack"}
    assert changed == BLACK_BOX
    for kind in ("data", "model"):
        assert all(old[k] == new[k] for k in old if k[0] == kind)
    # the one prior that queries the target through the oracle (LOKT's T-ACGAN) is retrained
    assert {before.nodes[old[k]].name for k in old if k[0] == "prior" and old[k] != new[k]} == {"lokt-tacgan"}


# --- real edits of a copy of the package -----------------------------------------------------------


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of mibench_core that the fingerprint reads instead of the checkout's."""
    copy = tmp_path / "mibench_core"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))

    def clear():
        for fn in (fingerprint._parse, fingerprint.direct_imports, fingerprint.closure, fingerprint.source_hash):
            fn.cache_clear()

    clear()
    monkeypatch.setattr(fingerprint, "PACKAGE_DIR", copy)
    yield copy
    clear()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def test_docstring_and_comment_edits_change_no_id(package_copy):
    cfg = grid()
    base = {n.label: nid for nid, n in build(cfg).nodes.items()}
    gmi = package_copy / "attacks" / "gmi.py"
    gmi.write_text('"""Rewritten module docstring."""\n# a new comment\n' + gmi.read_text().split('"""', 2)[2])
    edit(package_copy / "data" / "common.py", "def to_model_range(", "# a comment\n\n\ndef to_model_range(")
    edit(package_copy / "attacks" / "oracle.py", '"""Images queried so far."""', '"""How many images so far."""')
    fingerprint.source_hash.cache_clear()
    fingerprint._parse.cache_clear()
    assert {n.label: nid for nid, n in build(cfg).nodes.items()} == base


def test_a_real_query_counting_edit_leaves_white_box_attack_ids_unchanged(package_copy):
    cfg = grid()
    before = build(cfg)
    edit(package_copy / "attacks" / "oracle.py", "self._queries += n\n", "self._queries += int(n)\n")
    fingerprint.source_hash.cache_clear()
    fingerprint._parse.cache_clear()
    after = build(cfg)
    old, new = by_label(before), by_label(after)
    for key, nid in old.items():
        node = before.nodes[nid]
        if key[0] == "attack":
            assert (nid != new[key]) == (node.name in BLACK_BOX), node.label
