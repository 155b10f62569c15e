"""The answers stage: the target's answers on the victims of a per-sample attack (a trusted job).

A per-sample attack (registry ``"victims": true``) inverts what the target
returned for given private inputs. The attack itself never sees those
inputs: the plan draws them (the private victims artifact,
:func:`mibench_core.data.views.run_victims`) and this job, which may read the
data, queries the target on them through the same query-counting
:class:`~mibench_core.attacks.oracle.Oracle` the attack would use: the
attack's access level (``top-k`` with its ``top_k``; None: every class), and
its output processing (spec key ``output``, applied with this job's own
random stream). The attack receives only the result
(:class:`~mibench_core.attacks.contract.VictimAnswers`).

Spec: ``{"access", "top_k", "output"?}``. Files: ``answers.safetensors``
with ``outputs`` (one row per victim, in the victims artifact's order) and
``queries`` (int64, the oracle queries spent on each victim: one); results:
``count``, ``queries`` (the oracle's total), ``access``, ``top_k``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mibench_core import store
from mibench_core.attacks.blackbox import make_postprocess
from mibench_core.attacks.contract import ANSWERS_FILE
from mibench_core.attacks.oracle import build_oracle
from mibench_core.data.common import to_model_range
from mibench_core.data.views import DATA_FILE, load_victims
from mibench_core.runtime import pick_device, seed_everything


def run(job: dict) -> tuple[list[str], dict, str]:
    device = pick_device(job["device"])
    seed_everything(job["seed"])
    spec, inputs = job["spec"], job["inputs"]
    target_dir = inputs["target"]["dir"]
    num_classes = store.read_manifest(target_dir)["results"]["num_classes"]
    access = spec["access"]
    top_k = (spec.get("top_k") or num_classes) if access == "top-k" else None
    postprocess = make_postprocess(spec.get("output"), gen=torch.Generator().manual_seed(job["seed"] + 1))
    oracle = build_oracle(target_dir, access, device, top_k=top_k, postprocess=postprocess)
    index = load_victims(inputs["victims"]["dir"])["private_index"]
    x = store.load_tensors(Path(inputs["data"]["dir"]) / DATA_FILE)["private_train_x"][index]
    outputs = oracle(to_model_range(x).to(device), slots=torch.arange(len(index)))
    queries = oracle.slot_counts(len(index))
    store.save_tensors(Path(job["outdir"]) / ANSWERS_FILE, {"outputs": outputs.cpu(), "queries": queries})
    results = {"count": len(index), "queries": oracle.queries, "access": access, "top_k": top_k}
    return [ANSWERS_FILE], results, str(device)
