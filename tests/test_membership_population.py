"""Who sees what: members, candidates, the attacker's population; shadow training never sees a target member."""

import numpy as np
import pytest
import torch

from mibench_core import store
from mibench_core.data.common import RawDataset, build_artifact, split_indices
from mibench_core.membership import population, shadows


def unique_images(n: int, offset: int) -> torch.Tensor:
    """uint8 [n, 1, 8, 8] images, each distinct (its index written in its first pixels)."""
    x = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    idx = torch.arange(offset, offset + n)
    x[:, 0, 0, 0], x[:, 0, 0, 1], x[:, 0, 0, 2] = idx % 256, (idx // 256) % 256, 7
    x[:, 0, 1:] = torch.randint(0, 255, (n, 7, 8), generator=torch.Generator().manual_seed(offset), dtype=torch.uint8)
    return x


def tensors(n_train=300, n_val=40, n_test=200, n_pop=60, k=3):
    out, off = {}, 0
    sizes = {"private_train": n_train, "private_val": n_val, "private_test": n_test, "population": n_pop}
    for name, n in sizes.items():
        out[f"{name}_x"] = unique_images(n, off)
        out[f"{name}_y"] = torch.arange(n) % k
        off += n
    out["public_x"] = unique_images(50, off)
    return out


def keys(x: torch.Tensor) -> set:
    return {bytes(row.flatten()[:2].tolist()) for row in x}


def test_pool_and_population_are_disjoint_and_members_come_from_training():
    t = tensors()
    pool = population.build_pool(t, {"members": 100, "nonmembers": 80, "seed": 3})
    members = pool.cand_x[torch.from_numpy(pool.cand_member)]
    nonmembers = pool.cand_x[torch.from_numpy(~pool.cand_member)]
    assert pool.cand_member.sum() == 100 and (~pool.cand_member).sum() == 80
    assert keys(members) <= keys(t["private_train_x"]) and keys(nonmembers) <= keys(t["private_test_x"])
    assert not keys(pool.pop_x) & keys(t["private_train_x"])  # no member in the population
    assert not keys(pool.pop_x) & keys(pool.cand_x)  # no candidate either
    assert len(pool.pop_y) == 40 + 60 + 120  # validation + population split + test images outside the pool
    assert not pool.cand_member[:20].all() and pool.cand_member[:20].any()  # members and non-members shuffled
    again = population.build_pool(t, {"members": 100, "nonmembers": 80, "seed": 3})
    assert torch.equal(again.cand_x, pool.cand_x)


def test_pool_larger_than_a_split_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="membership.pool.nonmembers"):
        population.build_pool(tensors(), {"members": 10, "nonmembers": 500, "seed": 0})


def test_shadow_masks_are_balanced():
    m = population.shadow_masks(4, 1000, seed=0)
    assert (m.sum(0) == 2).all()  # every point in exactly half of the models
    assert abs(m[0].mean() - 0.5) < 0.05
    assert population.shadow_masks(1, 10, 0).sum() == 5


def write_data(tmp_path, t, k=3):
    ddir = tmp_path / "data"
    store.save_tensors(ddir / "data.safetensors", t)
    store.write_json(ddir / "manifest.json", {"results": {"num_classes": k, "channels": 1, "resolution": 8}})
    return ddir


def candidates_dir(tmp_path, ddir):
    """The mia_input artifact (candidates, population, public split; no membership) a shadow job reads."""
    from mibench_core.membership import inputs

    out = tmp_path / "candidates"
    if not (out / "manifest.json").exists():
        job = {"inputs": {"data": {"dir": str(ddir)}}, "outdir": str(out),
               "spec": {"pool": {"members": 100, "nonmembers": 80, "seed": 3}, "sets": False}}  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        _, results, _ = inputs.run(job)
        store.write_json(out / "manifest.json", {"results": results})
    return out


def shadow_job(tmp_path, ddir, mode, index=0, count=2):
    cands = candidates_dir(tmp_path, ddir)
    return {
        "kind": "shadow", "id": f"shadow-{mode}{index}", "name": "shadow", "label": "x", "seed": 5 + index,
        "device": "cpu", "outdir": str(tmp_path / f"{mode}{index}"), "options": {}, "fingerprint": "f",
        "inputs": {"candidates": {"id": "c", "kind": "mia_input", "dir": str(cands)}},
        "spec": {"mode": mode, "index": index, "count": count, "set_seed": 11, "arch": "mcnn",
                 "arch_params": {"width": 2}, "defense": {"name": "none", "params": {}},
                 "train": {"epochs": 1, "batch_size": 32, "optimizer": "adam", "lr": 0.001, "momentum": 0.9,
                           "weight_decay": 0.0, "augment": False, "select_best_on_val": True},
                 "pool": {"members": 100, "nonmembers": 80, "seed": 3}, "augmentations": 2, "val_fraction": 0.1},
    }  # fmt: skip


