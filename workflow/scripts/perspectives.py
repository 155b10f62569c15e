"""Snakemake script for the defense-perspective rules (issue 6): dispatches on the rule's name."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake
sys.path.insert(0, str(Path(snakemake.scriptdir).parent.parent))  # noqa: F821

from mibench_core.report import perspectives  # noqa: E402

sm = snakemake  # noqa: F821
if sm.rule == "render_defense_matrix":
    perspectives.defense_matrix(sm.input.attacks, sm.output.markdown, sm.output.latex)
elif sm.rule.startswith("plot_perspective_"):
    name = sm.rule[len("plot_perspective_") :]
    perspectives.PERSPECTIVES[name](sm.input.attacks, sm.output.figure, sm.output.table)
else:
    raise SystemExit(f"perspectives.py: no handler for rule {sm.rule!r}")
