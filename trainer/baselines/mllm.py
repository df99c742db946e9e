"""MLLM baseline: ask an audio-text chat model for the genre of each clip, as the paper does.

The prompt is a versioned file (``prompts/mllm_v1.txt``): a producer's-perspective instruction, our
reference notes on each genre, the 8 genres numbered in canonical order, "answer with the number
only".  Each clip goes to the model at its processor's sampling rate with the prompt, decoded
greedily; :func:`parse_answer` reads a number 1-8, else a genre name or alias, else ``UNPARSED``.

Every answer is one line of ``answers.jsonl`` (clip id, model, prompt version and hash, raw answer,
parsed genre, label), so each figure can be audited and a stopped run resumes where it stopped; a
file written by another model or prompt is refused, never mixed.  Scores come from the HouseX
metric module: an unparsed answer is a ninth "class" that no clip has, so it counts as wrong in
accuracy and recall (precision/F1 weighted by the 8 genres' support, as for every other row).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from housex.dataset_script.genres import GENRES, NUM_GENRES, genre_id, sharpen_ids

from ..statistics import Bootstrap, format_figure, level_text
from .common import Clips, hub_access, load_clips, write_scores

logger = logging.getLogger("housex.trainer.baselines.mllm")

PROMPT_VERSION = "mllm_v1"
UNPARSED = "UNPARSED"
ANSWERS_FILE = "answers.jsonl"

# Free-text names an answer may use, beside the canonical ones (mapped by genres.genre_id).
ANSWER_ALIASES = ("Techno", "Future Bounce", "Brazilian Bass", "Big Room")


# --------------------------------------------------------------------------------------------
# prompt and parsing
# --------------------------------------------------------------------------------------------


def load_prompt(version: str = PROMPT_VERSION) -> str:
    """The text of a versioned prompt file shipped in ``trainer/baselines/prompts``."""
    try:
        return resources.files(__package__).joinpath("prompts", f"{version}.txt").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise FileNotFoundError(f"prompt version {version!r}: no file prompts/{version}.txt") from None


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


# A number that is not part of a decimal, a word, a percentage or a tempo ("128 BPM").
_NUMBER = re.compile(r"(?<![\w.])(\d+)(?![\w%]|\.\d|\s*bpm)", re.IGNORECASE)
_NAMES = [(re.compile(r"\b" + r"[\s_-]*".join(map(re.escape, name.lower().split())) + r"\b"), genre_id(name))
          for name in (*GENRES, *ANSWER_ALIASES)]


def parse_answer(text: str) -> int | None:
    """Class id of a model's answer: the first number 1-8, else the earliest genre name or alias
    (case-insensitive; the longest name wins at one position), else ``None`` (unparsed)."""
    for match in _NUMBER.finditer(text or ""):
        n = int(match.group(1))
        if 1 <= n <= NUM_GENRES:
            return n - 1
    lowered = (text or "").lower()
    hits = [(m.start(), -len(m.group(0)), gid) for pattern, gid in _NAMES if (m := pattern.search(lowered))]
    return min(hits)[2] if hits else None


# --------------------------------------------------------------------------------------------
# model families
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatFamily:
    """How one family of audio-text chat models is loaded and asked: the class that generates text."""

    model_class: str  # transformers class name
    generate_kwargs: Mapping = field(default_factory=dict)

    def load(self, model: str, *, dtype, device: str, trust_remote_code: bool):
        import transformers

        cls = getattr(transformers, self.model_class)
        return cls.from_pretrained(model, dtype=dtype, trust_remote_code=trust_remote_code,
                                   **hub_access(model)).to(device).eval()

    def generate(self, model, inputs, max_new_tokens: int):
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, **self.generate_kwargs)
        return getattr(out, "sequences", out)


FAMILIES: dict[str, ChatFamily] = {
    "qwen2_audio": ChatFamily("Qwen2AudioForConditionalGeneration"),
    # The thinker alone (it loads from the full checkpoint): text answers, no speech head, no speaker file.
    "qwen2_5_omni": ChatFamily("Qwen2_5OmniThinkerForConditionalGeneration"),
}
# Models outside transformers that ship their own code, a processor and a chat template.
REMOTE_CODE = ChatFamily("AutoModelForCausalLM")


def resolve_family(model: str, *, trust_remote_code: bool = False) -> tuple[str, ChatFamily]:
    """``(model_type, family)`` of a model folder or Hub id; one-line errors for other model kinds."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    access = hub_access(model)
    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code, **access)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"--model {model}: not a transformers model folder or Hub id ({str(e).splitlines()[0]})") from None
    kind = config.model_type
    if kind in FAMILIES:
        return kind, FAMILIES[kind]
    if trust_remote_code and getattr(config, "auto_map", None):
        return kind, REMOTE_CODE
    supported = ", ".join(FAMILIES) + ", or remote code with --trust-remote-code"
    if kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(f"--model {model}: model_type {kind!r} is a text-only language model (no audio input); "
                         f"expected an audio-text chat model ({supported})")
    raise ValueError(f"--model {model}: model_type {kind!r} is not an audio-text chat model; expected {supported}")


