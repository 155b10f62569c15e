"""Classifiers (target and evaluation), their training loop and loading."""
