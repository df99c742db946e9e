"""Drops in DJ sets: ``detect_set_drops`` (each drop relative to its own track) against the
authors' whole-set threshold, on mixes of generator tracks whose levels differ by up to 6 dB.

For each of four generator settings (release seed, track length), 16 tracks are rendered at
22.05 kHz (mono) and 30 mixes of 5 of them are laid end to end, each track turned down by a
uniform 0-6 dB (one stays at 0 dB) on top of its own mastering (drops at -7.5 to -4.5 LUFS).
A planned drop counts as found when a section overlaps it with IoU >= 0.5; the first track's
drops are not required when its first drop starts in the skipped first 15 s.  "Other sections"
are sections that are neither a planned drop nor a section the authors' rule gives on that
track alone without its 15 s skip (a loud intro, which a set cannot skip track by track).  The
last column checks that each track alone gives the authors' sections exactly.
"""

from __future__ import annotations

import numpy as np

from housex.dataset_script.drops import detect_drops, detect_set_drops
from housex.dataset_script.synthetic import plan_track, render_track

SR = 22050
SETTINGS = ((21, (60.0, 60.0)), (22, (70.0, 100.0)), (23, (90.0, 150.0)), (5, (60.0, 110.0)))
TRACKS, MIXES, PER_MIX, MAX_DB = 16, 30, 5, 6.0


def iou(a, b) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0])) / (max(a[1], b[1]) - min(a[0], b[0]))


def found(drop, sections) -> bool:
    return max([iou(drop, s) for s in sections] or [0.0]) >= 0.5


def main() -> None:
    print(f"{'tracks (seed, s)':<20}{'planned':>8}{'set mode':>10}{'whole set':>11}{'mixes ok':>10}"
          f"{'other sections':>16}{'alone = authors':>17}")
    for seed, duration in SETTINGS:
        plans = [plan_track(seed, i, duration=duration, fallback_share=0.0) for i in range(TRACKS)]
        audio = [render_track(p, sr=SR).mean(axis=1).astype(np.float32) for p in plans]
        alone = [detect_drops(y, SR, skip_seconds=0, fallback=False).sections for y in audio]
        rng = np.random.default_rng(1)
        planned = set_found = whole_found = complete = other = 0
        for _ in range(MIXES):
            order = rng.choice(TRACKS, PER_MIX, replace=False)
            gains = rng.permutation(np.r_[0.0, -rng.uniform(0, MAX_DB, PER_MIX - 1)])
            starts = np.cumsum([0.0] + [audio[i].size / SR for i in order])[:-1]
            mix = np.concatenate([audio[i] * np.float32(10 ** (g / 20)) for i, g in zip(order, gains)])
            truth = [(t + a, t + b) for k, (i, t) in enumerate(zip(order, starts)) for a, b in plans[i].drop_sections()
                     if k > 0 or plans[i].drop_sections()[0][0] >= 15.0]
            allowed = truth + [(t + a, t + b) for i, t in zip(order, starts) for a, b in alone[i]]
            sections = detect_set_drops(mix, SR).sections
            whole = detect_drops(mix, SR, fallback=False).sections
            hits = [found(d, sections) for d in truth]
            planned += len(truth)
            set_found += sum(hits)
            whole_found += sum(found(d, whole) for d in truth)
            complete += all(hits)
            other += sum(not found(s, allowed) for s in sections)
        same = sum(detect_set_drops(y, SR).sections == detect_drops(y, SR, fallback=False).sections for y in audio)
        label = f"{seed}, {duration[0]:g}-{duration[1]:g}"
        print(f"{label:<20}{planned:>8}{set_found:>10}{whole_found:>11}{complete:>7}/{MIXES:<2}"
              f"{other:>16}{same:>14}/{TRACKS:<2}", flush=True)


if __name__ == "__main__":
    main()
