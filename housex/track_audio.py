"""Audio input for inference without torch: decode, checks, drops and clips (``track_clips``).

``read_audio`` decodes and checks a path or an array (the track, DJ-set, cue and app paths all
read their input through it); ``track_clips`` / ``clips_from_mono`` cut a track's clips.  It lives
apart from ``housex.inference`` so that processes that only decode and cut clips (the decoding
workers of ``housex tag``) start without importing torch or transformers (a few seconds of
start-up per process).  See ``housex.inference`` for the
documented behaviour on short, silent and odd input.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from .dataset_script.audio import (OVER_FULL_SCALE_DB, load_audio, mono_blocks, resample_blocks, stores_float_samples, to_mono,
                                   truncation)
from .dataset_script.clips import TrackTooShort, analyse_track
from .dataset_script.drops import MIN_SECONDS, SILENCE_DBFS, SKIP_SECONDS


class AudioInputError(ValueError):
    """Audio that cannot be classified (silent, too short, not finite); the message names the file."""


# --------------------------------------------------------------------------------------------
# audio input
# --------------------------------------------------------------------------------------------


def _audio_value(source, sampling_rate: int | None):
    """transformers'/datasets' audio values → ``(array, sampling_rate)``; anything else as given.

    Accepts ``{"raw": x, "sampling_rate": sr}`` and ``{"array": x, "sampling_rate": sr}`` (the
    audio pipelines' input dicts, a decoded ``datasets.Audio`` row) and a torchcodec
    ``AudioDecoder`` (what ``datasets`` 4+ returns for an audio column).
    """
    if isinstance(source, dict):
        keys = [k for k in ("raw", "array") if k in source]
        if len(keys) != 1 or "sampling_rate" not in source:
            raise ValueError(
                f"audio dict: expected {{'raw' or 'array': samples, 'sampling_rate': rate}}, got keys {sorted(source)}"
            )
        rate = int(source["sampling_rate"])
        if sampling_rate is not None and int(sampling_rate) != rate:
            raise ValueError(f"audio dict: sampling_rate={sampling_rate} disagrees with the dict's {rate}")
        return source[keys[0]], rate
    if hasattr(source, "get_all_samples") and not isinstance(source, (str, os.PathLike)):
        samples = source.get_all_samples()
        return samples.data.numpy(), int(samples.sample_rate)
    return source, sampling_rate


def peak_around_mean(mono: np.ndarray) -> float:
    """``max |x - mean(x)|`` (the mean in float64), without a float64 copy of the signal.

    Equal to ``float(np.abs(mono - mono.mean(dtype=np.float64)).max())``: float64 subtraction is
    monotonic in ``x``, so the largest distance is at the maximum or the minimum sample.  (That
    expression allocated two float64 copies of the signal: 1.3 GB and seconds for an hour at 22 kHz.)
    """
    mean = float(mono.mean(dtype=np.float64))
    return max(float(np.float64(mono.max()) - mean), float(mean - np.float64(mono.min())))


class _Signal:
    """What the checks of :func:`read_audio` need of a mono signal at its own rate, gathered a block
    at a time: samples, finiteness, extremes and (float64) sum."""

    def __init__(self):
        self.size, self.finite, self.top, self.bottom, self.total = 0, True, -math.inf, math.inf, 0.0

    def add(self, mono: np.ndarray) -> None:
        if mono.size:
            self.size += mono.size
            self.finite = self.finite and bool(np.isfinite(mono).all())
            self.top, self.bottom = max(self.top, float(mono.max())), min(self.bottom, float(mono.min()))
            self.total += float(mono.sum(dtype=np.float64))

    def peak_around_mean(self) -> float:
        mean = self.total / self.size
        return max(self.top - mean, mean - self.bottom)


def _read_file_mono(path, target_rate: int):
    """``(mono float32 at target_rate, native rate, _Signal)`` of a file, decoded, mixed down and
    resampled a block at a time (soxr's stream gives its one-shot result, sample for sample), so
    only the result is ever whole in memory: a 3-hour set at 22.05 kHz is 0.95 GB where the whole
    44.1 kHz stereo decode took 3.8 GB; None for a format soundfile does not read."""
    streamed = mono_blocks(path)
    if streamed is None:
        return None
    sr, frames, blocks = streamed
    signal = _Signal()

    def measured():
        for block in blocks:
            signal.add(block)
            yield block

    out = np.empty(int(math.ceil(frames * target_rate / sr)) + 64, dtype=np.float32)
    n = 0
    for block in resample_blocks(measured(), sr, target_rate):
        if n + block.size > out.size:  # the header understated the frames
            out = np.concatenate([out[:n], np.empty(max(block.size, out.size // 4), dtype=np.float32)])
        out[n:n + block.size] = block
        n += block.size
    return out[:n].copy() if n < out.size * 0.9 else out[:n], sr, signal


def read_audio(source, sampling_rate: int | None, target_rate: int, *, min_seconds: float
               ) -> tuple[np.ndarray, str, list[str]]:
    """Path or array → ``(mono float32 at target_rate, display name, notes)``: checks silence and
    length (``AudioInputError``); the notes are on odd input (a truncated file, peaks above full scale).
    A file is decoded a block at a time where soundfile reads it (WAV, FLAC, OGG, MP3...)."""
    notes = []
    mono = None
    stored_float = True  # an array's samples are what they are
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        stored_float = stores_float_samples(source)
        if sampling_rate is not None:
            raise ValueError(f"{name}: sampling_rate is only for array input (a file carries its own rate)")
        streamed = _read_file_mono(source, target_rate)
        if streamed is not None:
            resampled, sr, signal = streamed
        else:
            y, sr = load_audio(source)
        seconds_decoded = (signal.size if streamed is not None else y.shape[1]) / sr
        cut = truncation(source, seconds_decoded)
        if cut:
            notes.append(f"truncated file: {cut}; classified what is there")
    else:
        streamed = None
        name = "<array>"
        source, sampling_rate = _audio_value(source, sampling_rate)
        if sampling_rate is None:
            raise ValueError("sampling_rate is required when classifying an array")
        torch = sys.modules.get("torch")  # a tensor implies torch is imported; never import it here
        if torch is not None and isinstance(source, torch.Tensor):
            source = source.detach().cpu().numpy()
        y, sr = np.asarray(source, dtype=np.float32), int(sampling_rate)
        if sr <= 0:
            raise ValueError(f"{name}: invalid sampling rate {sr}")
        if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[0] > 16):
            raise ValueError(
                f"{name}: expected (samples,) or (channels, samples) audio, got shape {y.shape}"
                + (" (transpose a (samples, channels) array)" if y.ndim == 2 else "")
            )
    if streamed is None:
        mono = to_mono(y) if y.ndim == 2 else y
        signal = _Signal()
        signal.add(mono)
    if signal.size == 0:
        raise AudioInputError(f"{name}: no audio samples")
    if not signal.finite:
        raise AudioInputError(f"{name}: audio contains NaN or infinite samples")
    seconds = signal.size / sr
    if seconds < min_seconds:
        raise AudioInputError(f"{name}: only {seconds:.2f} s of audio; need at least {min_seconds:g} s to classify")
    # a DC offset alone is no sound (a streamed file's mean is summed a block at a time)
    peak = signal.peak_around_mean() if mono is None else peak_around_mean(mono)
    if peak <= 10 ** (SILENCE_DBFS / 20):
        level = "-inf" if peak == 0 else f"{20 * math.log10(peak):.0f}"
        raise AudioInputError(f"{name}: audio is silent (peak {level} dBFS); nothing to classify")
    top = max(signal.top, -signal.bottom)
    if stored_float and top > 10 ** (OVER_FULL_SCALE_DB / 20):  # not a lossy decoder's overshoot: see stores_float_samples
        notes.append(f"audio peaks at {20 * math.log10(top):+.1f} dBFS (above full scale); classified as is")
    if streamed is not None:
        return resampled, name, notes
    if sr != target_rate:
        import soxr

        mono = soxr.resample(mono, sr, target_rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(mono, dtype=np.float32), name, notes


def decoded_mono(audio) -> np.ndarray:
    """A decoded ``datasets.Audio`` value (torchcodec decoder or dict with ``array``) → (samples,) float32."""
    if hasattr(audio, "get_all_samples"):
        data = audio.get_all_samples().data.numpy()
    else:
        data = np.asarray(audio["array"])
    return to_mono(np.asarray(data, dtype=np.float32))


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
    mono, name, notes = read_audio(source, sampling_rate, target_rate, min_seconds=min_seconds)
    return clips_from_mono(mono, name, notes, target_rate, clip_seconds, clips_per_section=clips_per_section,
                           seed=seed, drop_options=drop_options)


def clips_from_mono(mono: np.ndarray, name: str, notes: list[str], target_rate: int, clip_seconds: float, *,
                    clips_per_section: int = 4, seed: int = 0, drop_options: dict | None = None) -> TrackClips:
    """:func:`track_clips` after the decode: ``mono``, ``name`` and ``notes`` as :func:`read_audio`
    returns them (so a caller that also needs the signal, like the app, decodes once)."""
    notes = list(notes)
    try:
        track = analyse_track(mono, target_rate, drop_options=drop_options, clip_seconds=clip_seconds,
                              clips_per_section=clips_per_section, seed=seed, whole_track_fallback=True)
    except TrackTooShort:
        # Documented short-input behaviour: one clip, padded (and masked) by the feature extractor.
        duration = mono.size / target_rate
        note = f"track is {duration:.2f} s, shorter than one {clip_seconds:g} s clip: one zero-padded clip classified"
        return TrackClips(name, duration, [(0.0, duration)], [mono], [0.0], [0], fallback=True, padded=True,
                          notes=[*notes, note])
    drops = track.drops
    if drops.silent:
        raise AudioInputError(f"{name}: audio is silent ({drops.reason}); nothing to classify")
    if drops.analysed_whole:
        options = drop_options or {}
        skip, shortest = options.get("skip_seconds", SKIP_SECONDS), options.get("min_seconds", MIN_SECONDS)
        notes.append(f"{drops.duration:.1f} s is shorter than the {skip:g} s intro skip plus a {shortest:g} s drop: "
                     "drops searched from 0:00, nothing skipped")
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
