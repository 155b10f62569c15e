"""Datasets: raw loaders (one module per source) and the deterministic splitter."""