def load_processor(model: str, *, trust_remote_code: bool = False):
    """The model's processor, checked for an audio feature extractor and a chat template."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model, trust_remote_code=trust_remote_code, **hub_access(model))
    return check_processor(processor, model)


def check_processor(processor, model: str):
    """``processor`` if it takes audio and has a chat template (set to pad on the left), else a one-line error."""
    if getattr(processor, "feature_extractor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ValueError(f"--model {model}: its processor ({type(processor).__name__}) lacks an audio feature "
                         "extractor or a tokenizer")
    if not getattr(processor, "chat_template", None):
        raise ValueError(f"--model {model}: its processor has no chat template (chat_template.jinja)")
    processor.tokenizer.padding_side = "left"  # decoder-only generation pads on the left
    return processor


def chat_text(processor, prompt: str) -> str:
    """The prompt rendered by the model's chat template: one audio, then the text, then the reply turn."""
    messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": prompt}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


# --------------------------------------------------------------------------------------------
# answers.jsonl
# --------------------------------------------------------------------------------------------


def read_answers(path: Path, identity: dict) -> dict[str, dict]:
    """Answers already in ``path`` by clip id; refuses a file written with another identity."""
    answers: dict[str, dict] = {}
    if not path.is_file():
        return answers
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{line_no}: not a JSON line") from None
            if not isinstance(row, dict) or not {"clip_id", "parsed", "raw_answer"} <= set(row):
                raise ValueError(f"{path}:{line_no}: not an answer row (needs clip_id, raw_answer, parsed)")
            for key, want in identity.items():
                if row.get(key) != want:
                    raise ValueError(f"{path}:{line_no}: written with {key} {row.get(key)!r}, this run has {want!r}; "
                                     "use another --out (answers of different runs are never mixed)")
            answers[row["clip_id"]] = row
    return answers


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


