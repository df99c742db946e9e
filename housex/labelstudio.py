"""Label Studio both ways: the labeling config for our soft labels, and pre-annotated import tasks.

``labeling_config()`` is the project's XML: an audio player, the detected drops, and one
``Number`` field per genre (0-1, step 0.25) named as in the real HouseX-v2 export ("Techno" for
Tech House), so exports of a new project read with ``housex build`` as the release does.

``prediction_task(...)`` / ``make_tasks(...)`` turn model predictions into import tasks: the track
distribution (from ``housex.inference.classify_track``, the one inference path) rounded to the
0.25 grid and summing to 1 (``quantize``), one ``number`` result per genre as in the real export,
the model version, and the detected drops in the task data.  An annotator who accepts the
pre-annotation produces exactly the soft label that was predicted.

Exports are read by ``housex.dataset_script.labelstudio`` (JSON, and CSV/TSV as Label Studio's
CSV export writes them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from .dataset_script.genres import GENRES

# Field names of the real export (the authors' project calls Tech House "Techno"), canonical order.
EXPORT_NAMES = tuple("Techno" if g == "Tech House" else g for g in GENRES)
GRID_STEP = 0.25
DEFAULT_UPLOAD_PREFIX = "/data/upload/1/"


def labeling_config(step: float = GRID_STEP) -> str:
    """Label Studio labeling config (XML): audio player, drops, one 0-1 number per genre."""
    fields = "\n".join(
        f"    <View>\n      <Header value={quoteattr(name)} size=\"6\"/>\n"
        f"      <Number name={quoteattr(name)} toName=\"audio\" min=\"0\" max=\"1\" step=\"{step:g}\"/>\n    </View>"
        for name in EXPORT_NAMES
    )
    return (
        "<View>\n"
        "  <Header value=\"$track\"/>\n"
        "  <Audio name=\"audio\" value=\"$audio\"/>\n"
        "  <Header value=\"$drops_text\" size=\"6\"/>\n"
        f"  <Header value=\"Genre weights: 0 to 1 in steps of {step:g}, summing to 1\" size=\"5\"/>\n"
        "  <View style=\"display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px\">\n"
        f"{fields}\n"
        "  </View>\n"
        "</View>\n"
    )


def quantize(probabilities: Sequence[float] | np.ndarray, step: float = GRID_STEP) -> np.ndarray:
    """Round a distribution to multiples of ``step`` that sum to exactly 1 (largest remainder).

    Each weight gets ``floor(p / step)`` steps; the steps still missing go to the largest
    remainders (a tie goes to the lower genre index).  Returns float64 (n,).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 1 or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"quantize: expected a finite non-negative distribution, got {p}")
    units = int(round(1 / step))
    if abs(units * step - 1) > 1e-9:
        raise ValueError(f"quantize: 1 must be a multiple of step, got step={step}")
    scaled = p / p.sum() * units
    counts = np.floor(scaled + 1e-9).astype(int)
    order = np.argsort(-(scaled - counts), kind="stable")
    counts[order[: units - counts.sum()]] += 1
    return counts * step


def format_drops(drops: Sequence[tuple[float, float]], fallback: bool = False) -> str:
    """``"Detected drops: 0:45.1-1:15.9, 2:10.0-2:41.2"`` (or the fallback section, flagged)."""
    from .results import mmss

    spans = ", ".join(f"{mmss(a)}-{mmss(b)}" for a, b in drops) or "none"
    return f"No drop detected; loudest section: {spans}" if fallback else f"Detected drops: {spans}"


def prediction_task(
    audio_name: str,
    probabilities: Sequence[float] | np.ndarray,
    *,
    model_version: str,
    drops: Sequence[tuple[float, float]] = (),
    fallback: bool = False,
    duration: float | None = None,
    upload_prefix: str = DEFAULT_UPLOAD_PREFIX,
) -> dict:
    """One Label Studio import task with the model's pre-annotation.

    ``probabilities`` (8,) in canonical genre order; the prediction's ``result`` holds one
    ``number`` per genre (rounded by :func:`quantize`), its ``score`` the top probability.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.shape != (len(GENRES),):
        raise ValueError(f"{audio_name}: expected {len(GENRES)} probabilities, got shape {probs.shape}")
    weights = quantize(probs)
    result = [
        {
            "id": f"housex-{k}",
            "from_name": name,
            "to_name": "audio",
            "type": "number",
            "value": {"number": float(w)},
        }
        for k, (name, w) in enumerate(zip(EXPORT_NAMES, weights))
    ]
    sections = [[round(float(a), 3), round(float(b), 3)] for a, b in drops]
    data = {
        "audio": upload_prefix + audio_name,
        "track": audio_name,
        "drops": sections,
        "drops_text": format_drops(drops, fallback),
        "fallback": bool(fallback),
    }
    if duration is not None:
        data["duration"] = round(float(duration), 3)
    return {
        "data": data,
        "predictions": [{"model_version": model_version, "score": round(float(probs.max()), 4), "result": result}],
    }


def make_tasks(
    sources: Sequence[str | os.PathLike],
    model_dir: str | os.PathLike,
    *,
    upload_prefix: str = DEFAULT_UPLOAD_PREFIX,
    batch_size: int = 16,
    clips_per_drop: int = 4,
    seed: int = 0,
    device: str | None = None,
    on_error=None,
) -> list[dict]:
    """Pre-annotated tasks for audio files and folders (walked for audio files), in path order.

    A file that cannot be classified is left out and passed to ``on_error(path, error)``
    (default: re-raised).
    """
    from .inference import AudioInputError, classify_track, load_classifier
    from .model_version import model_version
    from .dataset_script.audio import find_audio_files

    model, fe = load_classifier(model_dir, device=device)
    version = model_version(model_dir, clips_per_drop=clips_per_drop, seed=seed)
    tasks, names = [], {}
    for path in find_audio_files(sources):
        if path.name in names:
            raise ValueError(f"{path}: same file name as {names[path.name]}; Label Studio tasks are matched by file name")
        names[path.name] = path
        try:
            pred = classify_track(path, model, fe, batch_size=batch_size, clips_per_section=clips_per_drop,
                                  seed=seed, device=device)
        except (AudioInputError, ValueError, OSError, RuntimeError) as e:
            if on_error is None:
                raise
            on_error(path, e)
            continue
        tasks.append(prediction_task(
            path.name, pred.probabilities, model_version=version, drops=[(d.start, d.end) for d in pred.drops],
            fallback=pred.fallback, duration=pred.duration, upload_prefix=upload_prefix,
        ))
    return tasks


def write_tasks(path: str | os.PathLike, tasks: Sequence[dict]) -> Path:
    """Write import tasks as one JSON list (what Label Studio's import accepts)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(tasks), indent=1) + "\n", encoding="utf-8")
    return path
