"""Whole-track classification with a trained HouseX model (the DJ-set timeline is ``housex.djset``).

``classify_track`` is the one track-inference path (``housex predict``, the pipeline task
``housex-track-classification``, the web app, ``housex tag`` and Label Studio tasks all call it):
decode (soundfile, or torchcodec + FFmpeg for mp3/m4a/...), mono, resample to the feature
extractor's rate, detect the drops (``dataset_script.drops``; when none is found the detector's
fallback section is used and the result says so), sample 7.5 s clips per drop as the dataset
builder does (``dataset_script.clips``), classify them in batches, and aggregate: the mean of the
clip probabilities per drop, then the mean of the drop distributions for the track.  The first
steps (up to the clips) are ``housex.track_audio.track_clips``, torch-free; ``classify_track``
also takes their result (``TrackClips``), for callers that cut the clips elsewhere (a worker
process) or keep the signal (the app's loudness plot).

Short or silent input (documented behaviour, tested):

* no samples, non-finite samples, or a signal that never exceeds ``SILENCE_DBFS`` (the drop
  detector's silence level) → ``AudioInputError`` (a ``ValueError``) naming the file;
* shorter than ``min_seconds`` (default 1 s) → ``AudioInputError`` naming the file;
* at least ``min_seconds`` but shorter than one clip → one zero-padded clip is classified (the
  feature extractor pads it and masks the padding); the result has ``padded=True`` and a note.

A DC offset alone counts as silence.  A truncated file (header longer than its data) and audio
peaking above +1 dBFS are classified as they are, with a note in ``TrackPrediction.notes``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .results import GenreDistribution, format_genres, mmss
# decoding, the input checks, drops and clips are torch-free (``housex.track_audio``); these names are
# part of this module's API: what ``classify_track`` raises and classifies
from .track_audio import AudioInputError, TrackClips, decoded_mono, track_clips  # noqa: F401

DEFAULT_BATCH_SIZE = 16
DEFAULT_CLIP_SECONDS = 7.5  # the paper's clip length, used when a feature extractor does not say



# --------------------------------------------------------------------------------------------
# model loading and batched clip classification
# --------------------------------------------------------------------------------------------


class ModelFolderError(ValueError):
    """A model folder that is missing, incomplete or corrupt; the message names the folder and file."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else "(no message)"


def check_model_folder(folder: str | os.PathLike) -> None:
    """Check a ``save_pretrained`` folder before loading: readable JSON configs, complete safetensors.

    Raises :class:`ModelFolderError` naming the folder and the bad file, so a truncated download or
    a hand-edited config is one clear line, not a traceback from the safetensors or JSON parser.
    """
    from safetensors import safe_open

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: not a model folder (folder not found)")
    if not (folder / "config.json").is_file():
        raise ModelFolderError(
            f"{folder}: not a model folder (expected config.json and model.safetensors written by save_pretrained)"
        )
    for name in ("config.json", "preprocessor_config.json"):
        path = folder / name
        if path.is_file():
            try:
                text = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ModelFolderError(f"{folder}: {name} is not valid JSON ({e})") from None
            if not isinstance(text, dict):
                raise ModelFolderError(f"{folder}: {name} must hold a JSON object, got {type(text).__name__}")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise ModelFolderError(f"{folder}: {index.name} is not a valid shard index ({e})") from None
    elif (folder / "model.safetensors").is_file():
        shards = ["model.safetensors"]
    else:
        raise ModelFolderError(f"{folder}: no model.safetensors (the weights written by save_pretrained)")
    for name in shards:
        path = folder / Path(name).name
        try:
            with safe_open(str(path), framework="pt") as f:
                keys = list(f.keys())
                # the header can be intact while the data is cut: the last tensor's end must be in the file
                if keys:
                    f.get_slice(keys[-1])
            _check_safetensors_size(path)
        except ModelFolderError:
            raise
        except Exception as e:  # SafetensorError, OSError, ...: the file is unreadable or truncated
            raise ModelFolderError(f"{folder}: {path.name} is not a complete safetensors file ({_first_line(e)})") from None


