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

from ..statistics import Bootstrap, format_figure, level_text
from .common import hub_access, load_clips, write_scores

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

    access = hub_access(model)
    try:
        config = AutoConfig.from_pretrained(model, **access)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"--model {model}: not a transformers model folder or Hub id ({str(e).splitlines()[0]})") from None
    if config.model_type != "clap":
        raise ValueError(f"--model {model}: model_type {config.model_type!r} is not a CLAP model (zero-shot needs a ClapModel)")
    return AutoProcessor.from_pretrained(model, **access)


def zero_shot(model: str, dataset: str, *, split: str = "validation", template: str = DEFAULT_TEMPLATE,
              descriptions: bool = False, batch_size: int = 8, device: str = "cpu", out: str | Path | None = None,
              clip_seconds: float | None = None, bootstrap: Bootstrap = Bootstrap()) -> dict:
    """Score the ``split`` clips with CLAP; returns (and writes ``out/predictions.parquet`` and
    ``out/metrics.json``) the record."""
    import torch
    from transformers import ClapModel

    texts = candidate_texts(template, descriptions)
    processor = load_clap_processor(model)
    clips = load_clips(dataset, split, sampling_rate=processor.feature_extractor.sampling_rate, max_seconds=clip_seconds)
    clap = ClapModel.from_pretrained(model, **hub_access(model)).to(device).eval()
    text_inputs = processor.tokenizer(texts, padding=True, return_tensors="pt").to(device)
    probs = np.zeros((len(clips), len(GENRES)), dtype=np.float64)
    with torch.inference_mode():
        for indices, waves in clips.batches(batch_size):
            audio_inputs = processor.feature_extractor(waves, sampling_rate=clips.sampling_rate, return_tensors="pt").to(device)
            logits = clap(**text_inputs, **audio_inputs).logits_per_audio
            probs[indices] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
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
    }
    row_info = {"kind": "zero-shot", "model": f"CLAP {Path(model).name if Path(model).is_dir() else model}",
                "features": "names + descriptions" if descriptions else "genre names", "labels": None,
                "dataset": clips.source, "split": split}
    record = write_scores(out, record=record, row_info=row_info, clip_ids=clips.ids, track_ids=clips.track_ids,
                          soft_labels=clips.soft_labels, probabilities=probs, bootstrap=bootstrap)
    logger.info("zero-shot CLAP %s: weighted F1 %.3f on %d clips", model, record["f1_weighted"], len(clips))
    return record


def summary_line(record: dict) -> str:
    def f(key):
        return format_figure(record[key], record.get("intervals", {}).get(key))

    return (f"zero-shot CLAP {record['model']} on {record['num_clips']} {record['split']} clips "
            f"({record['num_tracks']} tracks; {level_text(record['bootstrap']['level'])} track-bootstrap intervals): accuracy {f('accuracy')}, "
            f"weighted F1 {f('f1_weighted')}, top-2 {f('top2_accuracy')}, KL {f('kl_divergence')}, ECE {f('ece')}")