def _dtype(name: str, device: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise ValueError(f"--dtype {name!r}: expected auto, float32, bfloat16 or float16") from None


def ask(family: ChatFamily, model, processor, text: str, waves: list[np.ndarray], sampling_rate: int,
        max_new_tokens: int) -> list[str]:
    """Raw answers of one batch of clips (same prompt text for each)."""
    import torch

    inputs = processor(text=[text] * len(waves), audio=waves, sampling_rate=sampling_rate, return_tensors="pt",
                       padding=True).to(model.device)
    for key, value in inputs.items():
        if torch.is_floating_point(value):
            inputs[key] = value.to(model.dtype)
    with torch.inference_mode():
        out = family.generate(model, inputs, max_new_tokens)
    return processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def run_mllm(model: str, dataset: str, out: str | Path, *, split: str = "validation", max_new_tokens: int = 16,
             batch_size: int = 1, device: str = "cpu", dtype: str = "auto", clip_seconds: float | None = 7.5,
             trust_remote_code: bool = False, prompt_version: str = PROMPT_VERSION,
             bootstrap: Bootstrap = Bootstrap()) -> dict:
    """Ask ``model`` about every ``split`` clip (skipping those already answered in ``out``); score
    (``out/predictions.parquet``: the one-hot answers, ``parsed`` and ``raw_answer``; ``out/metrics.json``)."""
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError("--max-new-tokens and --batch-size must be >= 1")
    prompt = load_prompt(prompt_version)
    model_type, family = resolve_family(model, trust_remote_code=trust_remote_code)
    processor = load_processor(model, trust_remote_code=trust_remote_code)
    sampling_rate = int(processor.feature_extractor.sampling_rate)
    clips = load_clips(dataset, split, sampling_rate=sampling_rate, max_seconds=clip_seconds)
    model_id = str(Path(model).resolve()) if Path(model).is_dir() else str(model)  # a folder by its absolute path
    identity = {"model": model_id, "prompt_version": prompt_version, "prompt_hash": prompt_hash(prompt)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    answers_path = out / ANSWERS_FILE
    answers = read_answers(answers_path, identity)
    todo = [i for i, cid in enumerate(clips.ids) if cid not in answers]
    logger.info("%s: %d clips, %d answered earlier, %d to ask", model, len(clips), len(clips) - len(todo), len(todo))
    if todo:
        loaded = family.load(model, dtype=_dtype(dtype, device), device=device, trust_remote_code=trust_remote_code)
        text = chat_text(processor, prompt)
        with answers_path.open("a", encoding="utf-8") as f:
            for indices, waves in clips.batches(batch_size, todo):
                for i, raw in zip(indices, ask(family, loaded, processor, text, waves, sampling_rate, max_new_tokens)):
                    answers[clips.ids[i]] = row = _answer_row(identity, clips, i, raw)
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
    pred_ids = [_parsed_id(answers[cid]) for cid in clips.ids]
    parsed = np.array([p is not None for p in pred_ids])
    probabilities = np.zeros((len(clips), NUM_GENRES))
    probabilities[parsed, [p for p in pred_ids if p is not None]] = 1.0
    record = {
        "baseline": "mllm",
        "model": model_id,
        "model_type": model_type,
        "prompt_version": prompt_version,
        "prompt_hash": identity["prompt_hash"],
        "dataset": clips.source,
        "split": split,
        "clip_seconds": clips.seconds,
        "sampling_rate": sampling_rate,
        "max_new_tokens": max_new_tokens,
        "labels": list(GENRES),
        "num_clips": len(clips),
        "num_asked": len(todo),
    }
    row_info = {"kind": "MLLM", "model": f"{Path(model_id).name if Path(model).is_dir() else model_id} ({prompt_version})",
                "features": f"{clips.seconds} s audio + prompt", "labels": "hard", "dataset": clips.source,
                "split": split}
    return write_scores(out, record=record, row_info=row_info, clip_ids=clips.ids, track_ids=clips.track_ids,
                        soft_labels=clips.soft_labels, probabilities=probabilities, parsed=parsed,
                        extra_columns={"raw_answer": [answers[cid]["raw_answer"] for cid in clips.ids]},
                        bootstrap=bootstrap)


def _answer_row(identity: dict, clips: Clips, index: int, raw: str) -> dict:
    parsed = parse_answer(raw)
    return {
        "clip_id": clips.ids[index],
        **identity,
        "raw_answer": raw,
        "parsed": UNPARSED if parsed is None else GENRES[parsed],
        "label": GENRES[int(sharpen_ids(clips.soft_labels[index]))],
        "soft_label": [round(float(w), 6) for w in clips.soft_labels[index]],
    }


def _parsed_id(row: dict) -> int | None:
    return None if row["parsed"] == UNPARSED else GENRES.index(row["parsed"])


def summary_line(record: dict) -> str:
    def f(key):
        return format_figure(record[key], record.get("intervals", {}).get(key))

    return (f"MLLM {record['model']} ({record['prompt_version']}) on {record['num_clips']} {record['split']} clips "
            f"({record['num_tracks']} tracks; {level_text(record['bootstrap']['level'])} track-bootstrap intervals): "
            f"accuracy {f('accuracy')}, weighted P/R/F1 {f('precision_weighted')} / {f('recall_weighted')} / "
            f"{f('f1_weighted')}, unparsed {record['num_unparsed']}, intersect rate {f('intersect_rate')}")
