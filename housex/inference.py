"""Whole-track and DJ-set classification with a trained HouseX model.

``classify_track``: decode (soundfile, or torchcodec + FFmpeg for mp3/m4a/...), mono, resample to
the feature extractor's rate, detect the drops (``dataset_script.drops``; when none is found the
detector's fallback section is used and the result says so), sample 7.5 s clips per drop as the
dataset builder does (``dataset_script.clips``), classify them in batches, and aggregate: the mean
of the clip probabilities per drop, then the mean of the drop distributions for the track.

``timeline``: slide a clip-long window over a long DJ set (hop ``hop_seconds``), classify the
windows batch by batch (features for one batch at a time, never the whole set), smooth the
probabilities over time (``scipy.ndimage`` median or uniform filter), and cut the set into
segments of one top genre, merging segments shorter than ``min_segment_seconds`` into a
neighbour.  Results write CSV, JSON and a PNG (stacked genre probabilities over time).

Short or silent input (documented behaviour, tested):

* no samples, non-finite samples, or a signal that never exceeds ``SILENCE_DBFS`` → ``AudioInputError``
  (a ``ValueError``) naming the file;
* shorter than ``min_seconds`` (default 1 s) → ``AudioInputError`` naming the file;
* at least ``min_seconds`` but shorter than one clip → one zero-padded clip is classified (the
  feature extractor pads it and masks the padding); the result has ``padded=True`` and a note.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .dataset_script.audio import load_audio, to_mono
from .dataset_script.clips import TrackTooShort, analyse_track, cut_clip

DEFAULT_BATCH_SIZE = 16
SILENCE_DBFS = -60.0  # peak level below which a file is treated as silent (the drop detector's level)
DEFAULT_CLIP_SECONDS = 7.5  # the paper's clip length, used when a feature extractor does not say


class AudioInputError(ValueError):
    """Audio that cannot be classified (silent, too short, not finite); the message names the file."""


# --------------------------------------------------------------------------------------------
# model loading and batched clip classification
# --------------------------------------------------------------------------------------------


def load_classifier(model, feature_extractor=None, *, device: str | torch.device | None = None):
    """A model folder (``save_pretrained`` output) or a loaded model → ``(model, feature_extractor)``.

    The model is put in eval mode (and moved to ``device`` when given).  The feature extractor is
    read from the same folder unless one is passed.
    """
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    import housex  # noqa: F401  registers the HouseX Auto classes

    if isinstance(model, (str, os.PathLike)):
        folder = Path(model)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder}: not a model folder (expected config.json and model.safetensors written by save_pretrained)"
            )
        model = AutoModelForAudioClassification.from_pretrained(folder)
        if feature_extractor is None:
            feature_extractor = AutoFeatureExtractor.from_pretrained(folder)
    elif feature_extractor is None:
        source = getattr(model, "name_or_path", "") or ""
        if not source or not Path(source, "preprocessor_config.json").is_file():
            raise ValueError("feature_extractor is required when the model was not loaded from a folder")
        feature_extractor = AutoFeatureExtractor.from_pretrained(source)
    if device is not None:
        model = model.to(device)
    model.eval()
    return model, feature_extractor


def clip_seconds_of(feature_extractor) -> float:
    """Clip length in seconds the feature extractor pads/crops to."""
    return float(getattr(feature_extractor, "clip_seconds", None) or DEFAULT_CLIP_SECONDS)


def label_names(model) -> list[str]:
    """Class names in id order, from ``model.config.id2label``."""
    id2label = model.config.id2label
    return [str(id2label[i]) for i in range(len(id2label))]


def classify_clips(
    clips: Sequence[np.ndarray] | np.ndarray,
    model,
    feature_extractor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Class probabilities of mono clips at the feature extractor's rate.

    Args:
        clips: N mono clips, each (samples,) float (a 2-D (N, samples) array works too); clips
            shorter than ``clip_seconds`` are padded by the feature extractor.
        batch_size: clips per forward pass; features exist for one batch at a time.

    Returns:
        float32 (N, num_labels), rows sum to 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = [p for p in _iter_probabilities(iter(clips), model, feature_extractor, batch_size, device=device)]
    n_labels = len(model.config.id2label)
    return np.concatenate(out) if out else np.zeros((0, n_labels), np.float32)


def _iter_outputs(clips: Iterator[np.ndarray], model, feature_extractor, batch_size: int, *, device=None):
    """Yield the model output of each batch of ``batch_size`` clips pulled from ``clips``."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    while True:
        batch = [np.asarray(c, dtype=np.float32) for _, c in zip(range(batch_size), clips)]
        if not batch:
            return
        inputs = feature_extractor(batch, sampling_rate=feature_extractor.sampling_rate, return_tensors="pt")
        inputs = {k: inputs[k].to(device) for k in ("input_features", "attention_mask") if k in inputs}
        with torch.inference_mode():
            yield model(**inputs)


