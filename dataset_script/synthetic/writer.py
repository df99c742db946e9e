"""Writing a synthetic release folder: the audio files, the Label-Studio export and the truth file
(the folder's format is :mod:`..release`'s)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..genres import GENRES, soft_label_pattern
from ..labelstudio import make_task
from ..release import EXPORT_NAME, write_export, write_truth
from .plan import TrackPlan, plan_track
from .render import SAMPLE_RATE, render_track
from .sampled import soundfont_info

FORMATS = ("flac", "ogg", "wav")
# FluidSynth renders 8-96 kHz; below 16 kHz the Nyquist frequency cuts into the hi-hats' band
SAMPLE_RATES = (16_000, 96_000)

def audio_file_name(seed: int, index: int, fmt: str) -> str:
    """Release-style name ``<8 hex>-Synth_<seed>_<index>.<fmt>`` (like Label-Studio's upload names)."""
    h = hashlib.sha1(f"{seed}:{index}".encode()).hexdigest()[:8]
    return f"{h}-Synth_{seed}_{index:05d}.{fmt}"


def write_audio(path: Path, y: np.ndarray, sr: int, fmt: str, block: int = 65536) -> None:
    """Write (samples, channels) float audio as 16-bit FLAC or WAV (soundfile), or Vorbis OGG (the
    ``ffmpeg`` binary, quality 5, bit-exact muxing).  WAV is for a release that is decoded at once
    (the demo's): half the CPU of FLAC to write and a sixth to read, a quarter more disk.

    OGG does not go through soundfile: libsndfile picks a random Ogg stream serial number (so the
    bytes differ run to run) and its Vorbis encoder crashes when minutes arrive in one write."""
    import shutil
    import subprocess

    import soundfile as sf

    if fmt in ("flac", "wav"):
        # FLAC level 2 (libsndfile's 0.25): a quarter less CPU than its default level 5, files 2% larger
        options = {"format": "FLAC", "compression_level": 0.25} if fmt == "flac" else {"format": "WAV"}
        with sf.SoundFile(path, "w", samplerate=sr, channels=y.shape[1], subtype="PCM_16", **options) as f:
            for i in range(0, y.shape[0], block):
                f.write(y[i:i + block])
        return
    if fmt != "ogg":
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError(f"{path}: writing OGG needs the ffmpeg binary (e.g. 'apt-get install ffmpeg'); use --format flac")
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "f32le", "-ar", str(sr), "-ac", str(y.shape[1]),
           "-i", "pipe:0", "-c:a", "libvorbis", "-q:a", "5", "-fflags", "+bitexact", "-flags:a", "+bitexact",
           "-map_metadata", "-1", str(path)]
    proc = subprocess.run(cmd, input=np.ascontiguousarray(y, dtype="<f4").tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{path}: ffmpeg failed to encode OGG: {proc.stderr.decode(errors='replace').strip()[-500:]}")


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


def generate_release(out_dir, n_tracks: int, seed: int, *, duration: tuple[float, float] = (90.0, 150.0),
                     fmt: str = "flac", workers: int = 1, progress: bool = True, genre_frequencies=None,
                     fallback_share: float = 0.05, sr: int = SAMPLE_RATE) -> list[dict]:
    """Write a synthetic release folder (audio + ``synthetic-partition.json`` + ``generator-truth.json``).

    Returns the per-track truth records (as in ``generator-truth.json``).  Same ``seed`` → identical
    files, whatever ``workers`` is.
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
    out.mkdir(parents=True, exist_ok=True)
    plans = [plan_track(seed, i, duration=(lo, hi), genre_frequencies=genre_frequencies, fallback_share=fallback_share)
             for i in range(n_tracks)]
    jobs = [(str(out), asdict(p), fmt, sr) for p in plans]
    records: list[dict]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_tracks, desc="synth", unit="track")
    try:
        if workers > 1 and n_tracks > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(min(workers, n_tracks)) as pool:
                records = []
                for r in pool.imap(_render_to_file, jobs):
                    records.append(r)
                    if bar:
                        bar.update()
        else:
            records = []
            for j in jobs:
                records.append(_render_to_file(j))
                if bar:
                    bar.update()
    finally:
        if bar:
            bar.close()
    write_export(out / EXPORT_NAME, (make_task(r["task_id"], r["audio"], p.label) for r, p in zip(records, plans)))
    write_truth(out, {"generator": "housex.dataset_script.synthetic", "seed": seed, "sample_rate": sr, "format": fmt,
                      "duration": [lo, hi], **instruments}, records)
    return records
