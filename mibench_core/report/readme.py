"""The README's result sections, generated from the committed report tables.

A generated section sits between ``<!-- mibench:begin NAME -->`` and
``<!-- mibench:end NAME -->``; ``mibench readme`` rewrites every such block
from the tables under ``reports/`` (``mibench readme --check`` only says
whether the README agrees), and a test fails when it does not. The prose
around the blocks says why; the numbers come only from the tables.

Blocks:

* ``default-run``: the default run's attacks (``reports/tables/attacks.md``), strongest
  first by Acc@1, with the values of the table (its intervals are in the table file).
* ``replicates``: the replicated default (``reports/replicates/tables/``): each attack's
  value over seeds and the seeds and reconstructions behind it (``ranking.md``), and the
  claims table (``claims.md``) where the run wrote one.
* ``split-run``: the default run's split-inference tables (``reports/tables/split_inference.md``).
* ``membership-run``: the natural scenario on the undefended target of the membership run
  (``reports/membership/tables/membership.md``).
* ``defense-threats``: both threats on the same models (``reports/membership/tables/defense_threats.md``).

These copy sections of a table file as they are (headings become bold lines, so the README's
outline stays its own).
"""

from __future__ import annotations

import re
from pathlib import Path

BLOCK = re.compile(
    r"(<!-- mibench:begin (?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- mibench:end (?P=name) -->)", re.S
)
INTERVAL = re.compile(r" (\[[^\]]*\]|± \S+)$")


def _md_tables(text: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """(heading, header, rows) of every Markdown table in ``text`` (heading: the last ``#`` line above it)."""
    out, heading, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in line.strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            out.append((heading, header, rows))
            continue
        i += 1
    return out


def _value(cell: str) -> str:
    """A table cell without its interval."""
    return INTERVAL.sub("", cell)


def _num(cell: str) -> float:
    try:
        return float(_value(cell))
    except ValueError:
        return float("-inf")


DEFAULT_COLUMNS = ("acc1", "knn_dist", "feat_dist", "eval_fd", "precision", "recall", "psnr", "ssim")


def default_run(root: Path) -> str:
    path = root / "reports" / "tables" / "attacks.md"
    if not path.exists():
        return f"`{path.relative_to(root)}` is absent: run `bash scripts/run.sh`.\n"
    _, header, rows = _md_tables(path.read_text())[0]
    col = {h: i for i, h in enumerate(header)}
    cols = [c for c in DEFAULT_COLUMNS if c in col]
    rows = sorted(rows, key=lambda r: (-_num(r[col["acc1"]]), r[col["attack"]]))
    md = [f"From `{path.relative_to(root)}` (values only; their within-run intervals are in that file).", "",
          "| dataset | target | defense | attack | " + " | ".join(cols) + " |",
          "|---" * (4 + len(cols)) + "|"]  # fmt: skip
    for r in rows:
        keys = [r[col[k]] for k in ("dataset", "target", "defense", "attack")]
        md.append("| " + " | ".join(keys + [_value(r[col[c]]) for c in cols]) + " |")
    return "\n".join(md) + "\n"


def replicates(root: Path) -> str:
    folder = root / "reports" / "replicates" / "tables"
    ranking = folder / "ranking.md"
    if not ranking.exists():
        return f"`{ranking.relative_to(root)}` is absent: run `config/replicates.yaml`.\n"
    tables = [t for t in _md_tables(ranking.read_text()) if "attacks by Acc@1" in t[0]]
    md = []
    for heading, header, rows in tables:
        col = {h: i for i, h in enumerate(header)}
        value = next(h for h in header if h.startswith("Acc@1"))
        md += [f"From `{ranking.relative_to(root)}`, {heading} (values only; intervals and groups are in that file).",
               "", "| attack | Acc@1 over seeds | seeds | reconstructions |", "|---|---|---|---|"]  # fmt: skip
        for r in rows:
            md.append(f"| {r[col['attack']]} | {_value(r[col[value]])} | {r[col['seeds']]} | "
                      f"{r[col['reconstructions']]} |")  # fmt: skip
        md.append("")
    claims = folder / "claims.md"
    if claims.exists():
        for _, header, rows in _md_tables(claims.read_text()):
            md += [f"Claims, from `{claims.relative_to(root)}`:", "", "| " + " | ".join(header) + " |",
                   "|---" * len(header) + "|", *["| " + " | ".join(r) + " |" for r in rows], ""]  # fmt: skip
    else:
        md += [f"No claims table yet (`{claims.relative_to(root)}`): it comes with the next run of "
               "`config/replicates.yaml`.", ""]  # fmt: skip
    return "\n".join(md).rstrip("\n") + "\n"


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """(heading, body lines) of every ``## `` section of a Markdown file (the ``# `` title dropped)."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("## "):
            out.append((line[3:].strip(), []))
        elif out and not line.startswith("# "):
            out[-1][1].append(line)
    return out


def include(rel: str, run: str, section: str | None = None):
    """A generator copying ``rel``'s sections (all, or the one titled ``section``) as they are."""

    def generate(root: Path) -> str:
        path = root / rel
        if not path.exists():
            return f"`{rel}` is absent: run {run}.\n"
        picked = [(h, b) for h, b in _sections(path.read_text()) if section is None or h == section]
        if not picked:
            return f"`{rel}` has no section {section!r}: run {run}.\n"
        md = [f"From `{rel}`:", ""]
        for heading, body in picked:
            md += [f"**{heading}**", *body]
        return "\n".join(md).rstrip("\n") + "\n"

    return generate


MEMBERSHIP_RUN = "`bash scripts/run.sh --configfile config/membership.yaml`"
GENERATORS = {
    "default-run": default_run,
    "replicates": replicates,
    "split-run": include("reports/tables/split_inference.md", "`bash scripts/run.sh`"),
    "membership-run": include("reports/membership/tables/membership.md", MEMBERSHIP_RUN, "fashion-mnist / mcnn / none"),
    "defense-threats": include("reports/membership/tables/defense_threats.md", MEMBERSHIP_RUN),
}  # fmt: skip


def render(text: str, root: Path) -> str:
    """``text`` (a README) with every generated block rewritten from the tables under ``root``."""

    def block(m: re.Match) -> str:
        name = m.group("name")
        if name not in GENERATORS:
            raise ValueError(f"README block {name!r}: no generator (known: {', '.join(GENERATORS)})")
        return m.group(1) + GENERATORS[name](root) + m.group(4)

    return BLOCK.sub(block, text)


def update(root: str | Path = ".", check: bool = False) -> bool:
    """Rewrite ``README.md`` under ``root`` (or, with ``check``, only compare); True when it already agreed."""
    root = Path(root)
    path = root / "README.md"
    text = path.read_text()
    new = render(text, root)
    if not check and new != text:
        path.write_text(new)
    return new == text
