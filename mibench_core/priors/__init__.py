"""Generative priors trained on the public split."""

from __future__ import annotations

import importlib
from pathlib import Path

from mibench_core import registry, store


def load_prior(prior_dir: str | Path, device="cpu"):
    """Load any prior artifact through its module's ``load(prior_dir, device)``."""
    manifest = store.read_manifest(prior_dir)
    entry = registry.get("prior", manifest["name"])
    module = importlib.import_module(entry.target.split(":", 1)[0])
    return module.load(prior_dir, device)


def run_prior(job: dict):
    """Prior stage: train the prior named by the job through its registry entry."""
    return registry.load(registry.get("prior", job["name"]))(job)
