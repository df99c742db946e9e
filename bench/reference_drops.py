"""Straight re-implementation of the authors' drop detection (``detect.py`` of the HouseX-v2 repo)
with its per-frame Python loops; the baseline for ``bench_drops`` and the oracle for tests.

Same steps as the authors: ``librosa.load`` behaviour (mono, resample to 22.05 kHz with soxr HQ),
drop the first 15 s, RMS per frame (centred, zero-padded frames), dB relative to the max
(``amplitude_to_db(ref=np.max)``), a looped running max over ``a[i-n//2 : i+n//2]``, the authors'
``np.convolve(..., "same") / n`` running mean, threshold = max − margin, and a looped search for
runs of ≥ ``librosa.time_to_frames(min_seconds)`` frames.  No fallback, no silence check.
"""

from __future__ import annotations

import librosa
import numpy as np


def rms_loop(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    padded = np.pad(y.astype(np.float32), frame_length // 2, mode="constant")
    n_frames = 1 + (len(padded) - frame_length) // hop_length
    out = np.zeros(n_frames, dtype=np.float32)
    for t in range(n_frames):
        frame = padded[t * hop_length : t * hop_length + frame_length]
        out[t] = np.sqrt(np.mean(frame * frame))
    return out


def max_smooth(a: np.ndarray, n: int) -> np.ndarray:
    ret = np.zeros_like(a)
    for i in range(len(a)):
        st = max(0, i - n // 2)
        ed = min(len(a), i + n // 2)
        ret[i] = np.max(a[st:ed])
    return ret


def avg_smooth(a: np.ndarray, n: int) -> np.ndarray:
    return np.convolve(a, np.ones(n), "same") / n


def find_drop(
    y_mono: np.ndarray,
    sr: int,
    *,
    margin_db: float = 1.5,
    min_seconds: float = 15.0,
    skip_seconds: float = 15.0,
    frame_length: int = 8192,
    hop_length: int = 512,
    smooth_frames: int = 128,
    analysis_sr: int = 22050,
) -> list[tuple[float, float]]:
    """Drop sections ``[(start_s, end_s), ...]`` of a mono signal, the authors' way."""
    y = np.asarray(y_mono, dtype=np.float32)
    if sr != analysis_sr:
        y = librosa.resample(y, orig_sr=sr, target_sr=analysis_sr, res_type="soxr_hq")
    skip = int(skip_seconds * analysis_sr)
    if len(y) - skip < min_seconds * analysis_sr:
        skip = 0  # same short-track rule as ours, so both analyse the same samples
    y = y[skip:]
    loudness = rms_loop(y, frame_length, hop_length)
    loudness_db = librosa.amplitude_to_db(loudness, ref=np.max)
    smoothed = avg_smooth(max_smooth(loudness_db, smooth_frames), smooth_frames)
    threshold = np.max(smoothed) - margin_db
    is_drop = (smoothed >= threshold).astype(int)
    min_frames = librosa.time_to_frames(min_seconds, sr=analysis_sr, hop_length=hop_length)
    sections = []
    st = -1
    while st < len(is_drop):
        st = st + 1
        while st < len(is_drop) and is_drop[st] == 0:
            st = st + 1
        if st == len(is_drop):
            break
        ed = st
        while ed < len(is_drop) and is_drop[ed] == 1:
            ed = ed + 1
        if ed - st >= min_frames:
            t0 = skip / analysis_sr
            sections.append(
                (
                    t0 + float(librosa.frames_to_time(st, sr=analysis_sr, hop_length=hop_length)),
                    t0 + float(librosa.frames_to_time(ed, sr=analysis_sr, hop_length=hop_length)),
                )
            )
        st = ed
    return sections
