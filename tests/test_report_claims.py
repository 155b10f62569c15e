"""The literature's claims checked on small tables shaped like the pipeline's."""

import json

import numpy as np
import pandas as pd
import pytest

from mibench_core.report import claims as claims_mod
from mibench_core.report.claims import ClaimsError, evaluate, load_claims, write_claims

CLAIMS = "config/claims.yaml"
WHITE = ["gmi", "kedmi", "plgmi", "lomma-gmi", "lomma-kedmi"]
BLACK = ["brep-mi", "rlb-mi"]


def attacks_table(seeds, acc) -> pd.DataFrame:
    """Rows like attacks.parquet: acc(attack, defense, seed) -> Acc@1."""
    rows = []
    for s in seeds:
        for defense in ("none", "bido", "dp-sgd"):
            for atk in WHITE + BLACK:
                rows.append({"dataset": "fm", "target": "mcnn", "defense": f"{defense}-x", "attack": atk,
                             "attack_name": atk, "target.defense.name": defense, "replicate_seed": s,
                             "acc1": acc(atk, defense, s)})  # fmt: skip
    return pd.DataFrame(rows)


def membership_table(seeds, tpr) -> pd.DataFrame:
    rows = []
    for s in seeds:
        for defense in ("none", "dp-sgd"):
            for atk in ("lira-online", "rmia-offline", "loss-threshold"):
                rows.append({"dataset": "fm", "target": "mcnn", "defense": defense, "attack_name": atk,
                             "target.defense.name": defense, "scenario": "ES00", "replicate_seed": s,
                             "tpr_at_0.1pct_fpr": tpr(atk, defense, s),
                             "advantage": (0.3 if defense == "none" else 0.03) + 0.01 * s})  # fmt: skip
    return pd.DataFrame(rows)


def split_table(seeds) -> pd.DataFrame:
    return pd.DataFrame([{"technique_name": "rmle", "depth": d, "replicate_seed": s, "ssim": 0.9 - 0.2 * d + 0.01 * s}
                         for s in seeds for d in range(4)])  # fmt: skip


def strong_world(atk, defense, s):
    base = {"plgmi": 0.95, "kedmi": 0.8, "lomma-gmi": 0.85, "lomma-kedmi": 0.9, "gmi": 0.6}.get(atk, 0.3)
    return base - {"none": 0.0, "bido": 0.2, "dp-sgd": 0.1}[defense] + 0.02 * (((s or 0) * 7 + len(atk)) % 3)


def test_every_claim_of_the_claims_file_is_evaluated_and_supported_where_the_tables_show_it():
    seeds = range(5)
    tables = {
        "attacks": attacks_table(seeds, strong_world),
        "membership": membership_table(seeds, lambda a, d, s: (0.05 if a != "loss-threshold" else 0.002) + 0.003 * s),
        "split": split_table(seeds),
    }
    claims = load_claims(CLAIMS)
    rows = evaluate(tables, claims)
    assert [r["id"] for r in rows] == [c["id"] for c in claims]
    verdicts = {r["id"]: r["verdict"] for r in rows}
    assert set(verdicts.values()) == {"supported"}, verdicts
    r = next(r for r in rows if r["id"] == "plgmi-above-gmi")
    assert r["seeds"] == 5 and r["effect"] == pytest.approx(0.35, abs=0.03) and r["exact_floor"] == 2 / 32
    assert r["ci_low"] <= r["effect"] <= r["ci_high"] and len(json.loads(r["per_seed"])) == 5
    drop = next(r for r in rows if r["id"] == "dpsgd-membership-more-than-inversion")
    assert drop["effect"] > 0.5  # advantage drops by ~90%, GMI's Acc@1 by ~16%


def test_a_reversed_effect_is_contradicted_and_noise_is_not_significant():
    rng = np.random.default_rng(0)
    reversed_world = attacks_table(range(5), lambda a, d, s: 0.9 if a == "gmi" else 0.5 + 0.01 * s)
    noise = attacks_table(range(5), lambda a, d, s: 0.6 + rng.normal(0, 0.1))
    ids = ["plgmi-above-gmi", "kedmi-above-gmi"]
    claims = [c for c in load_claims(CLAIMS) if c["id"] in ids]
    assert {r["verdict"] for r in evaluate({"attacks": reversed_world}, claims)} == {"contradicted"}
    assert {r["verdict"] for r in evaluate({"attacks": noise}, claims)} <= {"not significant"}


def test_too_few_seeds_or_missing_runs_are_not_testable(tmp_path):
    one = attacks_table([None], strong_world)  # a plain run: seed 0 only
    rows = evaluate({"attacks": one}, load_claims(CLAIMS))
    by_id = {r["id"]: r for r in rows}
    assert by_id["plgmi-above-gmi"]["reason"] == "not testable with 1 seed"
    assert by_id["plgmi-above-gmi"]["effect"] == pytest.approx(0.35, abs=0.05)  # the effect is still shown
    assert by_id["lira-above-loss-low-fpr"]["reason"] == "no membership table in this config"
    assert {r["verdict"] for r in rows} == {"not testable with this config"}
    path = tmp_path / "a.parquet"
    one.to_parquet(path)
    out = {k: tmp_path / f"c.{k}" for k in ("parquet", "md", "tex")}
    write_claims(CLAIMS, str(path), None, None, str(out["parquet"]), str(out["md"]), str(out["tex"]), {})
    md = out["md"].read_text()
    assert "| PLG-MI reaches a higher Acc@1 than GMI | Yuan et al. 2023" in md
    assert "not testable with this config (not testable with 1 seed)" in md and "supported" not in md
    assert r"\begin{tabular}" in out["tex"].read_text()


def test_a_malformed_claim_names_its_key(tmp_path):
    bad = tmp_path / "claims.yaml"
    bad.write_text("claims:\n  - {id: x, claim: y, source: z, kind: compare, direction: up, table: attacks}\n")
    with pytest.raises(ClaimsError, match="claims\\[0\\]: key 'direction'"):
        claims_mod.load_claims(str(bad))
