"""Snakemake script for the split-inference report rules: dispatches on the rule's name."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake
sys.path.insert(0, str(Path(snakemake.scriptdir).parent.parent))  # noqa: F821

from mibench_core.split import report  # noqa: E402

sm = snakemake  # noqa: F821
rule = sm.rule
if rule == "aggregate_split_results":
    report.write_table([str(Path(p).parent) for p in sm.input], sm.output.table)
elif rule == "render_split_table":
    report.markdown_table(sm.input.table, sm.output.markdown)
elif rule == "plot_split_depth":
    report.depth_figure(sm.input.table, sm.output.figure)
elif rule == "plot_split_grid":
    dirs = sorted({str(Path(p).parent) for p in sm.input.runs if Path(p).name == "manifest.json"})
    data_dir = str(Path(sm.input.runs[-1]).parent)
    report.reconstruction_grid(dirs, data_dir, sm.input.table, sm.output.figure)
else:
    raise SystemExit(f"split_report.py: no handler for rule {rule!r}")