def _check_safetensors_size(path: Path) -> None:
    """The data section must be as long as the header says (safetensors' format: u64 header size)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end > size:
        raise ModelFolderError(f"{path.parent}: {path.name} is truncated ({size} of {8 + header_len + end} bytes)")


def load_classifier(model, feature_extractor=None, *, device: str | torch.device | None = None):
    """A model folder (``save_pretrained`` output) or a loaded model → ``(model, feature_extractor)``.

    The model is put in eval mode (and moved to ``device`` when given).  The feature extractor is
    read from the same folder unless one is passed.
    """
    # the HouseX classes are registered with these by `import housex` (housex/__init__.py)
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    if isinstance(model, (str, os.PathLike)):
        folder = Path(model)
        check_model_folder(folder)
        try:
            model = AutoModelForAudioClassification.from_pretrained(folder)
            if feature_extractor is None:
                feature_extractor = AutoFeatureExtractor.from_pretrained(folder)
        except Exception as e:  # whatever class a library raises for a bad folder: one line naming it
            raise ModelFolderError(f"{folder}: cannot load the model: {type(e).__name__}: {_first_line(e)}") from e
    elif feature_extractor is None:
        source = getattr(model, "name_or_path", "") or ""
        if not source or not Path(source, "preprocessor_config.json").is_file():
            raise ValueError("feature_extractor is required when the model was not loaded from a folder")
        feature_extractor = AutoFeatureExtractor.from_pretrained(source)
    if device is not None:
        model = model.to(device)
    model.eval()
    return model, feature_extractor


def extractor_clip_seconds(feature_extractor) -> float:
    """Clip length in seconds the feature extractor pads/crops to (its ``clip_seconds``, else 7.5 s)."""
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


def _probabilities(out) -> np.ndarray:
    return out.logits.float().softmax(-1).cpu().numpy()


def _iter_probabilities(clips: Iterator[np.ndarray], model, feature_extractor, batch_size: int, *, device=None):
    """Yield (b, num_labels) float32 probability blocks, ``batch_size`` clips at a time."""
    for out in _iter_outputs(clips, model, feature_extractor, batch_size, device=device):
        yield _probabilities(out)


_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"depth": 0, "saved": None}


@contextmanager
def torch_threads(n: int):
    """``torch.set_num_threads(n)`` for the block; the process's setting comes back when the last
    of overlapping blocks (two requests of the app, say) ends.  Results do not depend on it: the
    model's outputs are bit-identical for 1 and 2 threads (tested)."""
    with _THREADS_LOCK:
        if _THREADS_STATE["depth"] == 0:
            _THREADS_STATE["saved"] = torch.get_num_threads()
        _THREADS_STATE["depth"] += 1
        torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["depth"] -= 1
            if _THREADS_STATE["depth"] == 0:
                torch.set_num_threads(_THREADS_STATE["saved"])


