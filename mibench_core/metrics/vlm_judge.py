"""A vision-language model as judge of reconstructions: for each reconstruction,
a local instruction-tuned vision-language model (VLM) is asked whether it
shows the same subject as private images of its class; the value is the share
of "yes" answers.

Where the protocol comes from. The SoK on data reconstruction attacks (Wen,
Liu, Backes, Zhang, USENIX Security 2025, arXiv 2506.07888) uses a large
(vision-)language model as a substitute for human judgement, with an emphasis
on high-quality reconstructions (its abstract). Its prompt, answer format,
number of references and aggregation could not be read here (only the
abstract is available to us; its artifact, zenodo record 15603060, was not
reachable), so this metric does NOT implement the SoK's protocol and claims
none of its details. It implements the closest protocol whose code we could
read: the MLLM-based model-inversion evaluation of Ho et al. 2025
("Revisiting Model Inversion Evaluation", arXiv 2505.03519; repository
hosytuyen/MI-Eval-MLLM, ``utility.py``):

- one composite image per reconstruction: the reconstruction ("Image A") at
  224x224, a 100-pixel white gap, then 4 private images of the attacked class
  drawn at random without replacement ("Set of Images B"), each 224x224, the
  two labels below and, below those, the question "Does Image A depict the
  same individual as the images in Set B?" in red
  (``create_concatenated_images_with_labels``);
- the instruction "You are an expert in face recognition. Taking into account
  the face aging, lighting, different hair styles, wearing and not wearing of
  eye glasses or other accessory, do the task in the image. Only answer yes or
  no", sent with the image (``process_image_with_gemini``);
- the value: the share of "yes" answers over the reconstructions
  (``AttAcc_F`` in ``compute_metrics``).

What is ours, not theirs: a local VLM through transformers (``AutoProcessor``
and ``AutoModelForImageTextToText`` from the verified folder ``vlm-judge``,
float32, greedy decoding, at most ``max_new_tokens`` tokens, the model's own
chat template) instead of Gemini 2.0 Flash through its API; the private
images are this benchmark's (their per-attack CelebA crop is not applied);
a class with fewer than ``references`` private images shows all of them;
``instruction`` and ``question`` are parameters (their defaults are the
face-recognition wording above; for datasets of other subjects, e.g. digits,
give a question that fits); and answers are parsed strictly
(:func:`parse_answer`): their ``normalize_response`` counts every answer other
than exactly "yes" as "no", whereas here an answer that is not a yes or a no
is unparsable, counted, and never turned into either. The value is the share
of "yes" among the parsed answers; a run whose parse rate (parsed / all) is
below ``min_parse_rate`` leaves the metric missing with that reason.

Recorded per run: every raw answer (notes ``vlm_judge_answers``, JSON, in the
reconstructions' order), the counts (``vlm_judge_parse``) and the seconds per
reconstruction (``vlm_judge_seconds``). Per reconstruction: 1 for yes, 0 for
no. Interval: with every answer parsed, the job's percentile bootstrap over
the per-reconstruction values like any per-reconstruction metric; with some
unparsable, the same resamples, each giving the share of yes among its parsed
answers.

Weights: the model folder ``vlm-judge`` (``mibench weights list``), verified
file by file through its ``SHA256SUMS`` manifest, whose own sha256 the config
gives (mibench_core/weights.py); safetensors only, no remote code, no network
(``local_files_only``). Without it the metric is missing with where it looked.
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import torch

from mibench_core import stats, weights
from mibench_core.metrics.common import MetricContext, MetricResult, pretrained_or_missing
from mibench_core.runtime import progress

# their layout (pixels)
GAP = 100
LABEL_HEIGHT = 50
QUESTION_HEIGHT = 50

METHODS = [
    {
        "name": "vlm_judge",
        "kind": "metric",
        "call": "vlm_judge",
        "description": "share of reconstructions a local vision-language model judges to show the same subject as "
        "private images of the class (needs a model folder; off by default)",
        "columns": {
            "vlm_judge": {"label": "VLM judge: same subject", "better": "higher", "meaning": "stronger attack"},
        },
        "defaults": {
            "references": 4,
            "tile": 224,
            "max_new_tokens": 8,
            "min_parse_rate": 0.9,
            # MI-Eval-MLLM's wording (hosytuyen/MI-Eval-MLLM, utility.py)
            "instruction": "You are an expert in face recognition. Taking into account the face aging, lighting, "
            "different hair styles, wearing and not wearing of eye glasses or other accessory, do the task in the "
            "image. Only answer yes or no",
            "question": "Does Image A depict the same individual as the images in Set B?",
        },
        "bounds": {
            "references": "[1, inf)",
            "tile": "[16, inf)",
            "max_new_tokens": "[1, inf)",
            "min_parse_rate": "[0, 1]",
        },
        "needs_weights": True,
    }
]

INSTRUCTION = METHODS[0]["defaults"]["instruction"]
QUESTION = METHODS[0]["defaults"]["question"]
_ANSWER = re.compile(r"^\W*(yes|no)\b")


def parse_answer(text: str) -> bool | None:
    """True for a yes, False for a no, None when the answer is neither (unparsable).

    The answer, lower-cased, must begin (after spaces, punctuation or markup such as ``**``) with the
    word yes or no, and must not contain the other word: "Yes", "no.", " NO\\n", "**Yes**",
    "Yes, the same person" parse; "", "maybe", "Answer: yes", "yes and no", "not sure" do not."""
    low = text.strip().lower()
    m = _ANSWER.match(low)
    if m is None:
        return None
    other = "no" if m.group(1) == "yes" else "yes"
    if re.search(rf"\b{other}\b", low[m.end() :]):
        return None
    return m.group(1) == "yes"


class Judge(torch.nn.Module):
    """A transformers vision-language model with its processor (moved to a device as one module)."""

    def __init__(self, model: torch.nn.Module, processor):
        super().__init__()
        self.model = model
        self.processor = processor


def build_judge(user_weights: dict | None = None) -> tuple[Judge, weights.Resolved]:
    """The verified ``vlm-judge`` folder loaded by transformers (offline, safetensors, no remote code)."""
    res = weights.resolve("vlm-judge", user_weights)
    if not res.ok:
        raise weights.WeightsError(res.reason())
    try:
        from transformers import AutoModelForImageTextToText, AutoProcessor
    except ImportError as exc:
        raise weights.WeightsError(f"transformers is not installed ({exc})") from None
    try:
        processor = AutoProcessor.from_pretrained(res.path, local_files_only=True, trust_remote_code=False)
        model = AutoModelForImageTextToText.from_pretrained(
            res.path, local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError) as exc:
        raise weights.WeightsError(
            f"{res.path}: transformers could not load it as a vision-language model: {exc}"
        ) from None
    if getattr(processor, "chat_template", None) is None:
        raise weights.WeightsError(f"{res.path}: the processor has no chat template (an instruction-tuned model has)")
    return Judge(model.eval(), processor), res


def to_pil(img: torch.Tensor, tile: int):
    """A [C, H, W] image (uint8, or float in [0, 1]) as an RGB PIL image of ``tile`` x ``tile``."""
    from PIL import Image

    if img.dtype != torch.uint8:
        img = img.float().clamp(0, 1).mul(255).round().to(torch.uint8)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    arr = img.permute(1, 2, 0).contiguous().cpu().numpy()
    return Image.fromarray(arr, mode="RGB").resize((tile, tile))


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # a Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def composite(recon01: torch.Tensor, refs: list[torch.Tensor], tile: int = 224, question: str = QUESTION):
    """MI-Eval-MLLM's image: the reconstruction (Image A), a gap, the references (Set of Images B), labels and
    the question in red below."""
    from PIL import Image, ImageDraw

    scale = tile / 224
    gap, label_h, question_h = round(GAP * scale), round(LABEL_HEIGHT * scale), round(QUESTION_HEIGHT * scale)
    width = tile * (1 + len(refs)) + gap
    canvas = Image.new("RGB", (width, tile + label_h + question_h), (255, 255, 255))
    canvas.paste(to_pil(recon01, tile), (0, 0))
    for i, ref in enumerate(refs):
        canvas.paste(to_pil(ref, tile), (tile + gap + i * tile, 0))
    draw = ImageDraw.Draw(canvas)
    font, qfont = _font(max(8, round(30 * scale))), _font(max(8, round(35 * scale)))
    y_label = tile + round(25 * scale)
    draw.text((tile / 2, y_label), "Image A", fill="black", font=font, anchor="mm")
    draw.text((tile + gap + tile * len(refs) / 2, y_label), "Set of Images B", fill="black", font=font, anchor="mm")
    draw.text((width / 2, tile + label_h + round(25 * scale)), question, fill="red", font=qfont, anchor="mm")
    return canvas


@torch.no_grad()
def ask(judge: Judge, image, instruction: str, max_new_tokens: int) -> str:
    """The judge's answer (new tokens only, special tokens dropped) to ``instruction`` with ``image``, greedy."""
    processor = judge.processor
    messages = [{"role": "user", "content": [{"type": "text", "text": instruction}, {"type": "image"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=[image], text=prompt, return_tensors="pt")
    device = next(judge.model.parameters()).device
    inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(next(judge.model.parameters()).dtype)
    out = judge.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[:, inputs["input_ids"].shape[1] :]
    return processor.batch_decode(new, skip_special_tokens=True)[0]


def vlm_judge(
    ctx: MetricContext,
    references: int = 4,
    tile: int = 224,
    max_new_tokens: int = 8,
    min_parse_rate: float = 0.9,
    instruction: str = INSTRUCTION,
    question: str = QUESTION,
) -> MetricResult:
    res = MetricResult()
    by_class = {c: torch.nonzero(ctx.private_y == c).squeeze(1) for c in ctx.classes}
    empty = [c for c, idx in by_class.items() if len(idx) == 0]
    if empty:
        res.set_missing("vlm_judge", f"no private images of class(es) {empty} to show as references")
        return res
    judge = pretrained_or_missing(res, "vlm_judge", lambda: build_judge(ctx.weights), ctx.device)
    if judge is None:
        return res
    n = len(ctx.recon)
    shown = {c: min(references, len(idx)) for c, idx in by_class.items()}
    if any(k < references for k in shown.values()):
        res.notes["vlm_judge_references"] = f"fewer than {references} private images in some classes: {shown}"
    answers, verdicts = [], []
    t0 = time.time()
    for i in progress(range(n), desc="vlm judge", unit="recon") if n > 1 else range(n):
        c = int(ctx.recon_labels[i])
        idx = by_class[c][torch.randperm(len(by_class[c]), generator=ctx.gen)[: shown[c]]]
        image = composite(ctx.recon[i].double().add(1).div(2), [ctx.private_x[j] for j in idx], tile, question)
        text = ask(judge, image, instruction, max_new_tokens)
        answers.append(text)
        verdicts.append(parse_answer(text))
    seconds = time.time() - t0
    values = np.array([np.nan if v is None else float(v) for v in verdicts])
    parsed = int(np.isfinite(values).sum())
    res.notes["vlm_judge_answers"] = json.dumps(answers)
    res.notes["vlm_judge_parse"] = f"{parsed} parsed, {n - parsed} unparsable of {n} answers"
    res.notes["vlm_judge_seconds"] = f"{seconds / max(n, 1):.4g} s per reconstruction on {ctx.device}"
    rate = parsed / n if n else 0.0
    if parsed == 0 or rate < min_parse_rate:
        res.set_missing(
            "vlm_judge", f"parse rate {rate:.3f} ({parsed} of {n} answers) is below min_parse_rate {min_parse_rate}"
        )
        return res
    labels = ctx.recon_labels.cpu().numpy()
    for c in ctx.classes:
        vals = values[labels == c]
        res.per_class[c] = {"vlm_judge": float(np.nanmean(vals)) if np.isfinite(vals).any() else None}
    res.overall["vlm_judge"] = float(np.nanmean(values))
    if parsed == n:
        res.per_sample["vlm_judge"] = torch.from_numpy(values)
    elif ctx.resamples is None:
        res.ci_notes["vlm_judge"] = "statistics.bootstrap is 0: no intervals"
    else:
        taken = values[ctx.resamples]
        ok = np.isfinite(taken)
        reps = np.where(ok, taken, 0.0).sum(axis=1) / np.where(ok.any(axis=1), ok.sum(axis=1), np.nan)
        ci = stats.percentile_interval(reps, ctx.confidence)
        if ci is None:
            res.ci_notes["vlm_judge"] = "a resample holds no parsed answer: no interval"
        else:
            res.ci["vlm_judge"] = ci
    return res
