"""Drop detection on a 3-minute 44.1 kHz stereo track: ours (vectorised) vs the authors' loops.

Two rows, both measured in this run:
- ``end-to-end``: from the stereo 44.1 kHz array (mono mix + resampling to 22.05 kHz included;
  both sides use the same soxr resampler, which bounds this ratio);
- ``detection core``: from the mono 22.05 kHz analysis signal (RMS, smoothing, threshold, runs):
  the part the authors wrote as per-frame loops.  Target ≥ 20×.
"""

from __future__ import annotations


import numpy as np
import soxr

from bench.reference_drops import find_drop
from bench.timing import best_time
from housex.dataset_script.drops import detect_drops

SR = 44100
SECONDS = 180.0


def make_track(seed: int = 0) -> np.ndarray:
    """(2, samples) float32: quiet intro/breakdowns, two loud drops (45–80 s, 120–165 s)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * SR)) / SR
    kick = (np.sin(2 * np.pi * 55 * t) * np.exp(-((t * 2.133) % 1.0) * 8)).astype(np.float32)
    gain = np.full(t.size, 0.08, dtype=np.float32)
    for a, b in ((45.0, 80.0), (120.0, 165.0)):
        gain[int(a * SR) : int(b * SR)] = 0.7
    left = gain * (kick + 0.2 * rng.standard_normal(t.size).astype(np.float32))
    right = gain * (kick + 0.2 * rng.standard_normal(t.size).astype(np.float32))
    return np.stack([left, right]).astype(np.float32)


def agree(ours, ref, frame_s: float) -> bool:
    return len(ours) == len(ref) and all(
        abs(a - c) <= frame_s + 1e-9 and abs(b - d) <= frame_s + 1e-9 for (a, b), (c, d) in zip(ours, ref)
    )


def main() -> None:
    stereo = make_track()
    mono = stereo.mean(axis=0)
    analysis = soxr.resample(mono, SR, 22050, quality="HQ")
    frame_s = 512 / 22050
    detect_drops(analysis[: 22050 * 40], 22050)  # warm-up (imports, soxr/scipy first calls)

    rows = []
    t_ours, ours = best_time(lambda: detect_drops(stereo.mean(axis=0), SR).sections, 5)
    t_ref, ref = best_time(lambda: find_drop(stereo.mean(axis=0), SR), 2)
    rows.append(("end-to-end (44.1 kHz stereo)", t_ours, t_ref, agree(ours, ref, frame_s)))
    t_ours, ours = best_time(lambda: detect_drops(analysis, 22050, analysis_sr=None).sections, 7)
    t_ref, ref = best_time(lambda: find_drop(analysis, 22050), 2)
    rows.append(("detection core (22.05 kHz mono)", t_ours, t_ref, agree(ours, ref, frame_s)))

    print(f"track: {SECONDS:.0f} s, {SR} Hz, 2 channels; sections (ours): "
          + ", ".join(f"[{a:.2f}, {b:.2f}]" for a, b in ours))
    print(f"{'stage':34s} {'ours ms':>9s} {'reference ms':>13s} {'ratio':>8s}  sections agree (±1 frame)")
    for name, a, b, same in rows:
        print(f"{name:34s} {a * 1e3:9.1f} {b * 1e3:13.1f} {b / a:7.1f}x  {same}")
    print("target: detection core ≥ 20x, identical sections")


if __name__ == "__main__":
    main()