def window_probabilities(
    window: Callable[[int], np.ndarray],
    n: int,
    model,
    feature_extractor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    device: str | torch.device | None = None,
    threads: int | None = None,
    progress=None,
) -> np.ndarray:
    """Probabilities (n, num_labels) of the clips ``window(0) ... window(n - 1)`` (cut on demand).

    The batches are those of :func:`classify_clips` (``batch_size`` clips, in order) and so are
    the results, bit for bit; on the CPU they are spread over ``threads`` Python threads (default:
    torch's thread count) that each run torch with one thread.  Whole batches in parallel keep
    every core busy where torch's own threads wait for each other at every operation: on a shared
    machine a preempted thread stalls all of them (7x slower per batch at load 5 on 2 cores).
    ``progress``: called with the number of clips done after each batch.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_batches = -(-n // batch_size)
    threads = torch.get_num_threads() if threads is None else int(threads)
    threads = max(1, min(threads, n_batches)) if device.type == "cpu" else 1

    def run(b: int) -> np.ndarray:
        clips = (window(i) for i in range(b * batch_size, min(n, (b + 1) * batch_size)))
        outputs = _iter_outputs(clips, model, feature_extractor, batch_size, device=device)
        try:
            return _probabilities(next(outputs))  # inside the generator's inference_mode, as classify_clips
        finally:
            outputs.close()  # leaves inference_mode in this thread

    blocks = []
    if threads == 1:
        for b in range(n_batches):
            blocks.append(run(b))
            if progress is not None:
                progress(min(n, (b + 1) * batch_size))
    else:
        from concurrent.futures import ThreadPoolExecutor

        with torch_threads(1), ThreadPoolExecutor(threads, thread_name_prefix="housex-windows") as pool:
            # at most 2 batches per thread in flight: memory stays at a few batches of clips
            pending, done = [], 0
            for b in range(n_batches):
                pending.append(pool.submit(run, b))
                while len(pending) > 2 * threads or (b == n_batches - 1 and pending):
                    blocks.append(pending.pop(0).result())
                    done += 1
                    if progress is not None:
                        progress(min(n, done * batch_size))
    n_labels = len(model.config.id2label)
    return np.concatenate(blocks) if blocks else np.zeros((0, n_labels), np.float32)


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

    from .trainer.data import load_clips_dataset

    model, feature_extractor = load_classifier(model, feature_extractor, device=device)
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: dataset folder not found (write one with `housex build --out DIR`)")
    ds = load_clips_dataset(folder, splits=(split,))[split]
    if max_clips is not None and len(ds) > max_clips:
        ds = ds.shuffle(seed=seed).select(range(max_clips))
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=int(feature_extractor.sampling_rate), num_channels=1))
    ids = np.asarray(ds["label"], dtype=np.int64)

    clips = (decoded_mono(example["audio"]) for example in ds)
    emb = embed_clips(clips, model, feature_extractor, batch_size, device=device)
    return emb, ids, label_names(model)




# --------------------------------------------------------------------------------------------
# whole tracks
# --------------------------------------------------------------------------------------------


WHOLE_FILE_TOLERANCE = 0.05  # seconds: two analysis frames (512 / 22050 s each)


@dataclass
class DropPrediction(GenreDistribution):
    """One drop section (or the fallback section) and the mean of its clips' probabilities (8,).

    ``whole_file``: the section spans the whole file (a short file searched from its start whose
    loudness never falls, or the whole-track fallback), so it says nothing about where a drop is.
    """

    start: float
    end: float
    probabilities: np.ndarray
    clip_starts: list[float]
    labels: Sequence[str]
    whole_file: bool = False

    def to_dict(self) -> dict:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "whole_file": self.whole_file,
            "genre": self.genre,
            "probabilities": {g: float(p) for g, p in zip(self.labels, self.probabilities)},
            "clip_starts": [round(s, 3) for s in self.clip_starts],
        }


@dataclass
class TrackPrediction(GenreDistribution):
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
            whole = " (the whole file)" if d.whole_file else ""
            lines.append(f"  {kind} {mmss(d.start)}-{mmss(d.end)}{whole}: {format_genres(d.top(k))}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _aggregate_track(track: TrackClips, probs: np.ndarray, labels: Sequence[str]) -> TrackPrediction:
    """Clip probabilities (N, num_labels), in ``track.clips`` order → ``TrackPrediction``: the mean
    over each drop's clips, then the mean over drops."""
    probs = np.asarray(probs, dtype=np.float32)
    if probs.shape != (len(track.clips), len(labels)):
        raise ValueError(f"{track.source}: expected probabilities of shape {(len(track.clips), len(labels))}, got {probs.shape}")
    drops = []
    for index, (start, end) in enumerate(track.sections):
        rows = [i for i, d in enumerate(track.drop_index) if d == index]
        if rows:
            whole_file = start <= WHOLE_FILE_TOLERANCE and end >= track.duration - WHOLE_FILE_TOLERANCE
            drops.append(DropPrediction(start, end, probs[rows].mean(0), [track.clip_starts[i] for i in rows], labels,
                                        whole_file=whole_file))
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
        source: audio file path (any format soundfile or FFmpeg reads), an array
            (samples,) / (channels, samples) with ``sampling_rate``, a ``{"raw" or "array": x,
            "sampling_rate": sr}`` dict (the pipelines' input), a torchcodec ``AudioDecoder``
            (a ``datasets`` audio value), or a ``TrackClips`` already cut at the feature
            extractor's rate and clip length (``track_clips``); the cutting options
            (``sampling_rate``, ``clips_per_section``, ``seed``, ``min_seconds``,
            ``drop_options``) are then those it was cut with and must be left at their defaults.
        model: model folder or a loaded ``HouseXForAudioClassification`` (then pass
            ``feature_extractor`` unless the model was loaded from a folder).
        batch_size: clips per forward pass.
        clips_per_section, seed: clip sampling per drop, as the dataset builder does it.
        drop_options: extra keyword arguments for ``detect_drops`` (e.g. ``margin_db``).

    Returns:
        ``TrackPrediction`` with per-drop (8,) and per-track (8,) distributions.

    Raises:
        AudioInputError: silent, non-finite or shorter than ``min_seconds`` (see module doc).
    """
    model, feature_extractor = load_classifier(model, feature_extractor, device=device)
    cut_options = dict(sampling_rate=sampling_rate, clips_per_section=clips_per_section, seed=seed,
                       min_seconds=min_seconds, drop_options=drop_options)
    if isinstance(source, TrackClips):
        given = [name for name, value in cut_options.items() if value != _CUT_DEFAULTS[name]]
        if given:
            raise ValueError(f"{source.source}: the clips are already cut; {', '.join(given)} apply to audio input only")
        track = source
    else:
        track = track_clips(source, int(feature_extractor.sampling_rate), extractor_clip_seconds(feature_extractor),
                            **cut_options)
    probs = classify_clips(track.clips, model, feature_extractor, batch_size, device=device)
    return _aggregate_track(track, probs, label_names(model))


# classify_track's defaults of the options that cut a track into clips
_CUT_DEFAULTS = dict(sampling_rate=None, clips_per_section=4, seed=0, min_seconds=1.0, drop_options=None)
