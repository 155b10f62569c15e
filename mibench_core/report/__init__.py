"""Aggregation into Parquet tables, Markdown tables and figures (from the tables and artifacts only).

:data:`PERSPECTIVES` names the defense perspectives
(:mod:`mibench_core.report.perspectives`, one function each); the workflow
renders one figure and one table per name. Stdlib only: the Snakefile reads
it while parsing.
"""

PERSPECTIVES = ("privacy_utility", "predictive_power", "resolution", "robustness")
