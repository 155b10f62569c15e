"""The `mibench` command line for people: list, plan, show."""

from __future__ import annotations

import json
from collections import Counter

import yaml

from mibench_core import registry, store
from mibench_core.cli import _load_config, main
from mibench_core.plan import STAGE_DIRS, build
from tests.smoke import SMOKE


def test_list_names_every_registered_method(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for kind, entries in registry.REGISTRIES.items():
        assert f"{kind}s:" in lines
        for name, entry in entries.items():
            assert any(ln.split(None, 1) == [name, entry.description] for ln in lines), (kind, name)
            assert entry.description and "\n" not in entry.description
    assert "ir152" in out and "facenet112" in out


def test_plan_counts_jobs_by_stage(capsys):
    assert main(["plan", "-c", str(SMOKE)]) == 0
    out = dict(line.split() for line in capsys.readouterr().out.splitlines())
    cfg = _load_config([str(SMOKE)])
    plan = build(cfg)
    counts = Counter(n.kind for n in plan.nodes.values())
    expected = {k: str(counts.get(k, 0)) for k in STAGE_DIRS}
    assert out == {**expected, "runs": str(len(plan.runs))}
    # smoke: one dataset and its public view, one target + the evaluation model, one attack job per run,
    # one per-sample attack (learning-inversion): its victims and the target's answers on them
    assert out["data"] == out["public"] == "1" and out["model"] == "2" and out["attack"] == out["runs"] != "0"
    assert out["victims"] == out["answers"] == "1"


def test_plan_verbose_lists_ids(capsys):
    assert main(["plan", "-v", "-c", str(SMOKE)]) == 0
    out = capsys.readouterr().out
    plan = build(_load_config([str(SMOKE)]))
    for nid in plan.nodes:
        assert nid in out


def test_show_lineage_and_manifest(tmp_path, capsys, monkeypatch):
    override = tmp_path / "here.yaml"
    override.write_text(yaml.safe_dump({"results_dir": str(tmp_path / "results")}))
    plan = build(_load_config([str(SMOKE), str(override)]))
    run = plan.runs[0]
    metric = run.metric_ids[0]
    # build the attack's folder as a job would: a file and its manifest
    node = plan.nodes[run.attack_id]
    job = node.job(plan)
    outdir = tmp_path / "results" / "attacks" / run.attack_id
    outdir.mkdir(parents=True)
    (outdir / "recon.safetensors").write_bytes(b"x")
    store.write_manifest(job, ["recon.safetensors"], wall_time_s=1.0, device="cpu")

    assert main(["show", metric, "-c", str(SMOKE), "-c", str(override)]) == 0
    out = capsys.readouterr().out
    lineage = plan.lineage(metric)
    assert len(lineage) == 7  # metric, attack, evaluation, target, data, its public view, prior
    for nid in lineage:
        line = next(ln for ln in out.splitlines() if nid in ln)
        assert ("[present, verified]" in line) == (nid == run.attack_id), line
        assert "[not built]" in line or nid == run.attack_id, line
    assert main(["show", run.attack_id, "-c", str(SMOKE), "-c", str(override)]) == 0
    out = capsys.readouterr().out
    manifest = json.loads(out[out.index("{") :])
    assert manifest["id"] == run.attack_id and manifest["inputs"] == {r: i for r, i in node.inputs.items()}
    assert manifest["files"]["recon.safetensors"] == store.sha256_file(outdir / "recon.safetensors")


def test_show_unknown_id(capsys):
    assert main(["show", "gmi-0000000000", "-c", str(SMOKE)]) == 2
    assert "no artifact" in capsys.readouterr().err
