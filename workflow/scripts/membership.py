"""Snakemake script for the membership-inference report rules: dispatches on the rule's name."""

import json
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake
sys.path.insert(0, str(Path(snakemake.scriptdir).parent.parent))  # noqa: F821

from mibench_core.membership import report  # noqa: E402

sm = snakemake  # noqa: F821
rule = sm.rule
if rule == "aggregate_membership":
    report.write_table([str(Path(p).parent) for p in sm.input], sm.output.table, json.loads(sm.params.labels))
elif rule == "render_membership":
    report.markdown_report(sm.input.table, sm.output.markdown)
elif rule == "plot_membership_roc":
    report.roc_figure(
        str(Path(sm.input.manifest).parent), sm.output.figure, sm.wildcards.label, json.loads(sm.params.labels)
    )
elif rule == "plot_membership_heatmap":
    report.heatmap(sm.input.table, sm.wildcards.label, sm.output.figure)
elif rule == "defense_threats":
    report.defense_threats(
        sm.input.attacks,
        sm.input.membership,
        sm.output.table,
        sm.output.markdown,
        sm.output.latex,
        sm.output.figure,
        sm.params.attack,
    )
else:
    raise SystemExit(f"membership.py: no handler for rule {rule!r}")
