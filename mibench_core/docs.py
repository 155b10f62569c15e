"""The method tables of ``config/README.md``, generated from the registry (each module's ``METHODS``).

    python -m mibench_core.docs           # rewrite the generated tables in config/README.md
    python -m mibench_core.docs --check   # exit 1, naming them, when they are out of date

Each table sits between a marker ``<!-- methods: KIND -->`` and
``<!-- end methods -->``; everything outside the markers (what a method
does, how it deviates from its paper) is written by hand. The tables list
every registered method of the kind with its defaults, bounds and the keys
that say how it plugs in, so the README cannot disagree with the code
(``tests/test_docs.py`` runs the check). Stdlib only.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from mibench_core import registry

README = Path(__file__).resolve().parent.parent / "config" / "README.md"
SECTION = re.compile(r"(<!-- methods: (\w+) -->\n)(.*?)(<!-- end methods -->)", re.S)


def _value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def _params(entry: registry.Entry) -> str:
    parts = []
    for key, default in entry.defaults.items():
        bound = f" in {entry.bounds[key]}" if key in entry.bounds else ""
        parts.append(f"`{key}` {_value(default)}{bound}")
    return ", ".join(parts) or "-"


def _names(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) or "-"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


# kind -> (header, cells of an entry), beside the name, the parameters and the description (other kinds: none)
COLUMNS = {
    "dataset": ([], lambda e: []),
    "arch": ([], lambda e: []),
    "defense": (["strength"], lambda e: [_names(e.strength)]),
    "output": ([], lambda e: []),
    "prior": (["one per target"], lambda e: ["yes" if e.needs_target else "no"]),
    "attack": (
        ["access", "prior", "aux", "per-sample"],
        lambda e: [e.access, _names(e.priors), _names(e.aux), "yes" if e.victims else "no"],
    ),
    "metric": (["values", "weights"], lambda e: [_names(list(e.columns)), "yes" if e.needs_weights else "no"]),
}


def table(kind: str) -> str:
    """The Markdown table of every registered method of ``kind``, sorted by name."""
    header, cells = COLUMNS.get(kind, ([], lambda e: []))
    lines = [_row(["name", *header, "parameters (defaults)", "description"]), "|" + "---|" * (len(header) + 3)]
    for name, entry in sorted(registry.REGISTRIES[kind].items()):
        lines.append(_row([f"`{name}`", *cells(entry), _params(entry), entry.description]))
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    """``text`` with every generated section replaced by the current table."""

    def sub(m: re.Match) -> str:
        if m.group(2) not in registry.KINDS:
            raise ValueError(f"unknown kind {m.group(2)!r} in a generated section; kinds: {', '.join(registry.KINDS)}")
        return m.group(1) + table(m.group(2)) + m.group(4)

    return SECTION.sub(sub, text)


def stale(path: Path = README) -> list[str]:
    """Kinds whose generated table in ``path`` differs from the registry's."""
    text = path.read_text()
    current = {m.group(2): m.group(3) for m in SECTION.finditer(text)}
    return [kind for kind, body in current.items() if body != table(kind)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated table is out of date")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    if args.check:
        kinds = stale(args.readme)
        if kinds:
            print(f"{args.readme}: out of date: {', '.join(kinds)}; run `python -m mibench_core.docs`", file=sys.stderr)
            return 1
        return 0
    text = args.readme.read_text()
    new = render(text)
    if new != text:
        args.readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
