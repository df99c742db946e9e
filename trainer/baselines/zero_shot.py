"""Zero-shot CLAP: score each clip against the 8 genre names (optionally with short descriptions).

The candidate texts are a template (``{}`` = the genre) filled with each genre in canonical order;
CLAP's audio-text similarities, softmaxed over the 8 texts, are the predicted distribution, scored
with the HouseX metric (accuracy, weighted P/R/F1, top-2, KL, ECE, ...).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from housex.dataset_script.genres import GENRE_DESCRIPTIONS, GENRES

from .common import load_clips, score_probabilities, write_json

logger = logging.getLogger("housex.trainer.baselines.zero_shot")

DEFAULT_TEMPLATE = "This is a sound of {} music."


def candidate_texts(template: str = DEFAULT_TEMPLATE, descriptions: bool = False) -> list[str]:
    """One text per genre in canonical order: ``template`` with ``{}`` replaced by the genre."""
    if "{}" not in template:
        raise ValueError(f"--template {template!r}: needs a {{}} where the genre name goes")
    names = [f"{g} ({GENRE_DESCRIPTIONS[g]})" if descriptions else g for g in GENRES]
    return [template.replace("{}", name) for name in names]


def load_clap_processor(model: str):
    """The processor of a CLAP folder or Hub id; a one-line error for any other model kind."""
    from transformers import AutoConfig, AutoProcessor

    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"--model {model}: not a transformers model folder or Hub id ({str(e).splitlines()[0]})") from None
    if config.model_type != "clap":
        raise ValueError(f"--model {model}: model_type {config.model_type!r} is not a CLAP model (zero-shot needs a ClapModel)")
    return AutoProcessor.from_pretrained(model)


def zero_shot(model: str, dataset: str, *, split: str = "validation", template: str = DEFAULT_TEMPLATE,
              descriptions: bool = False, batch_size: int = 8, device: str = "cpu", out: str | Path | None = None,
              clip_seconds: float | None = None) -> dict:
    """Score the ``split`` clips with CLAP; returns (and writes ``out/metrics.json``) the record."""
    import torch
    from transformers import ClapModel

    texts = candidate_texts(template, descriptions)
    processor = load_clap_processor(model)
    clips = load_clips(dataset, split, sampling_rate=processor.feature_extractor.sampling_rate, max_seconds=clip_seconds)
    clap = ClapModel.from_pretrained(model).to(device).eval()
    text_inputs = processor.tokenizer(texts, padding=True, return_tensors="pt").to(device)
    probs = np.zeros((len(clips), len(GENRES)), dtype=np.float64)
    with torch.inference_mode():
        for indices, waves in clips.batches(batch_size):
            audio_inputs = processor.feature_extractor(waves, sampling_rate=clips.sampling_rate, return_tensors="pt").to(device)
            logits = clap(**text_inputs, **audio_inputs).logits_per_audio
            probs[indices] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    scores = score_probabilities(probs, clips.soft_labels)
    record = {
        "baseline": "zero-shot",
        "model": str(model),
        "dataset": clips.source,
        "split": split,
        "template": template,
        "descriptions": bool(descriptions),
        "candidate_texts": texts,
        "labels": list(GENRES),
        "num_clips": len(clips),
        **scores,
    }
    if out is not None:
        write_json(Path(out) / "metrics.json", record)
    logger.info("zero-shot CLAP %s: weighted F1 %.3f on %d clips", model, scores["f1_weighted"], len(clips))
    return record


def summary_line(record: dict) -> str:
    return (f"zero-shot CLAP {record['model']} on {record['num_clips']} {record['split']} clips: "
            f"accuracy {record['accuracy']:.3f}, weighted P/R/F1 {record['precision_weighted']:.3f} / "
            f"{record['recall_weighted']:.3f} / {record['f1_weighted']:.3f}, top-2 {record['top2_accuracy']:.3f}, "
            f"KL {record['kl_divergence']:.3f}, ECE {record['ece']:.3f}")
