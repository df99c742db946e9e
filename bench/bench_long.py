"""Very long inputs (issue 26): a 3-hour mix through ``housex timeline`` and ``housex cues``.

The mix: 4 synthesized 3-minute tracks (each its own tempo) repeated to 3 hours, 44.1 kHz stereo
FLAC (what a recorded DJ set is); its first hour is written as a file of its own.  Each command runs
in its own process, as a user runs it; the peak RSS is that process's (``os.wait4``).  Targets: peak
RSS <= 2 GiB on 2 cores, time linear in length (3 h / 1 h close to 3), the same windows as the
1-hour prefix where they overlap.  Model: the demo model when trained, else the demo config at
random init (``bench_inference.demo_model``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.timing import run_measured

MINUTES = (60, 180)
PART_SECONDS = 180.0
TARGET_RSS = 2 * 2**30


def write_mix(folder: Path, minutes: tuple[int, ...], sr: int = 44100) -> dict[int, Path]:
    """The mix of ``max(minutes)`` and each shorter one as its prefix, stereo FLAC at ``sr``."""
    import soundfile as sf

    from housex.dataset_script.synthetic import plan_track, render_track

    block = np.concatenate([render_track(plan_track(2, i, duration=(PART_SECONDS, PART_SECONDS), fallback_share=0.0),
                                         sr=sr).astype(np.float32) for i in range(4)])
    paths = {}
    for m in minutes:
        paths[m] = folder / f"mix-{m}min.flac"
        with sf.SoundFile(paths[m], "w", samplerate=sr, channels=2, format="FLAC") as f:
            left = m * 60 * sr
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= min(left, len(block))
    return paths


def main() -> None:
    from bench.bench_inference import demo_model_folder

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder, what = demo_model_folder(tmp)
        mixes = write_mix(tmp, MINUTES)
        print(f"model: {what}; mix: 44.1 kHz stereo FLAC ({', '.join(f'{m} min {mixes[m].stat().st_size / 1e9:.2f} GB' for m in MINUTES)}); "
              f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} (a shared machine slows the wall figures)")
        print(f"\n| {'command':<16} | {'minutes':>7} | {'seconds':>8} | {'x real time':>11} | {'CPU s':>7} | {'peak RSS':>9} |")
        print(f"|{'-' * 18}|{'-' * 9}|{'-' * 10}|{'-' * 13}|{'-' * 9}|{'-' * 11}|")
        times, outputs = {}, {}
        for command in ("timeline", "cues"):
            for m in MINUTES:
                out = tmp / f"{command}-{m}"
                cmd = [sys.executable, "-m", "housex.cli", command, str(mixes[m]), "--model", str(folder), "--out", str(out)]
                if command == "timeline":
                    cmd.append("--no-progress")
                wall, cpu, rss, code, err = run_measured(cmd)
                if code != 0:
                    raise RuntimeError(f"{' '.join(cmd)}: exit {code}: {err[-2000:]}")
                times[command, m] = (wall, cpu, rss)
                outputs[command, m] = out
                verdict = "" if rss <= TARGET_RSS else " (over 2 GiB)"
                print(f"| housex {command:<9} | {m:>7} | {wall:>8.1f} | {m * 60 / wall:>10.0f}x | {cpu:>7.1f} | "
                      f"{rss / 2**30:>5.2f} GiB |{verdict}")
        for command in ("timeline", "cues"):
            (w1, c1, _), (w3, c3, _) = times[command, 60], times[command, 180]
            print(f"{command}: 3 h / 1 h = {w3 / w1:.2f}x wall, {c3 / c1:.2f}x CPU (linear: 3.00)")
        a = json.loads(Path(f"{outputs['timeline', 60]}.json").read_text())["windows"]
        b = json.loads(Path(f"{outputs['timeline', 180]}.json").read_text())["windows"]
        n = len(a["start"]) - 1  # the prefix's last window is placed to end with its file
        same = all(a[key][:n] == b[key][:n] for key in ("start", "probabilities"))
        print(f"timeline: the first {n} windows (start, probabilities) of the 3-hour mix equal the 1-hour prefix's: {same}")
        ca = json.loads((outputs["cues", 60] / "cues.json").read_text())
        cb = json.loads((outputs["cues", 180] / "cues.json").read_text())
        cut = 55 * 60
        beats_a = np.array([t for t in ca["beats"] if t < cut])
        beats_b = np.array([t for t in cb["beats"] if t < cut])
        same = beats_a.shape == beats_b.shape and bool(np.all(np.abs(beats_a - beats_b) <= 1e-3))
        print(f"cues: the {len(beats_a)} beats of the first 55 minutes equal the prefix's (within 1 ms): {same}")


if __name__ == "__main__":
    main()
