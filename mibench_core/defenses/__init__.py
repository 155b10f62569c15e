"""Defenses against model inversion.

Training-time defenses (one module each, each declaring itself in a
``METHODS`` literal) are :class:`mibench_core.models.train.Defense`
subclasses: a defended target is an ordinary target artifact whose spec
carries the defense. Output processing for black-box attacks (kind
``output``) lives in :mod:`mibench_core.defenses.output` and is applied by
the query oracle.
"""
