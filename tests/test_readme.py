"""The README's result sections agree with the committed report tables (`mibench readme`)."""

import shutil
from pathlib import Path

import pytest

from mibench_core.report import readme

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_agrees_with_the_committed_tables():
    text = (ROOT / "README.md").read_text()
    assert "<!-- mibench:begin default-run -->" in text and "<!-- mibench:begin replicates -->" in text
    assert readme.render(text, ROOT) == text, "README.md disagrees with reports/: run `mibench readme`"


def test_a_changed_table_makes_the_check_fail_and_the_command_rewrites_it(tmp_path):
    for rel in (
        "README.md",
        "reports/tables/attacks.md",
        "reports/replicates/tables/ranking.md",
        "reports/tables/split_inference.md",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    assert readme.update(tmp_path, check=True)
    table = tmp_path / "reports/tables/attacks.md"
    ((_, header, _),) = readme._md_tables(table.read_text())[:1]
    acc1 = header.index("acc1")
    lines = table.read_text().splitlines()
    for i, line in enumerate(lines):  # GMI's Acc@1 becomes 0.55
        cells = line.split("|")
        if len(cells) == len(header) + 2 and cells[1 + header.index("attack")].strip() == "gmi":
            cells[1 + acc1] = " 0.55 [0.5, 0.6] "
            lines[i] = "|".join(cells)
    table.write_text("\n".join(lines) + "\n")
    assert not readme.update(tmp_path, check=True)
    assert readme.update(tmp_path) is False and readme.update(tmp_path, check=True)
    assert "| fashion-mnist | mcnn | none | gmi | 0.55 |" in (tmp_path / "README.md").read_text()


def test_generated_tables_keep_values_and_drop_intervals():
    text = "# t\n\n| a | acc1 |\n|---|---|\n| x | 0.8 [0.7, 0.9] |\n| y | 1 ± 0 |\n"
    ((_, header, rows),) = readme._md_tables(text)
    assert header == ["a", "acc1"] and [readme._value(r[1]) for r in rows] == ["0.8", "1"]


def test_an_unknown_block_is_an_error():
    with pytest.raises(ValueError, match="no generator"):
        readme.render("<!-- mibench:begin nope -->\nx\n<!-- mibench:end nope -->\n", ROOT)


def test_an_included_table_file_is_copied_with_its_sections_as_bold_lines(tmp_path):
    rel = "reports/membership/tables/membership.md"
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_text("# Title\n\nintro\n\n## a / b / none\n\n| x |\n|---|\n| 1 |\n\n## other\n\n| y |\n")
    text = "<!-- mibench:begin membership-run -->\nold\n<!-- mibench:end membership-run -->\n"
    out = readme.render(text, tmp_path)
    assert "**a / b / none**" not in out  # only the undefended fashion-mnist section is picked
    assert "has no section 'fashion-mnist / mcnn / none'" in out
    (tmp_path / rel).write_text((tmp_path / rel).read_text().replace("a / b / none", "fashion-mnist / mcnn / none"))
    out = readme.render(text, tmp_path)
    assert "**fashion-mnist / mcnn / none**\n\n| x |\n|---|\n| 1 |\n<!-- mibench:end" in out
    assert "| y |" not in out and "intro" not in out
