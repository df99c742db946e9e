"""Writing a synthetic release folder: the audio files, the Label-Studio export and the truth file
(the folder's format is :mod:`..release`'s)."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..genres import GENRES, soft_label_pattern
from ..labelstudio import make_task
from ..release import EXPORT_NAME, TRUTH_NAME, write_export, write_truth
from ..safe_write import (OutputLock, atomic_path, atomic_write_bytes, atomic_write_text, check_free_space, disk_full_error,
                          is_disk_full, remove_stale_temp_files)
from .labels import genre_frequency_vector
from .plan import TrackPlan, plan_track
from .render import SAMPLE_RATE, render_track
from .sampled import soundfont_info

FORMATS = ("flac", "ogg", "wav")
# FluidSynth renders 8-96 kHz; below 16 kHz the Nyquist frequency cuts into the hi-hats' band
SAMPLE_RATES = (16_000, 96_000)
# Bytes a track takes per stereo sample frame, measured on generated releases (16-bit FLAC ~114 kB a
# second of 44.1 kHz audio; Vorbis q5 ~160 kbit/s).
AUDIO_BYTES_PER_FRAME = {"flac": 120_000 / 44_100, "wav": 4.0, "ogg": 20_000 / 44_100}
#: Written first and removed last by :func:`generate_release`: the folder is a release being written
#: (JSON: the settings), whose complete tracks a rerun with the same settings keeps.
IN_PROGRESS_NAME = ".synth-in-progress"


def audio_file_name(seed: int, index: int, fmt: str) -> str:
    """Release-style name ``<8 hex>-Synth_<seed>_<index>.<fmt>`` (like Label-Studio's upload names)."""
    h = hashlib.sha1(f"{seed}:{index}".encode()).hexdigest()[:8]
    return f"{h}-Synth_{seed}_{index:05d}.{fmt}"


def write_audio(path: Path, y: np.ndarray, sr: int, fmt: str, block: int = 65536) -> None:
    """Write (samples, channels) float audio as 16-bit FLAC or WAV (soundfile), or Vorbis OGG (the
    ``ffmpeg`` binary, quality 5, bit-exact muxing).  WAV is for a release that is decoded at once
    (the demo's): half the CPU of FLAC to write and a sixth to read, a quarter more disk.

    The file appears under its name only once complete (:func:`.safe_write.atomic_path`), so a
    killed run never leaves a torn track that a rerun would keep.  FLAC and WAV are encoded in
    memory and then written: libsndfile reports a full disk as a bare error code.  OGG does not go
    through soundfile: libsndfile picks a random Ogg stream serial number (so the bytes differ run
    to run) and its Vorbis encoder crashes when minutes arrive in one write."""
    import io
    import shutil
    import subprocess

    import soundfile as sf

    if fmt in ("flac", "wav"):
        # FLAC level 2 (libsndfile's 0.25): a quarter less CPU than its default level 5, files 2% larger
        options = {"format": "FLAC", "compression_level": 0.25} if fmt == "flac" else {"format": "WAV"}
        buffer = io.BytesIO()
        with sf.SoundFile(buffer, "w", samplerate=sr, channels=y.shape[1], subtype="PCM_16", **options) as f:
            for i in range(0, y.shape[0], block):
                f.write(y[i:i + block])
        atomic_write_bytes(path, buffer.getbuffer())
        return
    if fmt != "ogg":
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError(f"{path}: writing OGG needs the ffmpeg binary (e.g. 'apt-get install ffmpeg'); use --format flac")
    with atomic_path(path) as tmp:
        cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "f32le", "-ar", str(sr), "-ac", str(y.shape[1]),
               "-i", "pipe:0", "-c:a", "libvorbis", "-q:a", "5", "-fflags", "+bitexact", "-flags:a", "+bitexact",
               "-map_metadata", "-1", "-f", "ogg", str(tmp)]
        proc = subprocess.run(cmd, input=np.ascontiguousarray(y, dtype="<f4").tobytes(), capture_output=True)
        if proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip()[-500:]
            if "No space left on device" in message:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            raise RuntimeError(f"{path}: ffmpeg failed to encode OGG: {message}")


def _render_to_file(job: tuple) -> dict:
    out_dir, plan_dict, fmt, sr = job
    plan = TrackPlan(**plan_dict)
    plan.sections = [tuple(s) for s in plan.sections]
    name = audio_file_name(plan.seed, plan.index, fmt)
    y = render_track(plan, sr)
    write_audio(Path(out_dir) / name, y, sr, fmt)
    return track_record(plan, name)


def track_record(plan: TrackPlan, audio_name: str) -> dict:
    """The generator-truth entry of one track."""
    label = np.asarray(plan.label)
    return {
        "audio": audio_name,
        "index": plan.index,
        "task_id": plan.index + 1,
        "label": {g: float(w) for g, w in zip(GENRES, label) if w > 0},
        "pattern": list(soft_label_pattern(label)),
        "sources": plan.sources,
        "bpm": plan.bpm,
        "key": plan.key,
        "progression": plan.progression,
        "duration": plan.duration,
        "sections": [list(s) for s in plan.section_times()],
        "drop_sections": [list(s) for s in plan.drop_sections()],
        "drop_style": plan.drop_style,
        "expects_fallback": plan.drop_style == "short",
        "params": plan.params,
    }


