"""Snakemake script of the report rules: calls the library function a rule names.

A rule gives ``params.call`` (``"module:function"``) and ``params.args`` (its
positional arguments, built from the rule's input and output files); this
script imports the function and calls it, logging to the rule's log file.
"""

import importlib
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake
sys.path.insert(0, str(Path(snakemake.scriptdir).parent.parent))  # noqa: F821

module, _, name = snakemake.params.call.partition(":")  # noqa: F821
getattr(importlib.import_module(module), name)(*snakemake.params.args)  # noqa: F821
