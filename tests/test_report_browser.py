"""The HTML report a person opens: `snakemake --report` on the smoke run, rendered in
headless Chromium (Debian's `chromium`, apt-get installed by the test when missing, as root).

Checks: every report() output of the DAG is in the report with its caption; the categories
are the pipeline stages in order; the page loads and navigates without console errors,
uncaught exceptions or failed requests; the screenshots are not blank.
Set MIBENCH_SCREENSHOT=path.png to keep the figure screenshot (the README's is made so).
"""

from __future__ import annotations

import html as htmllib
import io
import os
import re
import subprocess

import pytest

from tests.browser import find_chromium, render
from tests.smoke import REPO, ensure_installed, snakemake_cmd

pytestmark = pytest.mark.slow

CATEGORIES = ["3. Priors", "4. Attacks", "6. Results"]
# Opens the first result of the listed category in the main panel (its "eye" button has no text).
SHOW_FIRST = """(() => {
  const b = [...document.querySelectorAll('td a, td button, td svg')];
  if (!b.length) return false;
  (b[0].closest('a,button') || b[0]).dispatchEvent(new MouseEvent('click', {bubbles: true}));
  return true;
})()"""


def _not_blank(png: bytes, min_colors: int = 16) -> tuple[int, float]:
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    colors = len(np.unique(img.reshape(-1, 3), axis=0))
    nonwhite = float((img.min(axis=2) < 230).mean())
    assert img.shape[0] > 100 and img.shape[1] > 100, img.shape
    assert colors >= min_colors and nonwhite > 0.05, (colors, nonwhite)
    return colors, nonwhite


def _report_outputs() -> list[tuple[str, str]]:
    """(caption file, category) of every report() output declared in the rules."""
    out = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for m in re.finditer(r"report\(\s*(.*?)\n\s*\),", text, flags=re.S):
            body = m.group(1)
            cap = re.search(r'caption="([^"]+)"', body)
            cat = re.search(r'category="([^"]+)"', body)
            assert cap and cat, f"{smk.name}: a report() output without caption or category: {body}"
            out.append((cap.group(1), cat.group(1)))
    return out


@pytest.fixture(scope="module")
def report_html(smoke_local):
    html = smoke_local / "report.html"
    cmd = snakemake_cmd(smoke_local) + ["--report", str(html)]
    proc = subprocess.run(cmd, cwd=smoke_local, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return html


def _unconditional_lines(text):
    """The caption's lines outside any Jinja ``{% if %}`` block: the ones every rendering shows."""
    depth, lines = 0, []
    for ln in text.splitlines():
        tag = re.match(r"\s*\{%-?\s*(\w+)", ln)
        if tag:
            depth += {"if": 1, "for": 1, "endif": -1, "endfor": -1}.get(tag.group(1), 0)
        elif ln.strip() and depth == 0:
            lines.append(ln)
    return lines


def test_report_holds_every_output_with_caption(report_html, smoke_local):
    html = htmllib.unescape(report_html.read_text())
    outputs = _report_outputs()
    assert outputs
    for caption, category in outputs:
        assert re.fullmatch(r"\d+\. [A-Z].*", category), f"category {category!r} is not a numbered stage"
        rst = (REPO / "workflow" / "rules" / caption).resolve()
        assert rst.exists(), caption
        text = rst.read_text()
        static = [ln for ln in _unconditional_lines(text) if "{{" not in ln and "``" not in ln]
        if static:
            assert static[0].strip() in html, f"caption {caption} is not in the report"
        else:  # every line is in a branch or marked up: the plain start of one of them is shown
            starts = [ln.split("``")[0].strip() for ln in text.splitlines() if "{%" not in ln and "{{" not in ln]
            assert any(st in html for st in starts if st), f"caption {caption} is not in the report"
        assert category in html
    # every figure and table the DAG made is in the report
    made = [p for p in (smoke_local / "results/smoke/reports").rglob("*") if p.is_file()]
    assert len(made) >= 4
    for path in made:
        assert str(path.relative_to(smoke_local)) in html, f"{path} is missing from the report"
    # Jinja in captions was rendered, not shown
    assert "{{ snakemake" not in html and "{{snakemake" not in html


def test_report_renders_in_chromium(report_html, tmp_path):
    ensure_installed({"chromium": "chromium"}, "Chromium")
    assert find_chromium()
    url = report_html.resolve().as_uri()
    home = render(url, settle_s=2)
    assert home.title == "Snakemake Report"
    for cat in CATEGORIES:
        assert cat in home.text, home.text[:2000]
    assert home.text.index("3. Priors") < home.text.index("4. Attacks") < home.text.index("6. Results")
    assert not home.errors, home.errors
    _not_blank(home.screenshot)

    figure = render(url, settle_s=2, click=("6. Results", "Figures"), scripts=(SHOW_FIRST,))
    assert not figure.errors, figure.errors
    assert "comparison.png" in figure.text
    colors, nonwhite = _not_blank(figure.screenshot, min_colors=32)
    keep = os.environ.get("MIBENCH_SCREENSHOT")
    if keep:
        from PIL import Image

        img = Image.open(io.BytesIO(figure.screenshot)).convert("RGB")
        img.thumbnail((960, 960))
        img.quantize(colors=64).save(keep, optimize=True)
