"""The vision-language judge end to end with a tiny randomly initialised LLaVA built here (a CLIP vision
tower, a Llama language model, a word-level tokenizer of a few words), saved as transformers saves a model
folder, with its SHA256SUMS manifest: the loading, verification, preprocessing, generation and parsing code
is the real one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mibench_core import weights
from mibench_core.metrics import vlm_judge as vj
from tests.pretrained import metric_ctx, metric_data

pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parent.parent
WORDS = ["<pad>", "<unk>", "<s>", "</s>", "<image>", "yes", "no", "maybe", "user", "assistant", ":"]
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
    "{% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}{% if add_generation_prompt %}assistant : "
    "{% endif %}"
)


def tiny_vlm(folder: Path, only: list[str] | None = None, seed: int = 0) -> str:
    """Save a tiny LLaVA to ``folder`` with its manifest; return the manifest's sha256.

    ``only``: the words it may say (every other token is suppressed in its generation config)."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {w: i for i, w in enumerate(WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    tok.add_tokens([AddedToken("<image>", special=True)])
    vision = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8
    )
    text = LlamaConfig(
        vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=4, vision_feature_select_strategy="default"
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    if only is not None:
        keep = {vocab[w] for w in only}
        model.generation_config.suppress_tokens = [i for i in range(len(WORDS)) if i not in keep]
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}),
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=TEMPLATE,
        image_token="<image>",
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return weights.write_manifest(folder)


def judge_weights(tmp_path, **kwargs) -> dict:
    folder = tmp_path / "judge"
    digest = tiny_vlm(folder, **kwargs)
    return {"vlm-judge": {"path": str(folder), "sha256": digest}}


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("yes", True), ("no", False), ("Yes", True), ("No", False), (" YES\n", True), ("no.", False),
        ("Yes.", True), ("**No**", False), ("Yes, they show the same person.", True), ("No, different people", False),
        ("", None), ("maybe", None), ("Answer: yes", None), ("yes and no", None), ("No... yes", None),
        ("not sure", None), ("yesterday", None), ("nobody", None), ("I cannot tell", None),
    ],
)  # fmt: skip
def test_parse_answer_reads_yes_and_no_and_refuses_everything_else(text, verdict):
    assert vj.parse_answer(text) is verdict


def test_composite_places_the_reconstruction_and_references_as_mi_eval_mllm():
    g = torch.Generator().manual_seed(0)
    recon01 = torch.rand(1, 8, 8, generator=g)
    refs = [torch.randint(0, 256, (1, 8, 8), generator=g, dtype=torch.uint8) for _ in range(4)]
    img = vj.composite(recon01, refs, tile=224)
    assert img.size == (224 * 5 + 100, 224 + 50 + 50) and img.mode == "RGB"
    a = np.asarray(img)
    # nearest 8 -> 224 is not what PIL's resize does, so compare with the same resize of each tile
    assert (a[:224, :224] == np.asarray(vj.to_pil(recon01, 224))).all()
    for i, ref in enumerate(refs):
        x0 = 224 + 100 + 224 * i
        assert (a[:224, x0 : x0 + 224] == np.asarray(vj.to_pil(ref, 224))).all()
    assert (a[:224, 224 : 224 + 100] == 255).all()  # the white gap
    assert (a[:224, :224, 0] == a[:224, :224, 2]).all()  # grayscale repeated to RGB
    below = a[224:]
    red = (below[..., 0] > 200) & (below[..., 1] < 80) & (below[..., 2] < 80)
    dark = below.max(axis=2) < 80
    assert red[50:].any() and not red[:50].any()  # the question, in red, under the labels
    assert dark[:50].any()  # the black labels