def test_offline_shadow_training_never_sees_a_target_member(tmp_path, monkeypatch):
    t = tensors()
    ddir = write_data(tmp_path, t)
    seen = {}
    from mibench_core.models import train  # shadows.run imports train_classifier from here when it runs

    original = train.train_classifier

    def spy(model, defense, own, cfg, device, gen):
        seen.update(own)
        return original(model, defense, own, cfg, device, gen)

    monkeypatch.setattr(train, "train_classifier", spy)
    files, results, _ = shadows.run(shadow_job(tmp_path, ddir, "offline"))
    members = keys(t["private_train_x"])
    assert not keys(seen["private_train_x"]) & members and not keys(seen["private_val_x"]) & members
    pool = population.build_pool(t, {"members": 100, "nonmembers": 80, "seed": 3})
    assert not keys(seen["private_train_x"]) & keys(pool.cand_x)  # offline: no candidate either
    assert results["trained_on_candidates"] is False and results["candidates_in"] == 0
    out = store.load_tensors(tmp_path / "offline0" / "outputs.safetensors")
    assert out["pop_logits"].shape == (2, len(pool.pop_y), 3) and out["cand_logits"].shape == (2, 180, 3)
    assert int(out["pop_in"].sum()) == results["population_in"] == len(seen["private_train_y"])


def test_online_shadows_train_on_half_the_candidates_blind_to_membership(tmp_path):
    t = tensors()
    ddir = write_data(tmp_path, t)
    ins = []
    for i in range(2):
        shadows.run(shadow_job(tmp_path, ddir, "online", index=i))
        ins.append(store.load_tensors(tmp_path / f"online{i}" / "outputs.safetensors")["cand_in"].numpy())
    ins = np.stack(ins).astype(bool)
    assert (ins.sum(0) == 1).all()  # every candidate, member or not, is IN for one of the two models
    pool = population.build_pool(t, {"members": 100, "nonmembers": 80, "seed": 3})
    assert np.array_equal(ins, population.shadow_masks(2, 180, 11))  # drawn without the membership bits
    assert len(pool.pop_y) > 0
    for i in range(2):  # online models train on candidates only (Carlini et al.'s single universe)
        out = store.load_tensors(tmp_path / f"online{i}" / "outputs.safetensors")
        assert not out["pop_in"].any()


def test_train_size_caps_a_shadow_at_the_targets_size(tmp_path):
    t = tensors()
    ddir = write_data(tmp_path, t)
    job = shadow_job(tmp_path, ddir, "offline")
    job["spec"]["train_size"] = 30
    _, results, _ = shadows.run(job)
    assert results["train_size"] == results["population_in"] == 30


def test_population_fraction_withholds_training_images_from_the_target():
    rng = np.random.default_rng(0)
    raw = RawDataset(rng.integers(0, 255, (400, 8, 8), dtype=np.uint8), np.arange(400) % 4,
                     rng.integers(0, 255, (80, 8, 8), dtype=np.uint8), np.arange(80) % 4, list("abcd"), {})  # fmt: skip
    spec = {"resolution": 8, "channels": 1, "max_private_per_class": None, "max_public": None,
            "split": {"mode": "class-disjoint", "private_classes": [0, 1], "public_classes": [2, 3],
                      "val_fraction": 0.1, "test_fraction": 0.2, "public_fraction": 0.5}}  # fmt: skip
    plain = split_indices(raw, spec, seed=1)
    assert "population" not in plain
    spec["split"]["population_fraction"] = 0.25
    withheld = split_indices(raw, spec, seed=1)
    assert len(withheld["population"]) == 2 * 22 and len(withheld["private_train"]) == 2 * 68  # 90 per class
    assert not np.intersect1d(withheld["population"], withheld["private_train"]).size
    assert np.array_equal(withheld["private_val"], plain["private_val"])  # the validation carve is unchanged
    tens, info = build_artifact(raw, spec, seed=1)
    assert info["sizes"]["population"] == 44 and tens["population_y"].max() <= 1
