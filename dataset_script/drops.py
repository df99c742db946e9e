"""Drop detection: the loudness-plateau algorithm of the HouseX-v2 authors, vectorised.

Reference (DESIGN.md, authors' ``detect.py``): mono at 22.05 kHz, skip the first 15 s, RMS per
frame (8192 / hop 512, librosa framing) in dB relative to the track's loudest frame, a running
max over 128 frames then a running mean over 128 frames, threshold = smoothed max − margin, and
every run above the threshold lasting ≥ 15 s is a drop.  ``bench/reference_drops.py`` is the
straight per-frame-loop version; the filters here use the same window alignment (checked there).

Fallback (documented behaviour, flagged): when no run qualifies, the loudest window of
``min_seconds`` (mean frame dB) is returned with ``fallback=True``.  Silent tracks give no
section at all and a ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import librosa
import numpy as np
import soxr
from scipy import ndimage

SILENCE_DBFS = -60.0  # a track whose loudest frame is below this level (dBFS) is silent; inference uses it too


@dataclass(frozen=True)
class DropDetection:
    """Detected drop sections in seconds of the input signal.

    ``fallback`` is True when no section passed the threshold and the loudest window was
    returned instead; ``reason`` says why sections are missing or came from the fallback.
    """

    sections: list[tuple[float, float]] = field(default_factory=list)
    fallback: bool = False
    reason: str = ""


def frame_rms(y: np.ndarray, frame_length: int = 8192, hop_length: int = 512) -> np.ndarray:
    """RMS per frame with librosa's centred framing (zero padding of frame_length//2 each side).

    ``y``: (samples,) → (1 + samples // hop_length,) float64; equals
    ``librosa.feature.rms(y=y, frame_length, hop_length)[0]`` up to float rounding, in O(samples).
    """
    y = np.asarray(y, dtype=np.float32)
    pad = frame_length // 2
    n_frames = 1 + (y.size + 2 * pad - frame_length) // hop_length
    if n_frames < 1:
        return np.zeros(0)
    if frame_length % hop_length == 0 and pad % hop_length == 0:
        # Sum of squares per hop-sized block (the zero padding is whole blocks of zeros), then each
        # frame is frame_length/hop_length consecutive blocks: O(samples), no frame matrix.
        per_frame, pad_blocks = frame_length // hop_length, pad // hop_length
        n_blocks = n_frames - 1 + per_frame
        blocks = np.zeros(n_blocks, dtype=np.float64)
        whole = min(y.size // hop_length, n_blocks - pad_blocks)
        body = y[: whole * hop_length].reshape(whole, hop_length)
        blocks[pad_blocks : pad_blocks + whole] = np.einsum("ij,ij->i", body, body)
        tail = y[whole * hop_length :]
        if tail.size and pad_blocks + whole < n_blocks:
            blocks[pad_blocks + whole] = np.dot(tail, tail)
        cumulative = np.concatenate(([0.0], np.cumsum(blocks)))
        sums = cumulative[per_frame : per_frame + n_frames] - cumulative[:n_frames]
    else:
        squares = np.zeros(y.size + 2 * pad, dtype=np.float64)
        squares[pad : pad + y.size] = np.square(y, dtype=np.float64)
        cumulative = np.concatenate(([0.0], np.cumsum(squares)))
        starts = np.arange(n_frames) * hop_length
        sums = cumulative[starts + frame_length] - cumulative[starts]
    return np.sqrt(np.maximum(sums, 0.0) / frame_length)


def smooth_loudness(loudness_db: np.ndarray, smooth_frames: int = 128) -> np.ndarray:
    """Running max then running mean over ``smooth_frames`` frames, aligned like the authors' loops.

    The authors' max takes ``a[i - n//2 : i + n//2]`` (clipped at the ends) and their mean is
    ``np.convolve(a, ones(n), "same") / n`` (zeros outside); (frames,) → (frames,) float64.
    """
    a = np.asarray(loudness_db, dtype=np.float64)
    n = int(smooth_frames)
    if n < 1:
        raise ValueError(f"smooth_frames must be ≥ 1, got {smooth_frames}")
    max_size = 2 * (n // 2)
    smoothed = ndimage.maximum_filter1d(a, size=max_size, mode="nearest") if max_size > 1 else a.copy()
    return ndimage.uniform_filter1d(smoothed, size=n, mode="constant", cval=0.0)


def runs_at_least(mask: np.ndarray, min_length: int) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges of the runs of True in ``mask`` (frames,) of length ≥ min_length."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = (ends - starts) >= max(1, int(min_length))
    return list(zip(starts[keep].tolist(), ends[keep].tolist()))


def detect_drops(
    y_mono: np.ndarray,
    sr: int,
    *,
    margin_db: float = 1.5,
    min_seconds: float = 15.0,
    skip_seconds: float = 15.0,
    frame_length: int = 8192,
    hop_length: int = 512,
    smooth_frames: int = 128,
    analysis_sr: int | None = 22050,
    fallback: bool = True,
    silence_dbfs: float = SILENCE_DBFS,
) -> DropDetection:
    """Drop sections of a mono track, in seconds from the start of ``y_mono``.

    Args:
        y_mono: (samples,) float mono signal at ``sr``.
        margin_db: a frame is "drop" when its smoothed loudness ≥ smoothed max − margin_db.
        min_seconds: shortest run of drop frames that counts as a section.
        skip_seconds: intro ignored (authors: 15 s); not applied when fewer than ``min_seconds``
            would remain, so short tracks are analysed whole.
        analysis_sr: rate the signal is resampled to first (soxr HQ, like ``librosa.load``);
            None analyses at ``sr``.
        fallback: return the loudest ``min_seconds`` window (flagged) when no run qualifies.
        silence_dbfs: a track whose loudest frame RMS (of the signal minus its mean: a DC offset is
            no sound) is below this is silent: no sections.

    Raises ValueError for a non-1-D or non-finite signal or a bad rate.
    """
    y = np.asarray(y_mono)
    if y.ndim != 1:
        raise ValueError(f"detect_drops expects a mono (samples,) signal, got shape {y.shape}")
    if sr <= 0:
        raise ValueError(f"invalid sampling rate {sr}")
    if not np.isfinite(y).all():
        raise ValueError("signal contains NaN or infinite samples")
    duration = y.size / sr
    rate = int(analysis_sr or sr)
    if rate != sr and y.size:
        y = soxr.resample(y.astype(np.float32, copy=False), sr, rate, quality="HQ")
    skip = int(skip_seconds * rate)
    if y.size - skip < min_seconds * rate:
        skip = 0
    y = y[skip:]
    offset = skip / rate
    if y.size == 0:
        return DropDetection([], False, "empty signal")

    rms = frame_rms(y, frame_length, hop_length)
    # silence is judged on the signal minus its mean: a DC offset alone (no sound) is silent
    peak = float(frame_rms(y - np.float32(y.mean(dtype=np.float64)), frame_length, hop_length).max())
    if peak <= 10 ** (silence_dbfs / 20):
        return DropDetection([], False, f"silent: loudest frame is {20 * np.log10(max(peak, 1e-12)):.1f} dBFS")
    loudness_db = librosa.amplitude_to_db(rms, ref=np.max)  # (frames,), top_db=80 floor like the authors
    smoothed = smooth_loudness(loudness_db, smooth_frames)
    above = smoothed >= smoothed.max() - margin_db
    min_frames = int(librosa.time_to_frames(min_seconds, sr=rate, hop_length=hop_length))

    def to_seconds(start: int, end: int) -> tuple[float, float]:
        return (offset + start * hop_length / rate, min(duration, offset + end * hop_length / rate))

    runs = runs_at_least(above, min_frames)
    if runs:
        return DropDetection([to_seconds(a, b) for a, b in runs], False, "")
    reason = f"no section of ≥ {min_seconds:g} s within {margin_db:g} dB of the loudest part"
    if not fallback:
        return DropDetection([], False, reason)
    window = max(1, min(min_frames, loudness_db.size))
    window_mean = np.convolve(loudness_db.astype(np.float64), np.ones(window) / window, mode="valid")
    start = int(np.argmax(window_mean))
    return DropDetection([to_seconds(start, start + window)], True, reason + f"; loudest {window}-frame window used")
