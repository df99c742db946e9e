"""Reading audio files of a release folder into float32 arrays.

soundfile (libsndfile) reads WAV/FLAC/OGG/Opus/MP3 quickly; anything it refuses (m4a, aac, ...)
goes through torchcodec's FFmpeg-backed ``AudioDecoder``.  Every failure is an
:class:`AudioError` that names the file (a subclass for the kinds the
dataset builder counts apart: :class:`EmptyAudioFile`, :class:`NonFiniteAudio`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf


class AudioError(ValueError):
    """An audio file that cannot be used: missing, empty, corrupt, undecodable, or non-finite."""


class EmptyAudioFile(AudioError):
    """An audio file of 0 bytes."""


class NonFiniteAudio(AudioError):
    """Audio that holds NaN or infinite samples."""


def _decode_with_torchcodec(path: Path) -> tuple[np.ndarray, int]:
    from torchcodec.decoders import AudioDecoder

    samples = AudioDecoder(str(path)).get_all_samples()
    return samples.data.numpy().astype(np.float32, copy=False), int(samples.sample_rate)


def load_audio(path: str | os.PathLike, *, check_finite: bool = True) -> tuple[np.ndarray, int]:
    """Decode an audio file at its native rate and channel count.

    Returns ``(y, sr)`` with ``y`` float32 of shape (channels, samples), values nominally in
    [-1, 1].  Raises :class:`AudioError` naming the file when it is missing, empty, cannot be
    decoded by soundfile nor FFmpeg, holds no samples, or (``check_finite``) holds NaN/inf.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    if path.stat().st_size == 0:
        raise EmptyAudioFile(f"{path}: audio file is empty (0 bytes)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
        y = np.ascontiguousarray(data.T)
    except Exception as sf_error:  # libsndfile refuses the container/codec: let FFmpeg try
        try:
            y, sr = _decode_with_torchcodec(path)
        except Exception as ff_error:
            raise AudioError(
                f"{path}: cannot decode audio (soundfile: {sf_error}; FFmpeg/torchcodec: {ff_error})"
            ) from None
    if y.ndim != 2 or y.shape[0] == 0 or y.shape[1] == 0:
        raise AudioError(f"{path}: no audio samples decoded (shape {y.shape})")
    if sr <= 0:
        raise AudioError(f"{path}: invalid sampling rate {sr}")
    if check_finite and not np.isfinite(y).all():
        bad = int(np.count_nonzero(~np.isfinite(y)))
        raise NonFiniteAudio(f"{path}: {bad} samples are NaN or infinite")
    return y, int(sr)


def to_mono(y: np.ndarray) -> np.ndarray:
    """Channel mean: (channels, samples) → (samples,) float32; a 1-D array is returned as is."""
    y = np.asarray(y)
    if y.ndim == 1:
        return y.astype(np.float32, copy=False)
    if y.ndim != 2:
        raise ValueError(f"expected audio of shape (channels, samples), got {y.shape}")
    if y.shape[0] == 1:
        return y[0].astype(np.float32, copy=False)
    return y.mean(axis=0, dtype=np.float32)


def audio_info(path: str | os.PathLike) -> tuple[float, int, int] | None:
    """``(duration_s, sr, channels)`` from the header when soundfile can read it, else None."""
    try:
        info = sf.info(str(path))
    except Exception:
        return None
    return info.frames / info.samplerate, int(info.samplerate), int(info.channels)
