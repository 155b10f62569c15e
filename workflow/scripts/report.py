"""Snakemake script for the report rules: dispatches on the rule's name.

Runs through ``script:`` (not the shell) because the aggregate rule's input
list grows with the grid and would overflow a shell command line.
"""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake
sys.path.insert(0, str(Path(snakemake.scriptdir).parent.parent))  # noqa: F821

from mibench_core.report import aggregate, figures  # noqa: E402

sm = snakemake  # noqa: F821
rule = sm.rule
if rule == "aggregate_results":
    import json

    dirs = [str(Path(p).parent) for p in sm.input]
    aggregate.write_tables(dirs, sm.output.attacks, sm.output.classes, runs=json.loads(sm.params.runs))
elif rule == "render_tables":
    figures.markdown_table(sm.input.attacks, sm.output.markdown)
elif rule == "plot_comparison":
    figures.comparison_chart(sm.input.attacks, sm.output.figure)
elif rule == "plot_reconstructions":
    attack_dir, data_dir = str(Path(sm.input.recon).parent), str(Path(sm.input.data).parent)
    figures.reconstruction_grid(attack_dir, data_dir, sm.output.figure, label=sm.wildcards.label)
elif rule == "plot_prior_samples":
    figures.prior_samples(str(Path(sm.input.generator).parent), sm.output.figure, label=sm.wildcards.label)
elif rule == "plot_queries":
    figures.queries_chart(sm.input.attacks, sm.output.figure)
else:
    raise SystemExit(f"report.py: no handler for rule {rule!r}")
