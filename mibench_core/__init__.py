"""MIBench: a reproducible benchmark for model inversion attacks and defenses.

Importing the package imports no torch: the workflow parses with only the
stdlib-level modules (registry, config, plan, store).
"""

__version__ = "0.1.0"