def _iter_probabilities(clips: Iterator[np.ndarray], model, feature_extractor, batch_size: int, *, device=None):
    """Yield (b, num_labels) float32 probability blocks, ``batch_size`` clips at a time."""
    for out in _iter_outputs(clips, model, feature_extractor, batch_size, device=device):
        yield out.logits.float().softmax(-1).cpu().numpy()


def embed_clips(
    clips: Sequence[np.ndarray] | np.ndarray,
    model,
    feature_extractor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Pooled embeddings (the classifier's input, ``pooler_output``) of mono clips: float32 (N, d_model)."""
    blocks = [
        out.pooler_output.float().cpu().numpy()
        for out in _iter_outputs(iter(clips), model, feature_extractor, batch_size, device=device)
    ]
    return np.concatenate(blocks) if blocks else np.zeros((0, model.config.hidden_size), np.float32)


def dataset_embeddings(
    model,
    dataset_dir: str | os.PathLike,
    *,
    feature_extractor=None,
    split: str = "validation",
    max_clips: int | None = 400,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pooled embeddings of the ``clips`` config of an exported dataset folder.

    Returns ``(embeddings (N, d_model), primary genre ids (N,), label names)``; at most
    ``max_clips`` clips, a ``seed``-ed random subset, decoded at the feature extractor's rate.
    """
    import datasets

    model, feature_extractor = load_classifier(model, feature_extractor, device=device)
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: dataset folder not found (write one with `housex build --out DIR`)")
    ds = datasets.load_dataset(str(folder), "clips", split=split)
    if max_clips is not None and len(ds) > max_clips:
        ds = ds.shuffle(seed=seed).select(range(max_clips))
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=int(feature_extractor.sampling_rate), num_channels=1))
    ids = np.asarray(ds["label"], dtype=np.int64)

    def clips():
        for example in ds:
            yield _decoded_mono(example["audio"])

    emb = np.concatenate(
        [
            out.pooler_output.float().cpu().numpy()
            for out in _iter_outputs(clips(), model, feature_extractor, batch_size, device=device)
        ]
    ) if len(ds) else np.zeros((0, model.config.hidden_size), np.float32)
    return emb, ids, label_names(model)


def _decoded_mono(audio) -> np.ndarray:
    """A decoded ``datasets.Audio`` value (torchcodec decoder or dict with ``array``) → (samples,) float32."""
    if hasattr(audio, "get_all_samples"):
        data = audio.get_all_samples().data.numpy()
    else:
        data = np.asarray(audio["array"])
    return to_mono(np.asarray(data, dtype=np.float32))


# --------------------------------------------------------------------------------------------
# audio input
# --------------------------------------------------------------------------------------------


def _read_mono(source, sampling_rate: int | None, target_rate: int, *, min_seconds: float) -> tuple[np.ndarray, str]:
    """Path or array → (mono float32 at ``target_rate``, display name); checks silence/length."""
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        if sampling_rate is not None:
            raise ValueError(f"{name}: sampling_rate is only for array input (a file carries its own rate)")
        y, sr = load_audio(source)
    else:
        name = "<array>"
        if sampling_rate is None:
            raise ValueError("sampling_rate is required when classifying an array")
        y, sr = np.asarray(source, dtype=np.float32), int(sampling_rate)
        if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[0] > 16):
            raise ValueError(
                f"{name}: expected (samples,) or (channels, samples) audio, got shape {y.shape}"
                + (" (transpose a (samples, channels) array)" if y.ndim == 2 else "")
            )
    mono = to_mono(y) if y.ndim == 2 else y
    if mono.size == 0:
        raise AudioInputError(f"{name}: no audio samples")
    if not np.isfinite(mono).all():
        raise AudioInputError(f"{name}: audio contains NaN or infinite samples")
    seconds = mono.size / sr
    if seconds < min_seconds:
        raise AudioInputError(f"{name}: only {seconds:.2f} s of audio; need at least {min_seconds:g} s to classify")
    peak = float(np.abs(mono).max())
    if peak <= 10 ** (SILENCE_DBFS / 20):
        level = "-inf" if peak == 0 else f"{20 * math.log10(peak):.0f}"
        raise AudioInputError(f"{name}: audio is silent (peak {level} dBFS); nothing to classify")
    if sr != target_rate:
        import soxr

        mono = soxr.resample(mono, sr, target_rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(mono, dtype=np.float32), name


# --------------------------------------------------------------------------------------------
# whole tracks
# --------------------------------------------------------------------------------------------


def _top(probs: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [(labels[i], float(probs[i])) for i in order]


class _GenreDistribution:
    """``genre`` and ``top(k)`` of a result holding ``probabilities`` (8,) and ``labels``."""

    probabilities: np.ndarray
    labels: Sequence[str]

    @property
    def genre(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return _top(self.probabilities, self.labels, k)


@dataclass
class DropPrediction(_GenreDistribution):
    """One drop section (or the fallback section) and the mean of its clips' probabilities (8,)."""

    start: float
    end: float
    probabilities: np.ndarray
    clip_starts: list[float]
    labels: Sequence[str]

    def to_dict(self) -> dict:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "genre": self.genre,
            "probabilities": {g: float(p) for g, p in zip(self.labels, self.probabilities)},
            "clip_starts": [round(s, 3) for s in self.clip_starts],
        }


@dataclass
class TrackPrediction(_GenreDistribution):
    """A track's genre distribution (mean over drops of the mean over each drop's clips).

    ``fallback``: no drop was detected and the detector's fallback section was used.
    ``padded``: the track is shorter than one clip and one zero-padded clip was classified.
    """

    source: str
    duration: float
    probabilities: np.ndarray
    drops: list[DropPrediction]
    labels: Sequence[str]
    fallback: bool = False
    padded: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "duration": round(self.duration, 3),
            "genre": self.genre,
            "probabilities": {g: float(p) for g, p in zip(self.labels, self.probabilities)},
            "fallback": self.fallback,
            "padded": self.padded,
            "notes": list(self.notes),
            "drops": [d.to_dict() for d in self.drops],
        }

    def format(self, k: int = 3) -> str:
        """Human-readable summary: track top-k, then each drop's top genres."""

        lines = [f"{self.source}  ({self.duration:.1f} s)", f"  track: {format_genres(self.top(k))}"]
        for i, d in enumerate(self.drops, 1):
            kind = "fallback section" if self.fallback else f"drop {i}"
            lines.append(f"  {kind} {mmss(d.start)}-{mmss(d.end)}: {format_genres(d.top(k))}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def format_genres(pairs) -> str:
    """``[(genre, weight), ...]`` → ``"Tech House 0.75, Deep House 0.25"``."""
    return ", ".join(f"{g} {p:.2f}" for g, p in pairs)


def mmss(seconds: float) -> str:
    """Seconds as ``m:ss.s`` (negative clamps to 0)."""
    m, s = divmod(max(0.0, seconds), 60)
    return f"{int(m)}:{s:04.1f}"


@dataclass
class TrackClips:
    """A track cut into the clips ``classify_track`` classifies (before any model runs).

    ``clips`` are mono float32 arrays at the feature extractor's rate; ``drop_index[i]`` is the
    section in ``sections`` that clip ``i`` (starting at ``clip_starts[i]`` s) was sampled from.
    """

    source: str
    duration: float
    sections: list[tuple[float, float]]
    clips: list[np.ndarray]
    clip_starts: list[float]
    drop_index: list[int]
    fallback: bool = False
    padded: bool = False
    notes: list[str] = field(default_factory=list)


def track_clips(
    source,
    target_rate: int,
    clip_seconds: float,
    *,
    sampling_rate: int | None = None,
    clips_per_section: int = 4,
    seed: int = 0,
    min_seconds: float = 1.0,
    drop_options: dict | None = None,
) -> TrackClips:
    """Decode ``source`` (a path, or an array with its ``sampling_rate``) to mono at ``target_rate``,
    find its drops and sample ``clip_seconds`` clips per drop (as the dataset builder does); a track
    shorter than one clip gives one short clip for the feature extractor to pad.

    Raises:
        AudioInputError: silent, non-finite or shorter than ``min_seconds`` (see module doc).
    """
    mono, name = _read_mono(source, sampling_rate, target_rate, min_seconds=min_seconds)
    try:
        track = analyse_track(mono, target_rate, drop_options=drop_options, clip_seconds=clip_seconds,
                              clips_per_section=clips_per_section, seed=seed, whole_track_fallback=True)
    except TrackTooShort:
        # Documented short-input behaviour: one clip, padded (and masked) by the feature extractor.
        duration = mono.size / target_rate
        note = f"track is {duration:.2f} s, shorter than one {clip_seconds:g} s clip: one zero-padded clip classified"
        return TrackClips(name, duration, [(0.0, duration)], [mono], [0.0], [0], fallback=True, padded=True, notes=[note])
    drops = track.drops
    if drops.silent:
        raise AudioInputError(f"{name}: audio is silent ({drops.reason}); nothing to classify")
    notes = []
    if drops.fallback:
        why = f" ({drops.reason})" if drops.reason else ""
        notes.append(f"no drop detected{why}: classified the fallback section {drops.sections[0][0]:.1f}-{drops.sections[0][1]:.1f} s")
    if not track.clips:
        raise RuntimeError(f"{name}: no clips could be sampled from sections {drops.sections}")
    return TrackClips(
        name, drops.duration, drops.sections,
        clips=[track.clip_audio(spec) for spec in track.clips],
        clip_starts=[float(spec.start) for spec in track.clips],
        drop_index=[int(spec.drop_index) for spec in track.clips],
        fallback=drops.fallback, notes=notes,
    )


def aggregate_track(track: TrackClips, probs: np.ndarray, labels: Sequence[str]) -> TrackPrediction:
    """Clip probabilities (N, num_labels), in ``track.clips`` order → ``TrackPrediction``: the mean
    over each drop's clips, then the mean over drops."""
    probs = np.asarray(probs, dtype=np.float32)
    if probs.shape != (len(track.clips), len(labels)):
        raise ValueError(f"{track.source}: expected probabilities of shape {(len(track.clips), len(labels))}, got {probs.shape}")
    drops = []
    for index, (start, end) in enumerate(track.sections):
        rows = [i for i, d in enumerate(track.drop_index) if d == index]
        if rows:
            drops.append(DropPrediction(start, end, probs[rows].mean(0), [track.clip_starts[i] for i in rows], labels))
    track_probs = np.mean([d.probabilities for d in drops], axis=0).astype(np.float32)
    return TrackPrediction(track.source, track.duration, track_probs, drops, labels,
                           fallback=track.fallback, padded=track.padded, notes=list(track.notes))


def classify_track(
    source,
    model,
    feature_extractor=None,
    *,
    sampling_rate: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    clips_per_section: int = 4,
    seed: int = 0,
    min_seconds: float = 1.0,
    drop_options: dict | None = None,
    device: str | torch.device | None = None,
) -> TrackPrediction:
    """Classify a whole track from its drops.

    Args:
        source: audio file path (any format soundfile or FFmpeg reads), or an array
            (samples,) / (channels, samples) with ``sampling_rate``.
        model: model folder or a loaded ``HouseXForAudioClassification`` (then pass
            ``feature_extractor`` unless the model was loaded from a folder).
        clips_per_section, seed: clip sampling per drop, as the dataset builder does it.
        drop_options: extra keyword arguments for ``detect_drops`` (e.g. ``margin_db``).

    Returns:
        ``TrackPrediction`` with per-drop (8,) and per-track (8,) distributions.

    Raises:
        AudioInputError: silent, non-finite or shorter than ``min_seconds`` (see module doc).
    """
    model, feature_extractor = load_classifier(model, feature_extractor, device=device)
    track = track_clips(
        source, int(feature_extractor.sampling_rate), clip_seconds_of(feature_extractor),
        sampling_rate=sampling_rate, clips_per_section=clips_per_section, seed=seed,
        min_seconds=min_seconds, drop_options=drop_options,
    )
    probs = classify_clips(track.clips, model, feature_extractor, batch_size, device=device)
    return aggregate_track(track, probs, label_names(model))


# --------------------------------------------------------------------------------------------
# DJ sets
# --------------------------------------------------------------------------------------------


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
class Segment:
    """A stretch of the set with one top genre and its mean (8,) distribution."""

    start: float
    end: float
    probabilities: np.ndarray
    labels: Sequence[str]

    @property
    def genre(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]

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
    clip_seconds = clip_seconds_of(feature_extractor)
    mono, name = _read_mono(source, sampling_rate, sr, min_seconds=min_seconds)
    duration = mono.size / sr
    labels = label_names(model)

    starts = window_starts(duration, clip_seconds, hop_seconds)
    # Windows are cut lazily and featurised one batch at a time: memory stays at one batch.
    windows = (cut_clip(mono, sr, float(s), clip_seconds) if duration >= clip_seconds else mono for s in starts)
    blocks = _iter_probabilities(windows, model, feature_extractor, batch_size, device=device)
    if progress:
        from tqdm.auto import tqdm

        blocks = tqdm(blocks, total=math.ceil(len(starts) / batch_size), desc="timeline", unit="batch")
    probs = np.concatenate(list(blocks))

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
