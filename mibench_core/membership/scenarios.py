"""The membership-inference benchmark's scenario generator (Niu et al., MIBench).

An evaluation scenario is a set of members and non-members (the *target
set* an attack must label) plus a set of non-members only (the *generated
non-member set*, what BlindMI-Diff compares against and SHAPr values
against), controlled by four quantities:

1. **the distribution of member/non-member distances** (normal, uniform,
   Bernoulli),
2. **the distance level** (their mean),
3. **the differential distance** between the target set and the non-member
   set,
4. **the ratio of samples left without inference**.

Distance. As in the benchmark's code, the space is the target model's
probability vectors (softmax of the undefended-by-output-processing target,
so the sets are the same for every output processing of one target) and the
distance is the squared maximum mean discrepancy with the benchmark's
kernel (:func:`mmd2`): the biased (V-statistic) MMD^2 with a sum of five
Gaussian kernels ``exp(-||a - b||^2 / s_i)``, ``s_i = s * 2^(i - 2)``,
``i = 0..4``, where ``s`` is the mean squared L2 distance over all distinct
pairs of the two sets pooled (so it is scale-free). The
**member/non-member distance** is the MMD^2 between a batch of
``batch_size`` (10) members and a batch of as many non-members: the
candidate pool's members and non-members are dealt at random into batch
pairs, each pair has one distance.

1-2. *Distribution and level*: ``select_fraction`` of the batch pairs are
   chosen so that their distances follow the requested law with mean
   ``level`` and standard deviation ``spread`` times the standard deviation of
   all pairs' distances: normal N(level, sd^2); uniform on
   [level - sqrt(3) sd, level + sqrt(3) sd]; Bernoulli on {level - sd,
   level + sd}, half each. Targets are drawn from the law and matched one-to-one to
   batch pairs, minimising the total absolute difference
   (:func:`match_targets`); scenarios differing only in differential distance
   or ratio share their target set before filtering. With
   ``mode: quantile`` the level is a quantile of all pairs' distances (the
   seed's CIFAR-100 levels 2.893 / 3.813 / 4.325 are absolute values of its
   own models, ``mode: absolute``). The target set is the union of the
   chosen pairs.
4. *Ratio left without inference*: as in the benchmark's code, the members of
   the target set with the lowest privacy risk score (Song & Mittal 2021,
   :mod:`mibench_core.membership.attacks.risk_score`, from the evaluator's
   offline shadow models) are removed until ``ratio`` of the target set's
   original size (members + non-members) is removed; the attack makes no
   inference on them (at most one half: every member removed).
3. *Differential distance*: the MMD^2 between the (filtered) target set and
   the non-member set. The non-member set (``reference_size`` samples) is a
   window of the candidate non-members outside the target set, ranked by the
   MMD witness function (most target-set-like first); the window whose MMD^2
   is nearest the request is taken (:func:`choose_reference`). With
   ``mode: quantile`` the request is a fraction between the smallest and
   largest MMD^2 the windows achieve.

**This is the benchmark's own procedure, and it is circular** (its
``filter.py`` sweeps a privacy-risk-score threshold over the members): the
filter removes only members, those the privacy risk score -- the same
statistic, with the same offline references, as the ``privacy-risk-score``
attack -- finds least member-like, and the distances are computed on the
attacked target's own outputs. A filtered scenario therefore favours every
score correlated with the filter's, whatever the target leaks: it measures
the selection as well as the attack. Two things make that visible: the
selection baselines (:mod:`mibench_core.membership.attacks.selection`), run
as attacks in every scenario, and ``space: reference``, which computes the
distances and the filter's risk scores on the first offline reference model
(never trained on a candidate) instead of the attacked target (``space:
target``, the default, is the seed's). The natural scenario ``ES00`` uses
neither (a random balanced set): the defense table across threats reads it.
Every record says which (``selection``: ``seed`` or ``reference model``).

Every scenario records what was requested and what was achieved (mean and
standard deviation of the chosen distances, a Kolmogorov-Smirnov p-value
against the requested law for normal and uniform, the differential
distance, the ratio) beside its id. ``ES00`` (``natural: true``) is the
unfiltered pool: a random balanced set of members and non-members, and a
random non-member set. Grid scenarios are numbered ``ES01``... in the order
distribution, level, differential, ratio.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mibench_core import store
from mibench_core.membership.attacks.risk_score import risk_scores
from mibench_core.membership.population import build_pool
from mibench_core.membership.signals import m_entropy, model_probs, softmax
from mibench_core.runtime import pick_device

log = logging.getLogger("mibench.membership.scenarios")

DISTRIBUTIONS = ("normal", "uniform", "bernoulli")


# --- the distance ---------------------------------------------------------------------


def _sq_dists(z: np.ndarray) -> np.ndarray:
    """Pairwise squared L2 distances of the rows of z (batched over leading axes)."""
    g = z @ np.swapaxes(z, -1, -2)
    n = np.einsum("...ii->...i", g)
    return np.maximum(n[..., :, None] + n[..., None, :] - 2 * g, 0.0)


def _kernel_sum(d2: np.ndarray, n: int, kernel_mul: float, kernel_num: int) -> np.ndarray:
    base = d2.sum(axis=(-1, -2)) / (n * n - n)
    base = np.where(base > 0, base, 1.0) / kernel_mul ** (kernel_num // 2)
    base = base[..., None, None]
    if kernel_mul == 2.0:  # exp(-d / (b 2^i)) for i = K-1 .. 0 by repeated squaring of the widest kernel
        e = np.exp(-d2 / (base * 2.0 ** (kernel_num - 1)))
        total = e.copy()
        for _ in range(kernel_num - 1):
            e = e * e
            total += e
        return total
    return sum(np.exp(-d2 / (base * kernel_mul**i)) for i in range(kernel_num))


def mmd2(x: np.ndarray, y: np.ndarray, kernel_mul: float = 2.0, kernel_num: int = 5) -> float:
    """The benchmark's MMD^2 (its ``mmd_rbf``): biased estimate, sum of ``kernel_num`` Gaussian kernels whose
    bandwidths are the mean pairwise squared distance of ``x`` and ``y`` pooled times ``kernel_mul^(i-2)``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    z = np.concatenate([x, y])
    k = _kernel_sum(_sq_dists(z), len(z), kernel_mul, kernel_num)
    n = len(x)
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


