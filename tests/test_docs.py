"""config/README.md cannot disagree with the code: its method tables are generated, its prose checked."""

import re

from mibench_core import docs, registry
from tests.smoke import REPO

README = REPO / "config" / "README.md"
SECTION_KIND = {"datasets": "dataset", "targets": "arch", "defenses": "defense", "output_defenses": "output",
                "priors": "prior", "attacks": "attack", "metrics": "metric"}  # fmt: skip


def test_generated_tables_are_current():
    assert docs.stale(README) == [], "run `python -m mibench_core.docs`"
    assert docs.main(["--check"]) == 0


def test_every_kind_has_a_table_listing_every_method():
    text = README.read_text()
    kinds = [m.group(2) for m in docs.SECTION.finditer(text)]
    assert sorted(kinds) == sorted(registry.KINDS)
    for kind in registry.KINDS:
        body = docs.table(kind)
        for name, entry in registry.REGISTRIES[kind].items():
            row = next(line for line in body.splitlines() if line.startswith(f"| `{name}` |"))
            for key in entry.defaults:
                assert f"`{key}` " in row, (name, key)


def test_a_stale_table_is_reported_and_rewritten(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- methods: output -->\n| old |\n<!-- end methods -->\nprose\n")
    assert docs.stale(readme) == ["output"]
    assert docs.main(["--check", "--readme", str(readme)]) == 1
    assert docs.main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n<!-- methods: output -->\n| name |") and text.endswith(
        "<!-- end methods -->\nprose\n"
    )
    assert "| `topk` | `k` 1 in [1, inf) |" in text and docs.stale(readme) == []


def test_bounds_appear_beside_their_parameter():
    entry = registry.Entry("x", "output", "m", "f", "d", {"k": 1, "std": 0.5}, {"k": "[1, inf)"})
    assert docs._params(entry) == "`k` 1 in [1, inf), `std` 0.5"


def test_numbers_the_prose_gives_for_a_parameter_are_its_defaults():
    """In a method's own section, "`key` 1,500" or "`key` (30)" states that key's default."""
    kind, wrong = None, []
    for part in re.split(r"^(#{2,4} .*)$", README.read_text(), flags=re.M):
        if part.startswith("## "):
            match = re.match(r"## `(\w+)\[\]`", part)
            kind = SECTION_KIND.get(match.group(1)) if match else None
            continue
        if part.startswith("#") or kind is None:
            heading = part
            continue
        names = re.findall(r"`([\w-]+)`", heading) if heading.startswith("#") else []
        entries = [registry.REGISTRIES[kind][n] for n in names if n in registry.REGISTRIES[kind]]
        prose = docs.SECTION.sub("", part)
        for key, value in re.findall(r"`(\w+)`\s*\(?(-?\d[\d,]*\.?\d*(?:e-?\d+)?)\)?", prose):
            for e in entries:
                default = e.defaults.get(key)
                if isinstance(default, (int, float)) and not isinstance(default, bool):
                    if abs(float(value.replace(",", "")) - default) > 1e-9 * max(1.0, abs(default)):
                        wrong.append(f"{e.name}.{key}: README says {value}, the default is {default}")
        heading = ""
    assert wrong == []