def test_judge_end_to_end_records_answers_and_counts(homes, tmp_path):
    user = judge_weights(tmp_path, only=["yes", "</s>"])
    recon, labels, px, py = metric_data(n=2, m=5)
    res = vj.vlm_judge(metric_ctx(recon, labels, px, py, user_weights=user), max_new_tokens=2)
    assert res.missing == {}
    answers = json.loads(res.notes["vlm_judge_answers"])
    assert len(answers) == 4 and all(a.split()[0] == "yes" for a in answers)
    assert res.notes["vlm_judge_parse"] == "4 parsed, 0 unparsable of 4 answers"
    assert res.overall["vlm_judge"] == 1.0
    assert res.per_sample["vlm_judge"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert res.per_class == {0: {"vlm_judge": 1.0}, 1: {"vlm_judge": 1.0}}
    assert "SHA256SUMS matches the digest given in the config" in res.notes["vlm_judge_weights"]
    assert "per reconstruction on cpu" in res.notes["vlm_judge_seconds"]


def test_free_answers_of_a_random_model_give_the_share_of_yes_among_those_parsed(homes, tmp_path):
    user = judge_weights(tmp_path, only=["yes", "no", "maybe", "</s>"], seed=3)
    recon, labels, px, py = metric_data(n=3, m=5)
    res = vj.vlm_judge(metric_ctx(recon, labels, px, py, user_weights=user), max_new_tokens=1, min_parse_rate=0.0)
    answers = json.loads(res.notes["vlm_judge_answers"])
    verdicts = [{"yes": True, "no": False}.get(a.strip()) for a in answers]  # one word each
    parsed = [v for v in verdicts if v is not None]
    assert res.notes["vlm_judge_parse"] == f"{len(parsed)} parsed, {6 - len(parsed)} unparsable of 6 answers"
    assert parsed  # this seed's model answers yes or no at least once
    assert res.overall["vlm_judge"] == pytest.approx(sum(parsed) / len(parsed))


def test_a_model_that_answers_nothing_leaves_the_metric_missing_even_without_a_parse_threshold(homes, tmp_path):
    user = judge_weights(tmp_path, only=["</s>"])
    recon, labels, px, py = metric_data()
    res = vj.vlm_judge(metric_ctx(recon, labels, px, py, user_weights=user), min_parse_rate=0.0)
    assert json.loads(res.notes["vlm_judge_answers"]) == ["", "", "", ""]
    assert res.overall["vlm_judge"] is None and "(0 of 4 answers)" in res.missing["vlm_judge"]


def test_unparsable_answers_are_counted_and_leave_the_metric_missing(homes, tmp_path):
    user = judge_weights(tmp_path, only=["maybe", "</s>"])
    recon, labels, px, py = metric_data(n=2, m=5)
    res = vj.vlm_judge(metric_ctx(recon, labels, px, py, user_weights=user), max_new_tokens=2)
    assert res.overall["vlm_judge"] is None
    assert "parse rate 0.000 (0 of 4 answers) is below min_parse_rate 0.9" in res.missing["vlm_judge"]
    assert res.notes["vlm_judge_parse"] == "0 parsed, 4 unparsable of 4 answers"
    assert all(a.startswith("maybe") for a in json.loads(res.notes["vlm_judge_answers"]))
    assert "vlm_judge" not in res.per_sample


def test_some_unparsable_answers_are_left_out_of_the_share_and_its_interval(homes, tmp_path, monkeypatch):
    user = judge_weights(tmp_path)
    replies = ["yes", "maybe", "no", "yes", "Yes.", "No", "hmm", "yes"]
    calls = []

    def ask(*_args, **_kwargs):  # the model's replies in order, again for every run
        calls.append(1)
        return replies[(len(calls) - 1) % len(replies)]

    monkeypatch.setattr(vj, "ask", ask)
    recon, labels, px, py = metric_data(n=4, m=5)
    ctx = metric_ctx(recon, labels, px, py, user_weights=user)
    ctx.resamples = np.array([[0, 1, 2, 3, 4, 5, 6, 7], [0, 0, 3, 3, 4, 4, 7, 7], [1, 1, 2, 2, 5, 5, 6, 6]])
    ctx.confidence = 1.0
    res = vj.vlm_judge(ctx, min_parse_rate=0.75)
    assert res.notes["vlm_judge_parse"] == "6 parsed, 2 unparsable of 8 answers"
    assert res.overall["vlm_judge"] == pytest.approx(4 / 6)
    assert res.per_class[0]["vlm_judge"] == pytest.approx(2 / 3) and res.per_class[1]["vlm_judge"] == pytest.approx(
        2 / 3
    )
    # resamples: 4/6; 8/8 (all yes); 0/4 (2, 2, 5, 5 are no; 1, 1, 6, 6 unparsable, left out)
    assert res.ci["vlm_judge"] == pytest.approx((0.0, 1.0))
    res = vj.vlm_judge(ctx, min_parse_rate=0.8)  # 6 of 8 is below 0.8
    assert "parse rate 0.750" in res.missing["vlm_judge"]


def test_without_the_model_folder_the_judge_is_missing_with_where_it_looked(homes):
    recon, labels, px, py = metric_data()
    res = vj.vlm_judge(metric_ctx(recon, labels, px, py))
    assert res.overall["vlm_judge"] is None
    assert "not found" in res.missing["vlm_judge"]
    assert str(homes / "home" / ".cache" / "mibench" / "weights" / "vlm-judge") in res.missing["vlm_judge"]


def test_a_changed_or_unlisted_file_or_a_wrong_manifest_digest_is_refused(homes, tmp_path):
    user = judge_weights(tmp_path, only=["yes", "</s>"])
    folder = Path(user["vlm-judge"]["path"])
    recon, labels, px, py = metric_data()
    (folder / "extra.bin").write_bytes(b"x")
    res = vj.vlm_judge(metric_ctx(recon, labels, px, py, user_weights=user))
    assert "files not listed in SHA256SUMS: extra.bin" in res.missing["vlm_judge"]
    (folder / "extra.bin").unlink()
    config = folder / "config.json"
    config.write_text(config.read_text().replace('"hidden_size": 16', '"hidden_size": 16 '))
    res = vj.vlm_judge(metric_ctx(recon, labels, px, py, user_weights=user))
    assert "config.json: sha256 differs from its line in SHA256SUMS" in res.missing["vlm_judge"]
    wrong = {"vlm-judge": {"path": str(folder), "sha256": "0" * 64}}
    res = vj.vlm_judge(metric_ctx(recon, labels, px, py, user_weights=wrong))
    assert "differs from the digest given in the config" in res.missing["vlm_judge"]
    res = vj.vlm_judge(metric_ctx(recon, labels, px, py, user_weights={"vlm-judge": {"path": str(folder)}}))
    assert "no digest of its SHA256SUMS is given" in res.missing["vlm_judge"]


def test_weights_list_names_the_judge_folder_and_how_to_provide_it(homes, capsys):
    from mibench_core.cli import main

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("vlm-judge"))
    assert "absent" in line
    assert "provide: save the model folder" in out and "SHA256SUMS" in out
    assert "vlm-judge" not in weights.presence_token({})  # an absent folder leaves other metrics' ids alone