def batch_mmd2(xb: np.ndarray, yb: np.ndarray, kernel_mul: float = 2.0, kernel_num: int = 5) -> np.ndarray:
    """:func:`mmd2` of each pair of batches ``xb[i]``, ``yb[i]`` (``[B, b, K]`` each)."""
    z = np.concatenate([xb, yb], axis=1).astype(np.float64)
    k = _kernel_sum(_sq_dists(z), z.shape[1], kernel_mul, kernel_num)
    b = xb.shape[1]
    return k[:, :b, :b].mean((1, 2)) + k[:, b:, b:].mean((1, 2)) - 2 * k[:, :b, b:].mean((1, 2))


# --- scenario pieces ------------------------------------------------------------------


def draw_targets(distribution: str, level: float, sd: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` values of the requested law with mean ``level`` and standard deviation ``sd``."""
    if distribution == "normal":
        return rng.normal(level, sd, n)
    if distribution == "uniform":
        half = math.sqrt(3.0) * sd
        return rng.uniform(level - half, level + half, n)
    if distribution == "bernoulli":
        ones = rng.permutation(np.r_[np.ones((n + 1) // 2), np.zeros(n // 2)])
        return level + sd * (2 * ones - 1)
    raise ValueError(f"distribution {distribution!r} is not one of {', '.join(DISTRIBUTIONS)}")


def match_targets(values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Indices of ``len(targets)`` distinct ``values`` closest to the targets: the optimal one-to-one matching
    minimising the total absolute difference (in one dimension it pairs sorted targets with an increasing
    subsequence of the sorted values; dynamic programming)."""
    n, b = len(targets), len(values)
    if n > b:
        raise ValueError(f"{n} batch pairs requested, only {b} exist")
    order = np.argsort(values, kind="mergesort")
    v, t = values[order], np.sort(targets)
    dp = np.zeros(b + 1)  # dp[j]: best cost of matching the first i targets within the first j values
    take = np.zeros((n, b), bool)
    for i in range(n):
        cand = np.full(b + 1, np.inf)
        cand[1:] = dp[:-1] + np.abs(t[i] - v)  # target i takes value j-1
        cand[: i + 1] = np.inf  # needs i earlier values for the earlier targets
        new = np.minimum.accumulate(cand)
        take[i] = cand[1:] <= new[1:]
        dp = new
    chosen, j = [], b
    for i in range(n - 1, -1, -1):
        while not take[i, j - 1]:
            j -= 1
        chosen.append(j - 1)
        j -= 1
    return order[np.array(chosen[::-1], dtype=np.int64)]


def ks_pvalue(values: np.ndarray, distribution: str, level: float, sd: float) -> float | None:
    """Kolmogorov-Smirnov p-value of ``values`` against the requested continuous law (None for Bernoulli)."""
    from scipy import stats

    if distribution == "normal" and sd > 0:
        return float(stats.kstest(values, "norm", args=(level, sd)).pvalue)
    if distribution == "uniform" and sd > 0:
        half = math.sqrt(3.0) * sd
        return float(stats.kstest(values, "uniform", args=(level - half, 2 * half)).pvalue)
    return None


def ratio_filter(member_risk: np.ndarray, n_total: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean keep-mask over the members: the lowest-risk ones removed until ``ratio * n_total`` are gone."""
    n_remove = min(int(math.ceil(ratio * n_total - 1e-9)), len(member_risk))
    order = np.lexsort((rng.permutation(len(member_risk)), member_risk))  # ascending risk, random ties
    keep = np.ones(len(member_risk), bool)
    keep[order[:n_remove]] = False
    return keep


def _prefix2(m: np.ndarray) -> np.ndarray:
    out = np.zeros((m.shape[0] + 1, m.shape[1] + 1))
    out[1:, 1:] = m.cumsum(0).cumsum(1)
    return out


def choose_reference(
    target_set: np.ndarray, pool: np.ndarray, size: int, want: Callable[[float, float], float]
) -> tuple[np.ndarray, float, float, float]:
    """A non-member set of ``size`` rows of ``pool`` whose MMD^2 to ``target_set`` is nearest ``want(lo, hi)``.

    The pool is ranked by the MMD witness ``mean k(z, T) - mean k(z, pool)`` (most ``T``-like first) under one
    kernel fitted to ``T`` and the pool together; every window of ``size`` consecutive ranks gets that kernel's
    MMD^2 (from prefix sums), and the exact :func:`mmd2` is computed for the windows at both ends of that range
    (``lo``, ``hi``) and the five nearest ``want(lo, hi)``; the nearest exact one is returned.
    Returns (pool indices, achieved MMD^2, lo, hi)."""
    n_t = len(target_set)
    z = np.concatenate([target_set, pool]).astype(np.float64)
    k = _kernel_sum(_sq_dists(z), len(z), 2.0, 5)
    w = k[n_t:, :n_t].mean(1) - k[n_t:, n_t:].mean(1)
    order = np.argsort(-w, kind="mergesort")
    kpp = k[n_t:, n_t:][np.ix_(order, order)]
    ktp = k[n_t:, :n_t][order].sum(1)
    p2, p1 = _prefix2(kpp), np.r_[0.0, np.cumsum(ktp)]
    starts = np.arange(len(pool) - size + 1)
    ww = p2[starts + size, starts + size] - p2[starts, starts + size] - p2[starts + size, starts] + p2[starts, starts]
    approx = k[:n_t, :n_t].mean() + ww / size**2 - 2 * (p1[starts + size] - p1[starts]) / (size * n_t)

    def exact(s0: int) -> float:
        return mmd2(target_set, pool[order[s0 : s0 + size]])

    lo_s, hi_s = int(np.argmin(approx)), int(np.argmax(approx))
    lo, hi = exact(lo_s), exact(hi_s)
    if lo > hi:
        lo, hi, lo_s, hi_s = hi, lo, hi_s, lo_s
    target = want(lo, hi)
    cands = {lo_s: lo, hi_s: hi}
    for s0 in np.argsort(np.abs(approx - target), kind="mergesort")[:5]:
        cands.setdefault(int(s0), exact(int(s0)))
    best = min(cands, key=lambda s0: (abs(cands[s0] - target), s0))
    return order[best : best + size], cands[best], lo, hi


# --- generation -----------------------------------------------------------------------


def scenario_list(cfg: dict) -> list[dict]:
    """The scenarios a ``membership.scenarios`` config asks for, with their ids."""
    out = []
    if cfg.get("natural", True):
        out.append({"id": "ES00", "distribution": "natural", "level": None, "differential": None, "ratio": 0.0})
    grid = cfg.get("grid") or {}
    keys = ("distributions", "levels", "differentials", "ratios")
    if grid and all(grid.get(k) for k in keys):
        n = 0
        for dist in grid["distributions"]:
            for level in grid["levels"]:
                for diff in grid["differentials"]:
                    for ratio in grid["ratios"]:
                        n += 1
                        out.append(
                            {"id": f"ES{n:02d}", "distribution": dist, "level": level, "differential": diff,
                             "ratio": ratio}
                        )  # fmt: skip
    for item in cfg.get("list") or []:
        out.append({"ratio": 0.0, **item})
    return out


def _rng(seed: int, scenario: dict) -> np.random.Generator:
    key = json.dumps({k: scenario.get(k) for k in ("distribution", "level", "differential", "ratio")}, sort_keys=True)
    return np.random.default_rng([seed % (2**32), zlib.crc32(key.encode())])


def generate(
    probs: np.ndarray,
    member: np.ndarray,
    member_risk: np.ndarray | None,
    cfg: dict,
    seed: int,
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Every scenario's index sets (into the candidate pool) and its record.

    ``probs``: the target's probability vectors of the candidates ``[N, K]``;
    ``member``: their membership (the evaluator's knowledge); ``member_risk``:
    a privacy risk score per candidate (used for members only), or None when
    no scenario filters."""
    b, mode = int(cfg["batch_size"]), cfg["mode"]
    rng0 = np.random.default_rng(seed % (2**32))
    mem, non = rng0.permutation(np.flatnonzero(member)), rng0.permutation(np.flatnonzero(~member))
    n_pairs = min(len(mem), len(non) - int(cfg["reference_size"])) // b
    if n_pairs < 2:
        raise ValueError(
            "config key 'membership.pool': too few candidates for the scenarios "
            f"({len(mem)} members, {len(non)} non-members, batch {b}, reference set {cfg['reference_size']})"
        )
    mb, nb = mem[: n_pairs * b].reshape(n_pairs, b), non[: n_pairs * b].reshape(n_pairs, b)
    dists = batch_mmd2(probs[mb], probs[nb])
    sd_all = float(dists.std())
    n_select = max(2, int(round(cfg["select_fraction"] * n_pairs)))
    tensors: dict[str, np.ndarray] = {}
    records = []
    for sc in scenario_list(cfg):
        rng = _rng(seed, sc)
        rec = {**sc, "batch_size": b, "pairs_available": n_pairs, "pool_distance_mean": float(dists.mean()),
               "pool_distance_sd": sd_all}  # fmt: skip
        if sc["distribution"] == "natural":
            n = min(len(mem), len(non) - int(cfg["reference_size"]))
            members = np.sort(rng.choice(mem, n, replace=False))
            rest = rng.permutation(non)
            nonmembers, reference = np.sort(rest[:n]), np.sort(rest[n : n + int(cfg["reference_size"])])
            rec.update(level_value=None, distance_mean=float(dists.mean()), distance_sd=sd_all, ks_pvalue=None)
        else:
            level = float(np.quantile(dists, sc["level"])) if mode == "quantile" else float(sc["level"])
            sd = float(cfg["spread"]) * sd_all
            # the target set depends on distribution and level only: scenarios that differ in differential
            # distance or ratio share it (and only the non-member set or the filtering changes)
            sel_rng = _rng(seed, {"distribution": sc["distribution"], "level": sc["level"]})
            targets = draw_targets(sc["distribution"], level, sd, n_select, sel_rng)
            chosen = match_targets(dists, targets)
            got = dists[chosen]
            members, nonmembers = np.sort(mb[chosen].ravel()), np.sort(nb[chosen].ravel())
            rec.update(
                level_value=level, spread_value=sd, distance_mean=float(got.mean()), distance_sd=float(got.std()),
                ks_pvalue=ks_pvalue(got, sc["distribution"], level, sd), pairs_selected=len(chosen),
            )  # fmt: skip
            reference = None
        n_target = len(members) + len(nonmembers)
        if sc.get("ratio"):
            if member_risk is None:
                raise ValueError("a scenario ratio needs privacy risk scores (membership.shadows.offline >= 1)")
            keep = ratio_filter(member_risk[members], n_target, float(sc["ratio"]), rng)
            members = members[keep]
        rec["ratio_value"] = (n_target - len(members) - len(nonmembers)) / n_target
        used = np.r_[members, nonmembers]
        if reference is None:
            pool = np.setdiff1d(non, nb[chosen].ravel())  # non-members outside the target set
            size = min(int(cfg["reference_size"]), len(pool))
            q = float(sc["differential"])
            want = (lambda lo, hi, q=q: lo + q * (hi - lo)) if mode == "quantile" else (lambda lo, hi, q=q: q)
            picked, _, lo, hi = choose_reference(probs[used], probs[pool], size, want)
            reference = np.sort(pool[picked])
            rec.update(differential_value=want(lo, hi), differential_min=lo, differential_max=hi)
        rec["differential_achieved"] = mmd2(probs[used], probs[reference])
        rec.update(n_members=len(members), n_nonmembers=len(nonmembers), n_reference=len(reference))
        tensors[f"{sc['id']}.members"] = members.astype(np.int64)
        tensors[f"{sc['id']}.nonmembers"] = nonmembers.astype(np.int64)
        tensors[f"{sc['id']}.reference"] = reference.astype(np.int64)
        records.append(rec)
    return tensors, records


def load(scenario_dir: str | Path) -> tuple[dict[str, dict[str, np.ndarray]], list[dict]]:
    """Scenario id -> {"members", "nonmembers", "reference"} candidate indices, and the records."""
    flat = store.load_tensors(Path(scenario_dir) / "scenarios.safetensors")
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, val in flat.items():
        sid, part = key.split(".", 1)
        out.setdefault(sid, {})[part] = val.numpy()
    return out, store.read_manifest(scenario_dir)["results"]["scenarios"]


# --- the stage ------------------------------------------------------------------------


def _role_order(role: str) -> tuple[str, int]:
    digits = "".join(ch for ch in role if ch.isdigit())
    return (role.rstrip("0123456789"), int(digits) if digits else -1)


def run(job: dict) -> tuple[list[str], dict, str]:
    """Scenario stage: the target's probabilities on the pool (evaluator side), risk scores, every scenario."""
    from mibench_core.models.train import load_classifier, load_data

    device = pick_device(job["device"])
    spec = job["spec"]
    tensors, info = load_data(job["inputs"]["data"]["dir"])
    pool = build_pool(tensors, spec["pool"])
    shadow_dirs = [job["inputs"][r]["dir"] for r in sorted(job["inputs"], key=_role_order) if r.startswith("offline")]
    space = spec["scenarios"].get("space", "target")
    if space == "reference":  # the first offline reference model: never trained on a candidate
        probs = softmax(store.load_tensors(Path(shadow_dirs[0]) / "outputs.safetensors")["cand_logits"][0])
    else:
        target = load_classifier(job["inputs"]["target"]["dir"], device)
        probs = model_probs(target, pool.cand_x, device)
    risk = None
    if shadow_dirs:
        y = pool.cand_y.numpy()
        tr_v, tr_y, te_v, te_y = [], [], [], []
        for d in shadow_dirs:
            out = store.load_tensors(Path(d) / "outputs.safetensors")
            p = softmax(out["pop_logits"][0])
            pin = out["pop_in"].numpy().astype(bool)
            py = pool.pop_y.numpy()
            ent = m_entropy(p, py)
            tr_v.append(ent[pin]), tr_y.append(py[pin]), te_v.append(ent[~pin]), te_y.append(py[~pin])
        risk = risk_scores(
            np.concatenate(tr_v), np.concatenate(tr_y), np.concatenate(te_v), np.concatenate(te_y),
            m_entropy(probs, y), y, info["num_classes"],
        )  # fmt: skip
    arrays, records = generate(probs, pool.cand_member, risk, spec["scenarios"], job["seed"])
    for rec in records:
        rec["selection"] = "none (random)" if rec["distribution"] == "natural" else (
            "seed" if space == "target" else "reference model"
        )  # fmt: skip
    store.save_tensors(
        Path(job["outdir"]) / "scenarios.safetensors", {k: torch.from_numpy(v) for k, v in arrays.items()}
    )
    log.info("%d scenarios over %d candidates", len(records), pool.n_candidates)
    return ["scenarios.safetensors"], {"scenarios": records, "n_candidates": pool.n_candidates}, str(device)