def estimate_release_bytes(durations, sr: int, fmt: str) -> int:
    """Bytes of stereo tracks of ``durations`` seconds at ``sr`` Hz in ``fmt`` (an estimate)."""
    return int(sum(durations) * sr * AUDIO_BYTES_PER_FRAME[fmt])


def in_progress(folder: str | os.PathLike) -> bool:
    """True when :func:`generate_release` is writing ``folder`` or was stopped while writing it."""
    return Path(folder, IN_PROGRESS_NAME).is_file()


def _read_in_progress(folder: Path) -> dict | None:
    try:
        return json.loads((folder / IN_PROGRESS_NAME).read_text())
    except (OSError, ValueError):
        return None


def _render_all(jobs: list[tuple], workers: int):
    """Render and write each job's track; yields as each is written (in ``workers`` processes)."""
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            yield from pool.imap(_render_to_file, jobs)
    else:
        for job in jobs:
            yield _render_to_file(job)


def generate_release(out_dir, n_tracks: int, seed: int, *, duration: tuple[float, float] = (90.0, 150.0),
                     fmt: str = "flac", workers: int = 1, progress: bool = True, genre_frequencies=None,
                     fallback_share: float = 0.05, sr: int = SAMPLE_RATE) -> list[dict]:
    """Write a synthetic release folder (audio + ``synthetic-partition.json`` + ``generator-truth.json``).

    Returns the per-track truth records (as in ``generator-truth.json``).  Same ``seed`` → identical
    files, whatever ``workers`` is.

    Faults: a second run into the same folder is refused while this one writes (a lock file beside
    it); each track appears only once complete, and the export and truth are written last (those
    of an earlier release in the folder are removed first), so a killed run's folder never looks
    like a complete release; rerun with the same arguments, it renders only the missing tracks.
    Free space is checked up front.
    """
    if n_tracks < 1:
        raise ValueError(f"n_tracks must be >= 1, got {n_tracks}")
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    lo, hi = (float(x) for x in duration)
    if not (math.isfinite(lo) and math.isfinite(hi) and 10.0 <= lo <= hi):
        raise ValueError(f"duration: expected 10 <= MIN <= MAX seconds, got {duration}")
    if not (isinstance(sr, (int, np.integer)) and SAMPLE_RATES[0] <= sr <= SAMPLE_RATES[1]):
        raise ValueError(f"sample rate {sr!r}: expected an integer from {SAMPLE_RATES[0]} to {SAMPLE_RATES[1]} Hz")
    if not 0.0 <= fallback_share <= 1.0:
        raise ValueError(f"fallback_share must be in [0, 1], got {fallback_share}")
    instruments = soundfont_info()  # before any work: a missing SoundFont is one clear error
    out = Path(out_dir)
    plans = [plan_track(seed, i, duration=(lo, hi), genre_frequencies=genre_frequencies, fallback_share=fallback_share)
             for i in range(n_tracks)]
    header = {"generator": "housex.dataset_script.synthetic", "seed": seed, "sample_rate": sr, "format": fmt,
              "duration": [lo, hi], **instruments}
    settings = {**header, "n_tracks": n_tracks, "fallback_share": fallback_share,
                "genre_frequencies": genre_frequency_vector(genre_frequencies).tolist()}
    with OutputLock(out):
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(out)  # torn files of a killed run
        reuse = _read_in_progress(out) == settings
        if not reuse:
            # From here the folder's audio is no longer what its export and truth describe: remove
            # them first, so a reader never sees a complete-looking release of mixed tracks.
            atomic_write_text(out / IN_PROGRESS_NAME, json.dumps(settings))
            for name in (EXPORT_NAME, TRUTH_NAME):
                (out / name).unlink(missing_ok=True)
        names = [audio_file_name(p.seed, p.index, fmt) for p in plans]
        # a complete track of a killed run with these settings has these bytes: keep it
        todo = [p for p, name in zip(plans, names) if not (reuse and (out / name).is_file())]
        needed = estimate_release_bytes([p.duration for p in todo], sr, fmt)
        check_free_space(out, needed, f"{len(todo)} synthetic tracks")
        jobs = [(str(out), asdict(p), fmt, sr) for p in todo]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_tracks, initial=n_tracks - len(todo), desc="synth", unit="track")
        try:
            for _ in _render_all(jobs, workers):
                if bar:
                    bar.update()
            records = [track_record(p, name) for p, name in zip(plans, names)]
            write_export(out / EXPORT_NAME, (make_task(r["task_id"], r["audio"], p.label) for r, p in zip(records, plans)))
            write_truth(out, header, records)
        except BaseException as e:
            if is_disk_full(e):
                raise disk_full_error(out, f"{len(todo)} synthetic tracks", needed,
                                      after="every track written is complete; free some space and rerun to write the rest") from None
            raise
        finally:
            if bar:
                bar.close()
        (out / IN_PROGRESS_NAME).unlink()
    return records
