"""The genre timeline of a long DJ set with a trained HouseX model (``housex.timeline``).

``timeline``: slide a clip-long window over the set (hop ``hop_seconds``), classify the windows
batch by batch (features for one batch at a time, never the whole set), smooth the probabilities
over time (``scipy.ndimage`` median or uniform filter), and cut the set into segments of one top
genre, merging segments shorter than ``min_segment_seconds`` into a neighbour.  A ``Timeline``
writes CSV, JSON and a PNG (stacked genre probabilities over time).  Decoding, the silence and
length checks and the batched classification are ``housex.inference``'s.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .dataset_script.clips import cut_clip
from .inference import DEFAULT_BATCH_SIZE, extractor_clip_seconds, label_names, load_classifier, window_probabilities
from .results import GenreDistribution, mmss
from .track_audio import read_audio


def window_starts(duration: float, clip_seconds: float, hop_seconds: float) -> np.ndarray:
    """Start times (s) of clip-long windows every ``hop_seconds``; the last window ends at the end.

    A signal shorter than one clip gets a single window at 0 (padded by the feature extractor).
    """
    if hop_seconds <= 0:
        raise ValueError(f"hop_seconds must be > 0, got {hop_seconds}")
    last = duration - clip_seconds
    if last <= 0:
        return np.zeros(1)
    starts = np.arange(0.0, last + 1e-9, hop_seconds)
    if last - starts[-1] > 1e-6:
        starts = np.append(starts, last)
    return starts


def smooth_probabilities(probs: np.ndarray, size: int, method: str = "median") -> np.ndarray:
    """Smooth (N, C) window probabilities along time with a ``size``-window filter; rows renormalised.

    ``median``: ``scipy.ndimage.median_filter`` (keeps sharp genre changes); ``mean``:
    ``scipy.ndimage.uniform_filter1d``.  Edges use ``nearest``.
    """
    from scipy import ndimage

    if size <= 1 or len(probs) < 2:
        return probs.astype(np.float32, copy=True)
    if method == "median":
        out = ndimage.median_filter(probs, size=(size, 1), mode="nearest")
    elif method == "mean":
        out = ndimage.uniform_filter1d(probs, size=size, axis=0, mode="nearest")
    else:
        raise ValueError(f"smoothing method must be 'median' or 'mean', got {method!r}")
    out = np.clip(out, 0, None)
    return (out / np.maximum(out.sum(1, keepdims=True), 1e-12)).astype(np.float32)


def segment_windows(probs: np.ndarray, min_windows: int) -> list[tuple[int, int]]:
    """Cut (N, C) smoothed probabilities into runs ``[i0, i1)`` of one top class.

    Runs shorter than ``min_windows`` are merged, shortest first, into the neighbour whose class
    is more probable over the short run; adjacent runs that end up with the same top class (argmax
    of their mean) are joined.
    """
    n = len(probs)
    if n == 0:
        return []
    top = probs.argmax(1)
    cuts = np.flatnonzero(np.diff(top)) + 1
    runs = [[int(a), int(b)] for a, b in zip(np.r_[0, cuts], np.r_[cuts, n])]

    def label(run):
        return int(probs[run[0] : run[1]].mean(0).argmax())

    while len(runs) > 1:
        lengths = [b - a for a, b in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_windows:
            break
        a, b = runs[i]
        if i == 0:
            j = 1
        elif i == len(runs) - 1:
            j = i - 1
        else:
            left, right = label(runs[i - 1]), label(runs[i + 1])
            mean = probs[a:b].mean(0)
            j = i - 1 if mean[left] >= mean[right] else i + 1
        lo, hi = min(i, j), max(i, j)
        runs[lo:hi + 1] = [[runs[lo][0], runs[hi][1]]]
        # join neighbours that now share a top class
        k = 0
        while k < len(runs) - 1:
            if label(runs[k]) == label(runs[k + 1]):
                runs[k:k + 2] = [[runs[k][0], runs[k + 1][1]]]
            else:
                k += 1
    return [(a, b) for a, b in runs]


@dataclass
class Segment(GenreDistribution):
    """A stretch of the set with one top genre and its mean (8,) distribution."""

    start: float
    end: float
    probabilities: np.ndarray
    labels: Sequence[str]

    @property
    def score(self) -> float:
        return float(np.max(self.probabilities))

    def to_dict(self) -> dict:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "genre": self.genre,
            "score": round(self.score, 4),
            "probabilities": {g: round(float(p), 4) for g, p in zip(self.labels, self.probabilities)},
        }


@dataclass
class Timeline:
    """Window-level and segment-level genre predictions over a long mix.

    ``window_starts`` (N,) s; ``times`` (N,) window centres; ``probabilities`` (N, C) raw window
    probabilities; ``smoothed`` (N, C) after temporal smoothing; ``segments`` in time order.
    """

    source: str
    duration: float
    clip_seconds: float
    hop_seconds: float
    window_starts: np.ndarray
    probabilities: np.ndarray
    smoothed: np.ndarray
    segments: list[Segment]
    labels: Sequence[str]
    settings: dict = field(default_factory=dict)

    @property
    def times(self) -> np.ndarray:
        return np.minimum(self.window_starts + self.clip_seconds / 2, self.duration)

    def to_dict(self, *, windows: bool = True) -> dict:
        d = {
            "source": self.source,
            "duration": round(self.duration, 3),
            "clip_seconds": self.clip_seconds,
            "hop_seconds": self.hop_seconds,
            "labels": list(self.labels),
            "settings": dict(self.settings),
            "segments": [s.to_dict() for s in self.segments],
        }
        if windows:
            d["windows"] = {
                "start": [round(float(t), 3) for t in self.window_starts],
                "probabilities": np.round(self.probabilities, 4).tolist(),
                "smoothed": np.round(self.smoothed, 4).tolist(),
            }
        return d

    def write_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    def write_csv(self, path: str | os.PathLike) -> Path:
        """One row per segment: start, end, genre, score, then one probability column per genre."""
        path = Path(path)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["start", "end", "genre", "score", *self.labels])
            for s in self.segments:
                w.writerow([f"{s.start:.3f}", f"{s.end:.3f}", s.genre, f"{s.score:.4f}",
                            *(f"{p:.4f}" for p in s.probabilities)])
        return path

    def write_png(self, path: str | os.PathLike, title: str | None = None) -> Path:
        from .plots import plot_timeline

        return plot_timeline(self, path, title=title)

    def write(self, prefix: str | os.PathLike) -> dict[str, Path]:
        """Write ``PREFIX.csv``, ``PREFIX.json`` and ``PREFIX.png``; returns the paths."""
        prefix = Path(prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        base = str(prefix.with_suffix("")) if prefix.suffix.lower() in (".csv", ".json", ".png") else str(prefix)
        return {
            "csv": self.write_csv(base + ".csv"),
            "json": self.write_json(base + ".json"),
            "png": self.write_png(base + ".png"),
        }

    def format(self) -> str:
        lines = [f"{self.source}  ({mmss(self.duration)}, {len(self.window_starts)} windows, {len(self.segments)} segments)"]
        for s in self.segments:
            lines.append(f"  {mmss(s.start):>8} - {mmss(s.end):>8}  {s.genre:<18} {s.score:.2f}")
        return "\n".join(lines)


def timeline(
    source,
    model,
    feature_extractor=None,
    *,
    sampling_rate: int | None = None,
    hop_seconds: float = 2.5,
    smooth_seconds: float = 15.0,
    smoothing: str = "median",
    min_segment_seconds: float = 30.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    min_seconds: float = 1.0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Timeline:
    """Genre timeline of a long mix.

    Args:
        source: audio path or array (samples,) / (channels, samples) with ``sampling_rate``.
        hop_seconds: window hop (windows are the model's clip length, 7.5 s by default).
        smooth_seconds: temporal smoothing span (converted to an odd number of windows).
        smoothing: ``median`` or ``mean``.
        min_segment_seconds: segments shorter than this are merged into a neighbour.
        progress: show a tqdm bar over window batches.

    Returns:
        ``Timeline``; ``.write(prefix)`` writes CSV, JSON and PNG.
    """
    model, feature_extractor = load_classifier(model, feature_extractor, device=device)
    sr = int(feature_extractor.sampling_rate)
    mono, name, _ = read_audio(source, sampling_rate, sr, min_seconds=min_seconds)
    return timeline_from_mono(mono, name, model, feature_extractor, hop_seconds=hop_seconds,
                              smooth_seconds=smooth_seconds, smoothing=smoothing,
                              min_segment_seconds=min_segment_seconds, batch_size=batch_size, device=device,
                              progress=progress)


def timeline_from_mono(mono: np.ndarray, name: str, model, feature_extractor, *, hop_seconds: float = 2.5,
                       smooth_seconds: float = 15.0, smoothing: str = "median", min_segment_seconds: float = 30.0,
                       batch_size: int = DEFAULT_BATCH_SIZE, device=None, progress: bool = False) -> Timeline:
    """:func:`timeline` (same defaults) of a signal already read and checked by ``read_audio``: mono
    at the model's rate, from a loaded model (``set_cues`` decodes and checks a set once for both)."""
    sr = int(feature_extractor.sampling_rate)
    clip_seconds = extractor_clip_seconds(feature_extractor)
    duration = mono.size / sr
    labels = label_names(model)

    starts = window_starts(duration, clip_seconds, hop_seconds)

    # Windows are cut when their batch runs and featurised one batch at a time: memory stays at a
    # few batches.  The batches run in parallel on the CPU's cores (window_probabilities).
    def window(i: int) -> np.ndarray:
        return cut_clip(mono, sr, float(starts[i]), clip_seconds) if duration >= clip_seconds else mono

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(starts), desc="timeline", unit="window")
    try:
        probs = window_probabilities(window, len(starts), model, feature_extractor, batch_size, device=device,
                                     progress=None if bar is None else (lambda done: bar.update(done - bar.n)))
    finally:
        if bar is not None:
            bar.close()

    size = max(1, int(round(smooth_seconds / hop_seconds)))
    size += 1 - size % 2  # odd: centred filter
    smoothed = smooth_probabilities(probs, size, smoothing)
    min_windows = max(1, int(math.ceil(min_segment_seconds / hop_seconds)))
    runs = segment_windows(smoothed, min_windows)

    # A segment reports the mean of its raw window probabilities; neighbours whose means agree on
    # the top genre (possible after smoothing) are one segment.
    joined: list[tuple[int, int]] = []
    for a, b in runs:
        if joined and probs[joined[-1][0]:joined[-1][1]].mean(0).argmax() == probs[a:b].mean(0).argmax():
            a = joined.pop()[0]
        joined.append((a, b))
    centres = np.minimum(starts + clip_seconds / 2, duration)
    segments = []
    for a, b in joined:
        seg_start = 0.0 if a == 0 else float((centres[a - 1] + centres[a]) / 2)
        seg_end = duration if b == len(starts) else float((centres[b - 1] + centres[b]) / 2)
        segments.append(Segment(seg_start, seg_end, probs[a:b].mean(0).astype(np.float32), labels))
    settings = {"smooth_seconds": smooth_seconds, "smoothing": smoothing, "smooth_windows": size,
                "min_segment_seconds": min_segment_seconds}
    return Timeline(name, duration, clip_seconds, hop_seconds, starts, probs, smoothed, segments, labels, settings)
