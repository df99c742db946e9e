"""Reading audio files into float32 arrays, and finding them in folders.

soundfile (libsndfile) reads WAV/FLAC/OGG/Opus/MP3 quickly; anything it refuses (m4a, aac, ...)
goes through torchcodec's FFmpeg-backed ``AudioDecoder``.  Every failure is an
:class:`AudioError` that names the file (a subclass for the kinds the
dataset builder counts apart: :class:`EmptyAudioFile`, :class:`NonFiniteAudio`).
:data:`AUDIO_SUFFIXES` and :func:`find_audio_files` say which files are audio, for every folder
the package reads (release folders, libraries to tag, the app's library, Label Studio tasks).
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

# file suffixes read as audio: formats FFmpeg decodes (soundfile reads wav/flac/ogg/mp3 itself); the rest
# of a folder is ignored
AUDIO_SUFFIXES = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .m4a .mp4 .aac .aif .aiff .aifc .alac .wma .ape .wv .mka "
    ".webm .ac3 .dts .mp2 .mpc .tta .caf .au .snd .amr .spx".split()
)
# the dataset builder skips tracks above this rate by name (FLAC clips and the drop detector are not
# meant for ultrasonic rates; resample such files first); inference resamples any rate
MAX_SAMPLE_RATE = 192_000


class AudioError(ValueError):
    """An audio file that cannot be used: missing, empty, corrupt, undecodable, or non-finite."""


class EmptyAudioFile(AudioError):
    """An audio file of 0 bytes."""


class NonFiniteAudio(AudioError):
    """Audio that holds NaN or infinite samples."""


def is_audio_file_name(name: str | os.PathLike) -> bool:
    """True for a file name with an audio suffix (:data:`AUDIO_SUFFIXES`, any case)."""
    return Path(name).suffix.lower() in AUDIO_SUFFIXES


def find_audio_files(sources: Iterable[str | os.PathLike], suffixes=AUDIO_SUFFIXES, *,
                     unreadable: list[str] | None = None) -> list[Path]:
    """Files named directly (any suffix) plus audio files under folders, sorted, absolute.

    Hidden files and folders (``.name``) under a folder are skipped; symlinked folders are not
    followed (so a symlink loop is walked once); a symlink to a file is listed even when broken or
    looping (its reader reports it).  A folder that cannot be read is skipped, and
    ``"<folder>: <reason>"`` appended to ``unreadable`` when given.  A source that does not exist
    raises ``FileNotFoundError`` naming it.
    """
    found: set[Path] = set()

    def skipped(error: OSError) -> None:
        if unreadable is not None:
            unreadable.append(f"{error.filename}: {error.strerror or error}")

    for source in sources:
        source = Path(os.path.abspath(source))
        if source.is_file():
            found.add(source)
        elif source.is_dir():
            for root, dirs, files in os.walk(source, onerror=skipped):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found.update(Path(root, f) for f in files
                             if not f.startswith(".") and Path(f).suffix.lower() in suffixes)
        else:
            raise FileNotFoundError(f"{source}: no such file or folder")
    return sorted(found)


def _decoder_reason(error: Exception, path: Path) -> str:
    """A decoder's message without what the caller already says or a user cannot use: the file's
    path (the message starts with it) and source locations (torchcodec names its C++ file)."""
    text = str(error).replace(f"'{path}'", "").replace(str(path), "")
    text = re.sub(r"\S+\.(?:cpp|cc|c|h|hpp|py):\d+,?", "", text)  # e.g. /__w/.../SingleStreamDecoder.cpp:41,
    return re.sub(r"\s+([.,;:])", r"\1", " ".join(text.split())).strip(" ,:")


def _decode_with_torchcodec(path: Path) -> tuple[np.ndarray, int]:
    from torchcodec.decoders import AudioDecoder

    samples = AudioDecoder(str(path)).get_all_samples()
    return samples.data.numpy().astype(np.float32, copy=False), int(samples.sample_rate)


def _existing_audio_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path; :class:`AudioError` naming it when it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    if path.stat().st_size == 0:
        raise EmptyAudioFile(f"{path}: audio file is empty (0 bytes)")
    return path


def load_audio(path: str | os.PathLike, *, check_finite: bool = True) -> tuple[np.ndarray, int]:
    """Decode an audio file at its native rate and channel count.

    Returns ``(y, sr)`` with ``y`` float32 of shape (channels, samples), values nominally in
    [-1, 1].  Raises :class:`AudioError` naming the file when it is missing, empty, cannot be
    decoded by soundfile nor FFmpeg, holds no samples, or (``check_finite``) holds NaN/inf.
    """
    path = _existing_audio_file(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
        y = np.ascontiguousarray(data.T)
    except Exception as sf_error:  # libsndfile refuses the container/codec: let FFmpeg try
        try:
            y, sr = _decode_with_torchcodec(path)
        except Exception as ff_error:
            raise AudioError(
                f"{path}: cannot decode audio (soundfile: {_decoder_reason(sf_error, path)}; "
                f"FFmpeg/torchcodec: {_decoder_reason(ff_error, path)})"
            ) from None
    if y.ndim != 2 or y.shape[0] == 0 or y.shape[1] == 0:
        raise AudioError(f"{path}: no audio samples decoded (shape {y.shape})")
    if sr <= 0:
        raise AudioError(f"{path}: invalid sampling rate {sr}")
    if check_finite and not np.isfinite(y).all():
        bad = int(np.count_nonzero(~np.isfinite(y)))
        raise NonFiniteAudio(f"{path}: {bad} samples are NaN or infinite")
    return y, int(sr)


def mono_blocks(path: str | os.PathLike, block_frames: int = 1 << 20):
    """``(rate, frames in the header, iterator of mono float32 blocks at that rate)`` of a file that
    soundfile reads, decoded a block at a time (a 3-hour stereo set is never whole in memory; each
    block's channel mean is :func:`to_mono`'s, sample for sample); None when soundfile cannot open
    the file (FFmpeg's formats: read those with :func:`load_audio`).  A missing or empty file raises
    :class:`AudioError` as :func:`load_audio` does; so does a file that fails mid-way."""
    path = _existing_audio_file(path)
    try:
        f = sf.SoundFile(str(path))
    except Exception:  # noqa: BLE001  not a format libsndfile reads
        return None

    def blocks():
        with f:
            try:
                for block in f.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                    yield to_mono(np.ascontiguousarray(block.T))
            except Exception as e:  # noqa: BLE001
                raise AudioError(f"{path}: cannot decode audio ({e})") from None

    return int(f.samplerate), int(f.frames), blocks()


def resample_blocks(blocks: Iterable[np.ndarray], sr: int, target_rate: int, *, quality: str = "HQ"
                    ) -> Iterator[np.ndarray]:
    """Consecutive mono float32 blocks of a signal at ``sr`` → the signal at ``target_rate``, a block
    at a time (soxr's stream: its one-shot ``soxr.resample`` samples, sample for sample); the blocks
    themselves when the rates agree."""
    blocks = iter(blocks)
    if sr == target_rate:
        yield from blocks
        return
    import soxr

    stream = soxr.ResampleStream(sr, target_rate, 1, dtype="float32", quality=quality)
    pending = next(blocks, None)
    while pending is not None:
        block, pending = pending, next(blocks, None)
        yield stream.resample_chunk(block, last=pending is None)


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


# peaks above full scale worth a note: lossy decoders overshoot loud masters by a fraction of a dB
OVER_FULL_SCALE_DB = 1.0


def stores_float_samples(path: str | os.PathLike) -> bool:
    """True when the file stores float samples (WAV/AIFF/CAF float), which may lie beyond full scale.
    Integer PCM cannot, and a lossy codec's (MP3, Ogg, AAC) decoder overshoots a loud master by a dB
    or so as a matter of course: neither is worth a note."""
    try:
        return sf.info(str(path)).subtype in ("FLOAT", "DOUBLE")
    except Exception:  # a format only FFmpeg reads (M4A/AAC, ...): lossy
        return False


def over_full_scale(y: np.ndarray) -> bool:
    """True when a (float) signal peaks more than ``OVER_FULL_SCALE_DB`` above ±1 (full scale),
    where a 16-bit encoding audibly clips it."""
    y = np.asarray(y)
    # max(max, -min) is max |y| without an |y| copy of the signal
    return bool(y.size) and max(float(y.max()), -float(y.min())) > 10 ** (OVER_FULL_SCALE_DB / 20)


def truncation(path: str | os.PathLike, decoded_seconds: float) -> str:
    """Why the file holds less audio than its header promises ("" when it does not, or cannot tell).

    WAV: the ``data`` chunk's declared size against the bytes present; Ogg: the last page lacks the
    end-of-stream flag (the file was cut); other formats: soundfile's header frame count against
    the ``decoded_seconds`` the decoder returned.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                return _wav_truncation(f, path.stat().st_size, decoded_seconds)
            if head[:4] == b"OggS":
                size = path.stat().st_size
                f.seek(max(0, size - 65536))
                tail = f.read()
                last = tail.rfind(b"OggS")
                if last >= 0 and len(tail) > last + 5 and not tail[last + 5] & 0x04:
                    return f"the Ogg stream ends without its end-of-stream page: the file was cut ({decoded_seconds:.1f} s decoded)"
                return ""
        info = sf.info(str(path))
    except Exception:
        return ""
    if info.format not in ("FLAC", "AIFF"):  # sample-exact headers only (an MP3's length is an estimate)
        return ""
    header_seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if header_seconds > decoded_seconds + 0.05:
        return f"header says {header_seconds:.1f} s, the data holds {decoded_seconds:.1f} s"
    return ""


def _wav_truncation(f, size: int, decoded_seconds: float) -> str:
    byte_rate = 0
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            return ""
        kind, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if kind == b"fmt ":
            fmt = f.read(min(length, 16))
            if len(fmt) >= 12:
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
            f.seek(length - len(fmt) + (length & 1), 1)
        elif kind == b"data":
            present = size - f.tell()
            if length in (0, 0xFFFFFFFF) or length <= present or not byte_rate:  # 0/-1: written as a stream
                return ""
            return f"header says {length / byte_rate:.1f} s, the data holds {present / byte_rate:.1f} s"
        else:
            f.seek(length + (length & 1), 1)