def test_snakemake_dry_run_with_the_judge_and_no_model_folder_stops_before_any_job(tmp_path):
    overlay = tmp_path / "judge.yaml"
    overlay.write_text(
        "metrics:\n  - name: accuracy\n  - name: vlm_judge\n"
        f"weights:\n  vlm-judge: {{path: {tmp_path / 'absent-model'}, sha256: '{'0' * 64}'}}\n"
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    snakemake = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run(
        [str(snakemake), "-n", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
         str(REPO / "config" / "smoke.yaml"), str(overlay)],  # fmt: skip
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"config key 'weights.vlm-judge': no such file {tmp_path / 'absent-model'}" in out, out[-3000:]
    assert "Job stats" not in out and not (workdir / "results").exists()


def test_the_default_config_leaves_the_judge_off():
    import yaml

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert "vlm_judge" not in [m["name"] for m in cfg["metrics"]]


def test_the_metric_stage_accepts_its_values_and_intervals(homes, tmp_path, monkeypatch):
    from mibench_core import stats
    from mibench_core.metrics.common import _intervals

    user = judge_weights(tmp_path)
    recon, labels, px, py = metric_data(n=4, m=5)
    labels_np = labels.numpy()
    ctx = metric_ctx(recon, labels, px, py, user_weights=user)
    ctx.resamples = stats.stratified_resamples(labels_np, 200, np.random.default_rng(0))
    for replies, parsed_all in ((["yes", "no", "no", "yes"], True), (["yes", "no", "hmm", "yes"], False)):
        answers = iter(replies * 2)  # 8 reconstructions
        monkeypatch.setattr(vj, "ask", lambda *a, _it=answers, **k: next(_it))
        res = vj.vlm_judge(ctx, min_parse_rate=0.5)
        ci, note, value, n_eff = _intervals("vlm_judge", res.overall["vlm_judge"], res, ctx, labels_np, "vlm_judge")
        assert note is None and ci[0] <= value <= ci[1] and ci[0] < ci[1]
        assert (n_eff is not None) is parsed_all  # every answer parsed: a proportion with its Wilson interval
        assert ("vlm_judge" in res.per_sample) is parsed_all and ("vlm_judge" in res.ci) is not parsed_all
