"""Members, non-members, candidates and the attacker's population, from a data artifact.

Definitions (one dataset; every target of it trains on the same private split):

* **members**: the private training split (``private_train``), what every
  target of the dataset is trained on;
* **non-members**: private test images (``private_test``) of the same
  classes, never trained on;
* **candidate pool**: a seeded random sample of ``pool.members`` members and
  ``pool.nonmembers`` non-members, shuffled together: the images whose
  membership the attacks infer and the scenarios draw their evaluation sets
  from. Attacks get the candidates' images and labels, never their
  membership bits (:class:`Pool` keeps those apart for the evaluator);
* **population** (the attacker's own data, same distribution, disjoint from
  every member and every candidate): the validation split, the optional
  ``population`` split (training images withheld from the target with
  ``split.population_fraction``) and the private test images not drawn into
  the candidate pool. Offline shadow and reference models train on halves
  of it, so they never see a target member; RMIA draws its population
  samples ``z`` from it. (Online reference models train on halves of the
  candidate pool instead, blind to membership: :mod:`.shadows`.)

The pool is drawn with ``pool["seed"]``, which the plan derives from the pool
spec and the data artifact, so every job of a dataset (shadows, scenarios,
attacks, evaluation) rebuilds the same pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# provenance codes of population rows
POP_VAL, POP_SPLIT, POP_TEST = 0, 1, 2


@dataclass
class Pool:
    """Candidates (with the evaluator-only membership bits) and the population."""

    cand_x: torch.Tensor  # uint8 [N, C, R, R]
    cand_y: torch.Tensor  # int64 [N]
    cand_member: np.ndarray  # bool [N]: evaluator only, never passed to an attack
    cand_index: np.ndarray  # int64 [N]: index into private_train (members) or private_test (non-members)
    pop_x: torch.Tensor  # uint8 [P, C, R, R]
    pop_y: torch.Tensor  # int64 [P]
    pop_source: np.ndarray  # int64 [P]: POP_VAL / POP_SPLIT / POP_TEST
    pop_index: np.ndarray  # int64 [P]: index into that split

    @property
    def n_candidates(self) -> int:
        return len(self.cand_y)

    @property
    def n_population(self) -> int:
        return len(self.pop_y)


def build_pool(tensors: dict[str, torch.Tensor], pool: dict) -> Pool:
    """The candidate pool and the population of a data artifact (see the module docstring)."""
    rng = np.random.default_rng(int(pool["seed"]))
    n_train, n_test = len(tensors["private_train_y"]), len(tensors["private_test_y"])
    n_mem, n_non = int(pool["members"]), int(pool["nonmembers"])
    if n_mem > n_train:
        raise ValueError(
            f"config key 'membership.pool.members': {n_mem} requested, the private training split has {n_train}"
        )
    if n_non > n_test:
        raise ValueError(
            f"config key 'membership.pool.nonmembers': {n_non} requested, the private test split has {n_test}"
        )
    mem_idx = np.sort(rng.choice(n_train, n_mem, replace=False))
    non_idx = np.sort(rng.choice(n_test, n_non, replace=False))
    order = rng.permutation(n_mem + n_non)
    is_member = np.r_[np.ones(n_mem, bool), np.zeros(n_non, bool)][order]
    index = np.r_[mem_idx, non_idx][order]
    cand_x = torch.empty((n_mem + n_non, *tensors["private_train_x"].shape[1:]), dtype=torch.uint8)
    cand_y = torch.empty(n_mem + n_non, dtype=torch.int64)
    m, nm = torch.from_numpy(np.flatnonzero(is_member)), torch.from_numpy(np.flatnonzero(~is_member))
    cand_x[m] = tensors["private_train_x"][torch.from_numpy(index[is_member])]
    cand_y[m] = tensors["private_train_y"][torch.from_numpy(index[is_member])]
    cand_x[nm] = tensors["private_test_x"][torch.from_numpy(index[~is_member])]
    cand_y[nm] = tensors["private_test_y"][torch.from_numpy(index[~is_member])]

    rest_test = np.setdiff1d(np.arange(n_test), non_idx)
    parts_x = [tensors["private_val_x"]]
    parts_y = [tensors["private_val_y"]]
    source = [np.full(len(tensors["private_val_y"]), POP_VAL)]
    pindex = [np.arange(len(tensors["private_val_y"]))]
    if "population_x" in tensors:
        parts_x.append(tensors["population_x"])
        parts_y.append(tensors["population_y"])
        source.append(np.full(len(tensors["population_y"]), POP_SPLIT))
        pindex.append(np.arange(len(tensors["population_y"])))
    parts_x.append(tensors["private_test_x"][torch.from_numpy(rest_test)])
    parts_y.append(tensors["private_test_y"][torch.from_numpy(rest_test)])
    source.append(np.full(len(rest_test), POP_TEST))
    pindex.append(rest_test)
    pop_y = torch.cat(parts_y)
    if len(pop_y) < 2:
        raise ValueError(
            "membership inference needs an attacker population (validation split, population split, test images "
            "outside the candidate pool); it is empty: lower membership.pool.nonmembers or set "
            "datasets[].split.population_fraction"
        )
    return Pool(
        cand_x, cand_y, is_member, index.astype(np.int64),
        torch.cat(parts_x), pop_y, np.concatenate(source).astype(np.int64), np.concatenate(pindex).astype(np.int64),
    )  # fmt: skip


def shadow_masks(n_models: int, n_points: int, seed: int) -> np.ndarray:
    """``[n_models, n_points]`` bool: which points each shadow model trains on.

    Carlini et al. (2022)'s balanced split: every point is in exactly
    ``n_models // 2`` models (a random half of them), so each point has as many
    IN as OUT models; one model alone trains on a random half of the points.
    """
    rng = np.random.default_rng(seed)
    if n_models == 1:
        return (rng.permutation(n_points) < n_points // 2)[None, :]
    keep = rng.uniform(size=(n_models, n_points)).argsort(0)
    return keep < n_models // 2
