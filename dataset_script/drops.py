"""Drop detection: the loudness-plateau algorithm of the HouseX-v2 authors, vectorised, and its
extension to DJ sets.

Reference (DESIGN.md, authors' ``detect.py``): mono at 22.05 kHz, skip the first 15 s, RMS per
frame (8192 / hop 512, librosa framing) in dB relative to the track's loudest frame, a running
max over 128 frames then a running mean over 128 frames, threshold = smoothed max − margin, and
every run above the threshold lasting ≥ 15 s is a drop.  ``bench/reference_drops.py`` is the
straight per-frame-loop version; the filters here use the same window alignment (checked there).
The skip is not applied when fewer than ``min_seconds`` would remain after it, so a short file is
analysed whole (a 20 s file can be one drop from 0:00 to its end).

Fallback (documented behaviour, flagged): when no run qualifies, the loudest window of
``min_seconds`` (mean frame dB) is returned with ``fallback=True``.  Silent tracks give no
section at all and a ``reason``.

DJ sets (:func:`detect_set_drops`): the tracks of a set are mastered at different levels, so a
threshold under the loudest point of the whole set misses every drop of a track a few dB quieter.
A drop is a run of ≥ ``min_seconds`` at a loudness plateau (the level of the best
``min_seconds`` window through a frame: a morphological opening of the smoothed loudness, whose
frames at or above a level are exactly the authors' runs at that level).  The authors' rule runs
over the whole set first; then every other plateau, loudest first, is a drop of a quieter track
(its section: the frames within ``margin_db / 2`` of its level) when

* a second plateau at the same level (within ``margin_db / 2``) lies less than ``pair_seconds``
  away with only quieter audio between: a track's drops come at one level, separated by a
  breakdown (2 or more drops in 325 of the 341 tracks with drops in the authors' detected_drops.json), and
* no such pair whose loudest smoothed frame is more than ``margin_db`` above it lies within
  ``build_seconds`` of it: that is an intro, breakdown or outro right next to its own track's drops.

This is a per-track reference without knowing where the tracks start: the tracks are told apart
by their drop levels.  On a single track it gives the authors' sections (tested on generator
tracks); the single-track commands (``predict``, ``build``, ``tag``) use :func:`detect_drops`.
Limits: a quieter track with one drop, or with drops at levels more than ``margin_db / 2`` apart,
keeps the whole-set reference; a loud intro whose build-up is longer than ``build_seconds`` and
whose level matches a neighbour's drops can be reported as a drop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import librosa
import numpy as np
import soxr

SILENCE_DBFS = -60.0  # a track whose loudest frame is below this level (dBFS) is silent; inference uses it too
# The authors' rule (paper: 1.5 dB; their final code: 2 dB), its shortest drop and its skipped intro.
MARGIN_DB, MIN_SECONDS, SKIP_SECONDS = 1.5, 15.0, 15.0


@dataclass(frozen=True)
class DropDetection:
    """Detected drop sections in seconds of the input signal.

    ``fallback`` is True when no section passed the threshold and the loudest window was
    returned instead; ``reason`` says why sections are missing or came from the fallback.
    ``analysed_whole``: the signal was too short for the intro skip (fewer than ``min_seconds``
    would have remained) and was analysed from its start.
    """

    sections: list[tuple[float, float]] = field(default_factory=list)
    fallback: bool = False
    reason: str = ""
    analysed_whole: bool = False


# rows of hop-sized blocks squared at a time: a centred copy of a 3-hour set would be 0.95 GB
_CHUNK_ROWS = 1 << 12


def all_finite(y: np.ndarray, block: int = 1 << 22) -> bool:
    """``np.isfinite(y).all()`` a block at a time (the whole mask of a 3-hour set is 0.24 GB)."""
    return all(bool(np.isfinite(y[i:i + block]).all()) for i in range(0, y.size, block))


def frame_rms(y: np.ndarray, frame_length: int = 8192, hop_length: int = 512, *, minus: float = 0.0) -> np.ndarray:
    """RMS per frame with librosa's centred framing (zero padding of frame_length//2 each side).

    ``y``: (samples,) → (1 + samples // hop_length,) float64; equals
    ``librosa.feature.rms(y=y, frame_length, hop_length)[0]`` up to float rounding, in O(samples).
    ``minus``: a constant taken off every sample first (as float32, like ``y - np.float32(minus)``,
    the same figures) without a copy of the signal.
    """
    y = np.asarray(y, dtype=np.float32)
    minus = np.float32(minus)
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
        for a in range(0, whole, _CHUNK_ROWS):
            rows = body[a:a + _CHUNK_ROWS] - minus if minus else body[a:a + _CHUNK_ROWS]
            blocks[pad_blocks + a : pad_blocks + a + rows.shape[0]] = np.einsum("ij,ij->i", rows, rows)
        tail = y[whole * hop_length :] - minus if minus else y[whole * hop_length :]
        if tail.size and pad_blocks + whole < n_blocks:
            blocks[pad_blocks + whole] = np.dot(tail, tail)
        cumulative = np.concatenate(([0.0], np.cumsum(blocks)))
        sums = cumulative[per_frame : per_frame + n_frames] - cumulative[:n_frames]
    else:
        squares = np.zeros(y.size + 2 * pad, dtype=np.float64)
        squares[pad : pad + y.size] = np.square(y - minus if minus else y, dtype=np.float64)
        cumulative = np.concatenate(([0.0], np.cumsum(squares)))
        starts = np.arange(n_frames) * hop_length
        sums = cumulative[starts + frame_length] - cumulative[starts]
    return np.sqrt(np.maximum(sums, 0.0) / frame_length)


def smooth_loudness(loudness_db: np.ndarray, smooth_frames: int = 128) -> np.ndarray:
    """Running max then running mean over ``smooth_frames`` frames, aligned like the authors' loops.

    The authors' max takes ``a[i - n//2 : i + n//2]`` (clipped at the ends) and their mean is
    ``np.convolve(a, ones(n), "same") / n`` (zeros outside); (frames,) → (frames,) float64.
    """
    from scipy import ndimage  # scipy.ndimage takes ~0.3 s to import: not for every CLI start

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


@dataclass(frozen=True)
class _Loudness:
    """The authors' smoothed loudness of a signal, with what turns its frames into seconds."""

    smoothed: np.ndarray  # (frames,) dB relative to the loudest frame
    frame_db: np.ndarray  # (frames,) unsmoothed dB (the fallback window uses it)
    offset: float  # seconds skipped at the start
    analysed_whole: bool  # the skip was not applied: the signal is too short for it
    seconds_per_frame: float
    duration: float
    min_frames: int

    def to_seconds(self, start: int, end: int) -> tuple[float, float]:
        return (self.offset + start * self.seconds_per_frame,
                min(self.duration, self.offset + end * self.seconds_per_frame))


def _smoothed_loudness(y_mono, sr, *, min_seconds, skip_seconds, frame_length, hop_length, smooth_frames,
                       analysis_sr, silence_dbfs) -> _Loudness | DropDetection:
    """Steps 1-4 of the authors' algorithm (a :class:`DropDetection` for an empty or silent signal)."""
    y = np.asarray(y_mono)
    if y.ndim != 1:
        raise ValueError(f"detect_drops expects a mono (samples,) signal, got shape {y.shape}")
    if sr <= 0:
        raise ValueError(f"invalid sampling rate {sr}")
    if not all_finite(y):
        raise ValueError("signal contains NaN or infinite samples")
    duration = y.size / sr
    rate = int(analysis_sr or sr)
    if rate != sr and y.size:
        y = soxr.resample(y.astype(np.float32, copy=False), sr, rate, quality="HQ")
    skip = int(skip_seconds * rate)
    analysed_whole = skip > 0 and y.size - skip < min_seconds * rate
    if analysed_whole:
        skip = 0
    y = y[skip:]
    if y.size == 0:
        return DropDetection([], False, "empty signal", analysed_whole)

    rms = frame_rms(y, frame_length, hop_length)
    # silence is judged on the signal minus its mean: a DC offset alone (no sound) is silent
    peak = float(frame_rms(y, frame_length, hop_length, minus=y.mean(dtype=np.float64)).max())
    if peak <= 10 ** (silence_dbfs / 20):
        return DropDetection([], False, f"silent: loudest frame is {20 * np.log10(max(peak, 1e-12)):.1f} dBFS",
                             analysed_whole)
    loudness_db = librosa.amplitude_to_db(rms, ref=np.max)  # (frames,), top_db=80 floor like the authors
    return _Loudness(
        smoothed=smooth_loudness(loudness_db, smooth_frames), frame_db=loudness_db, offset=skip / rate,
        analysed_whole=analysed_whole, seconds_per_frame=hop_length / rate, duration=duration,
        min_frames=int(librosa.time_to_frames(min_seconds, sr=rate, hop_length=hop_length)),
    )


def detect_drops(
    y_mono: np.ndarray,
    sr: int,
    *,
    margin_db: float = MARGIN_DB,
    min_seconds: float = MIN_SECONDS,
    skip_seconds: float = SKIP_SECONDS,
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
    loud = _smoothed_loudness(y_mono, sr, min_seconds=min_seconds, skip_seconds=skip_seconds,
                              frame_length=frame_length, hop_length=hop_length, smooth_frames=smooth_frames,
                              analysis_sr=analysis_sr, silence_dbfs=silence_dbfs)
    if isinstance(loud, DropDetection):
        return loud
    smoothed = loud.smoothed
    above = smoothed >= smoothed.max() - margin_db
    runs = runs_at_least(above, loud.min_frames)
    if runs:
        return DropDetection([loud.to_seconds(a, b) for a, b in runs], False, "", loud.analysed_whole)
    reason = f"no section of ≥ {min_seconds:g} s within {margin_db:g} dB of the loudest part"
    if not fallback:
        return DropDetection([], False, reason, loud.analysed_whole)
    window = max(1, min(loud.min_frames, loud.frame_db.size))
    window_mean = np.convolve(loud.frame_db.astype(np.float64), np.ones(window) / window, mode="valid")
    start = int(np.argmax(window_mean))
    return DropDetection([loud.to_seconds(start, start + window)], True,
                         reason + f"; loudest {window * loud.seconds_per_frame:.1f} s window used", loud.analysed_whole)


def plateau_levels(smoothed: np.ndarray, min_frames: int) -> np.ndarray:
    """Level of the best ``min_frames`` window through each frame (a morphological opening).

    ``plateau[t] = max over windows [k, k + min_frames) containing t of min(smoothed[k:k + min_frames])``,
    so ``plateau >= x`` exactly where ``smoothed >= x`` holds for a run of ≥ ``min_frames``
    frames; frames no such window covers are ``-inf``.  (frames,) → (frames,) float64.
    """
    from scipy import ndimage

    a = np.asarray(smoothed, dtype=np.float64)
    n = int(min_frames)
    if n < 1 or a.size < n:
        return np.full(a.size, -np.inf)
    window_min = ndimage.minimum_filter1d(a, n, origin=-(n // 2), mode="constant", cval=np.inf)
    window_min[a.size - n + 1 :] = -np.inf  # windows running past the end
    return ndimage.maximum_filter1d(window_min, n, origin=(n - 1) // 2, mode="constant", cval=-np.inf)


def _plateau_peaks(x: np.ndarray) -> list[int]:
    """Frames of the finite local maxima of ``x`` (frames,); a flat top gives its middle frame."""
    starts = np.r_[0, np.flatnonzero(x[1:] != x[:-1]) + 1]
    ends = np.r_[starts[1:], x.size]
    top = x[starts]
    higher_than_neighbours = (top > np.r_[-np.inf, top[:-1]]) & (top > np.r_[top[1:], -np.inf])
    return [int(i) for i in ((starts + ends - 1) // 2)[higher_than_neighbours & np.isfinite(top)]]


def _run_around(mask: np.ndarray, i: int) -> tuple[int, int]:
    """``[start, end)`` of the run of True in ``mask`` that contains frame ``i``."""
    before, after = np.flatnonzero(~mask[: i + 1]), np.flatnonzero(~mask[i:])
    return (int(before[-1]) + 1 if before.size else 0), (i + int(after[0]) if after.size else mask.size)


def detect_set_drops(
    y_mono: np.ndarray,
    sr: int,
    *,
    margin_db: float = MARGIN_DB,
    min_seconds: float = MIN_SECONDS,
    skip_seconds: float = SKIP_SECONDS,
    pair_seconds: float = 60.0,
    build_seconds: float = 8.0,
    frame_length: int = 8192,
    hop_length: int = 512,
    smooth_frames: int = 128,
    analysis_sr: int | None = 22050,
    silence_dbfs: float = SILENCE_DBFS,
) -> DropDetection:
    """Drop sections of a DJ set (tracks at different levels), each found relative to its own track.

    The rule is in the module docstring: the authors' sections over the whole set, plus every
    plateau that has a same-level partner within ``pair_seconds`` (only quieter audio between) and
    no louder such pair within ``build_seconds``.  Other arguments as :func:`detect_drops`; there
    is no fallback section (a set with no drop has none).
    """
    loud = _smoothed_loudness(y_mono, sr, min_seconds=min_seconds, skip_seconds=skip_seconds,
                              frame_length=frame_length, hop_length=hop_length, smooth_frames=smooth_frames,
                              analysis_sr=analysis_sr, silence_dbfs=silence_dbfs)
    if isinstance(loud, DropDetection):
        return loud
    plateau = plateau_levels(loud.smoothed, loud.min_frames)
    is_drop = plateau >= loud.smoothed.max() - margin_db  # the authors' sections
    level_db = margin_db / 2
    pair_gap = pair_seconds / loud.seconds_per_frame
    build_gap = build_seconds / loud.seconds_per_frame
    peaks = _plateau_peaks(plateau)
    cores = {p: _run_around(np.abs(plateau - plateau[p]) <= level_db, p) for p in peaks}

    def paired(p: int) -> bool:
        (a, b), h = cores[p], plateau[p]
        for q in peaks:
            (c, d), g = cores[q], plateau[q]
            if q == p or abs(g - h) > level_db:
                continue
            lo, hi = (d, a) if d < a else (b, c)  # the audio between the two plateaus
            if 0 < hi - lo <= pair_gap and (plateau[lo:hi] < min(g, h)).all():
                return True
        return False

    pairs = [p for p in peaks if paired(p)]
    # a pair's reference level, as the authors': the loudest smoothed frame of its section
    reference = {q: loud.smoothed[slice(*cores[q])].max() for q in pairs}
    for p in pairs:
        (a, b), h = cores[p], plateau[p]
        louder_next_to_it = any(reference[q] - margin_db > h and cores[q][0] < b + build_gap
                                and cores[q][1] > a - build_gap for q in pairs)
        if not is_drop[p] and not louder_next_to_it:
            is_drop[a:b] = True
    runs = runs_at_least(is_drop, loud.min_frames)
    reason = "" if runs else f"no section of ≥ {min_seconds:g} s at the level of a track's loudest part"
    return DropDetection([loud.to_seconds(a, b) for a, b in runs], False, reason, loud.analysed_whole)
