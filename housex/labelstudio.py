"""Label Studio both ways: the labeling config for our soft labels, and pre-annotated import tasks.

``labeling_config()`` is the project's XML: an audio player, the detected drops, and one
``Number`` field per genre (0-1, step 0.25).  Each field is named as in the real HouseX-v2 export
("Techno" for Tech House), so exports of a new project read with ``housex build`` as the release
does; the header above it shows the genre's name ("Tech House").

``prediction_task(...)`` / ``make_tasks(...)`` turn model predictions into import tasks: the track
distribution (from ``housex.inference.classify_track``, the one inference path) snapped to the
nearest weight pattern annotators use (``snap_to_pattern``: one genre at 1, 0.75/0.25, 0.5/0.5 or
0.5/0.25/0.25, as in the real exports), one ``number`` result per genre as in the real export, the
model version, and the detected drops in the task data.  An annotator who accepts the
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
from .dataset_script.labelstudio import EXPORT_NAMES, LABEL_PATTERNS

GRID_STEP = 0.25  # the step of every weight in LABEL_PATTERNS
DEFAULT_UPLOAD_PREFIX = "/data/upload/1/"


def labeling_config(step: float = GRID_STEP) -> str:
    """Label Studio labeling config (XML): audio player, drops, one 0-1 number per genre."""
    fields = "\n".join(
        f"    <View>\n      <Header value={quoteattr(genre)} size=\"6\"/>\n"
        f"      <Number name={quoteattr(name)} toName=\"audio\" min=\"0\" max=\"1\" step=\"{step:g}\"/>\n    </View>"
        for genre, name in zip(GENRES, EXPORT_NAMES)
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


def snap_to_pattern(probabilities: Sequence[float] | np.ndarray) -> np.ndarray:
    """The weight pattern annotators use (``LABEL_PATTERNS``) nearest to a distribution.

    The pattern's weights go to the genres in the order of their probability (a tie to the lower
    genre index), so a genre never gets more weight than a likelier one; the pattern is the one
    at the least total variation distance from the normalised distribution (a tie goes to the
    commoner pattern).  For 0.34 / 0.29 / 0.17 / 0.09 that is 0.5 / 0.25 / 0.25, never four
    quarters.  Returns float64 (n,) summing to 1.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 1 or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"snap_to_pattern: expected a finite non-negative distribution, got {p}")
    order = np.argsort(-p, kind="stable")
    ranked = p[order] / p.sum()

    def distance(pattern: tuple[float, ...]) -> float:
        return float(np.abs(ranked - np.pad(pattern, (0, len(p) - len(pattern)))).sum())

    pattern = min((pat for pat in LABEL_PATTERNS if len(pat) <= len(p)), key=lambda pat: (round(distance(pat), 9), -LABEL_PATTERNS[pat]))
    weights = np.zeros(len(p))
    weights[order[: len(pattern)]] = pattern
    return weights


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
    ``number`` per genre (snapped by :func:`snap_to_pattern`), its ``score`` the top probability.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.shape != (len(GENRES),):
        raise ValueError(f"{audio_name}: expected {len(GENRES)} probabilities, got shape {probs.shape}")
    weights = snap_to_pattern(probs)
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
