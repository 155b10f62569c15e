"""Model inversion attacks: one module per method behind mibench_core.registry."""
