"""Whole-track inference end to end: a 3-minute track, decode → drops → clips → model → distribution.

Model: the demo model (``demo-out/model``) when it has been trained, else a randomly initialised
model of the demo config (``trainer/configs/cpu.yaml``): same sizes, same cost.  Track: a
3-minute synthetic track (44.1 kHz stereo OGG, like the real release).

- ``housex.classify_track``: batched clips, torch feature backend (what ``housex predict`` runs);
- reference: the straightforward approach in the same run: ``librosa.load`` at the model's rate,
  the same drop detection and clip positions, librosa features and one clip per forward pass.

Target: ≥ 30× faster than real time on 2 CPU cores.  Also reports ``housex.timeline`` on a
5-minute mix (hop 2.5 s) as a real-time factor.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.timing import best_time

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TRACK_SECONDS = 180.0
MIX_SECONDS = 300.0
TARGET_RTF = 30.0


def demo_model():
    """(model, feature extractor, description): trained demo model, else demo config at random init."""
    from housex.inference import load_classifier

    folder = PROJECT_ROOT / "demo-out" / "model"
    if (folder / "config.json").is_file():
        model, fe = load_classifier(folder)
        return model, fe, f"trained demo model ({folder.relative_to(PROJECT_ROOT)})"
    from housex.trainer.arguments import parse_args
    from housex.trainer.train import build_feature_extractor, build_model

    # the dataset is not read here; parse_args only insists that one is named
    model_args, _, _ = parse_args([str(PROJECT_ROOT / "trainer" / "configs" / "cpu.yaml"), "--dataset_name", "housex-v2"])
    torch.manual_seed(0)
    fe = build_feature_extractor(model_args, clip_seconds=7.5)
    model, fe = load_classifier(build_model(model_args, fe, None), fe)
    return model, fe, "demo config (trainer/configs/cpu.yaml), random weights: no trained demo model yet"


def demo_model_folder(tmp: Path) -> tuple[Path, str]:
    """``(folder, description)`` of :func:`demo_model` for a command run in its own process: the
    trained demo model's folder, else the demo config at random init saved into ``tmp/model``."""
    folder = PROJECT_ROOT / "demo-out" / "model"
    if (folder / "config.json").is_file():
        return folder, f"trained demo model ({folder.relative_to(PROJECT_ROOT)})"
    model, fe, what = demo_model()
    folder = Path(tmp) / "model"
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder, what


def synthetic_track(folder: Path, seconds: float, seed: int = 0) -> Path:
    """A synthetic track as OGG Vorbis (the release's format), encoded by the ffmpeg CLI.

    (libsndfile's Vorbis encoder crashed on a 3-minute file here; FLAC when ffmpeg is missing.)
    """
    import shutil
    import subprocess

    from housex.dataset_script.synthetic import plan_track, render_track, write_audio

    plan = plan_track(seed, 0, duration=(seconds, seconds), fallback_share=0.0)
    flac = folder / "track.flac"
    write_audio(flac, render_track(plan), 44100, "flac")
    if shutil.which("ffmpeg") is None:
        return flac
    ogg = folder / "track.ogg"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(flac), "-c:a", "libvorbis", "-q:a", "5", str(ogg)],
                   check=True, timeout=120)
    return ogg


def reference_classify(path: Path, model, fe, clips_per_section: int = 4, seed: int = 0) -> np.ndarray:
    """Straightforward whole-track classification: librosa decode, librosa features, one clip at a time."""
    import librosa

    from housex.dataset_script.clips import cut_clip, sample_clips
    from housex.dataset_script.drops import detect_drops

    sr = int(fe.sampling_rate)
    y, _ = librosa.load(str(path), sr=sr, mono=True)
    duration = y.size / sr
    sections = detect_drops(y, sr).sections
    specs = sample_clips(sections, duration, clips_per_section=clips_per_section, clip_seconds=fe.clip_seconds, seed=seed)
    drops: dict[int, list[np.ndarray]] = {}
    for spec in specs:
        clip = cut_clip(y, sr, spec.start, fe.clip_seconds)
        inputs = fe(clip, sampling_rate=sr, return_tensors="pt", backend="librosa")
        with torch.inference_mode():
            logits = model(input_features=inputs["input_features"], attention_mask=inputs.get("attention_mask")).logits
        drops.setdefault(spec.drop_index, []).append(logits.softmax(-1)[0].numpy())
    return np.mean([np.mean(v, axis=0) for v in drops.values()], axis=0)


def main() -> None:
    from housex.djset import timeline
    from housex.inference import classify_track

    model, fe, what = demo_model()
    print(f"model: {what}; {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
          f"features {fe.n_mels} mels @ {fe.sampling_rate} Hz, clip {fe.clip_seconds:g} s; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        track = synthetic_track(Path(tmp), TRACK_SECONDS)
        classify_track(track, model, fe)  # warm-up (first-call allocations, filterbank)
        t_ours, pred = best_time(lambda: classify_track(track, model, fe), 2)
        t_ref, ref = best_time(lambda: reference_classify(track, model, fe), repeats=1)
        n_clips = sum(len(d.clip_starts) for d in pred.drops)
        gap = float(np.abs(pred.probabilities - ref).max())

        mix = Path(tmp) / "mix.flac"
        from housex.dataset_script.synthetic import plan_track, render_track, write_audio

        parts = [render_track(plan_track(1, i, duration=(MIX_SECONDS / 4,) * 2, fallback_share=0.0)) for i in range(4)]
        write_audio(mix, np.concatenate(parts), 44100, "flac")
        t_tl, tl = best_time(lambda: timeline(mix, model, fe, hop_seconds=2.5), repeats=1)
        mix_seconds = tl.duration

    rows = [
        ("classify_track (batched, torch features)", t_ours, TRACK_SECONDS / t_ours),
        ("reference (librosa, one clip at a time)", t_ref, TRACK_SECONDS / t_ref),
    ]
    print(f"\n3-minute track ({TRACK_SECONDS:.0f} s, {track.suffix[1:].upper()} 44.1 kHz stereo), {len(pred.drops)} drop(s), {n_clips} clips")
    print(f"| {'implementation':<42} | {'seconds':>8} | {'x real time':>11} |")
    print(f"|{'-' * 44}|{'-' * 10}|{'-' * 13}|")
    for name, t, rtf in rows:
        print(f"| {name:<42} | {t:>8.2f} | {rtf:>10.1f}x |")
    verdict = "meets" if TRACK_SECONDS / t_ours >= TARGET_RTF else "MISSES"
    print(f"speed-up vs reference: {t_ref / t_ours:.2f}x; {verdict} the target of >= {TARGET_RTF:.0f}x real time; "
          f"max |p_ours - p_ref| = {gap:.2e}")
    print(f"timeline of a {mix_seconds / 60:.0f}-minute mix, hop 2.5 s ({len(tl.window_starts)} windows): "
          f"{t_tl:.1f} s = {mix_seconds / t_tl:.1f}x real time, {len(tl.segments)} segments")


if __name__ == "__main__":
    main()
