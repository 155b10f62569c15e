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
    for rel in ("README.md", "reports/tables/attacks.md", "reports/replicates/tables/ranking.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    assert readme.update(tmp_path, check=True)
    table = tmp_path / "reports/tables/attacks.md"
    table.write_text(table.read_text().replace("| gmi | 0.9192 | 0.8 [", "| gmi | 0.9192 | 0.55 ["))
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
