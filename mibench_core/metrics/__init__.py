"""Metrics on reconstructions: one module per metric family behind mibench_core.registry."""
