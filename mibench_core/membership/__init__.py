"""Membership inference against the benchmark's own targets (the membership-inference track).

The same trained models the inversion attacks face (undefended and defended
targets, output processing through the query oracle) are attacked by the
fourteen membership-inference attacks of this package, one module each,
declared in ``METHODS`` literals of kind ``mia``. The track adds four stages
(node kinds, :mod:`mibench_core.membership.plan`):

* ``shadow``: an attacker-side shadow / reference model, content-addressed,
  trained with the target's own training code (:mod:`mibench_core.models.train`)
  on a seeded random half of a population that is disjoint from the target's
  members ("offline"), or, for the attacks that need models trained *with*
  the candidates (LiRA / RMIA online), of the candidate pool, blind to which
  candidates are members ("online"); membership masks and the model's
  outputs on population and candidates are saved;
* ``scenario``: the evaluation sets of the membership-inference benchmark's
  scenario generator (:mod:`mibench_core.membership.scenarios`);
* ``mia``: one attack on one target (:mod:`mibench_core.membership.common`),
  reaching the target only through the query-counting oracle;
* ``mia_eval``: every metric of every attack run of a target under every
  scenario (:mod:`mibench_core.membership.evaluate`).

Who sees what is defined in :mod:`mibench_core.membership.population`.
This package's ``__init__`` and ``plan``/``config`` modules import no torch.
"""
