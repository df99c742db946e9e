"""Synthetic generator: render speed and the quality figures of issue 3.

1. Render time (one core): CPU seconds per 100 s of track over the demo's track lengths
   (target ≤ 0.5 s), and the loudness / crest factor / peak of the release's tracks.
2. Drops: the share of tracks where the drop detector finds ≥ 1 drop without its fallback
   (target ≥ 90 %), and the agreement of detected sections with the generator's own markers.
3. Difficulty: a linear probe (logistic regression, clip-mean log-mel) through the real path
   synth → build (clips) → load_dataset → probe; target accuracy < 0.80 on ≥ 400 tracks.
4. Ceiling: how well the argmax label (ties to the last genre, as the metrics) can be predicted
   from the generator's own choices (tempo, kick, hats, bass, lead, chords, groove, ...) — no
   audio, plans only; an audio model cannot beat it (HOUSEX_BENCH_CEILING_PLANS, default 8000).

The quality part is heavy (hundreds of rendered tracks); scale it with environment variables:
HOUSEX_BENCH_TRACKS (drop figures, default 200), HOUSEX_BENCH_PROBE_TRACKS (default 400; 0 skips),
HOUSEX_BENCH_WORKERS (default 1), HOUSEX_BENCH_DURATION ("90,150"), HOUSEX_BENCH_SEED (0) and
HOUSEX_BENCH_DIR (keep the release/dataset there and reuse them on the next run).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def bench_render(n_tracks: int = 12, duration: tuple[float, float] = (70.0, 100.0)) -> None:
    """CPU time of ``render_track`` per 100 s of audio over the first tracks of a release (the demo's
    durations by default), one process, against the target."""
    from housex.dataset_script import synthetic

    if n_tracks <= 0:
        return
    plans = [synthetic.plan_track(0, i, duration=duration) for i in range(n_tracks)]
    synthetic.render_track(synthetic.plan_track(0, n_tracks, duration=duration))  # loads the SoundFont
    rates = (44100, 22050)  # the release's rate and the demo's (the model's)
    print(f"render time, {n_tracks} tracks of {duration[0]:g}-{duration[1]:g} s (stereo, mastered), one process, "
          f"CPU seconds per 100 s of track at {' and '.join(f'{r / 1000:g} kHz' for r in rates)}")
    print(f"| {'track':>5} | {'genres (label)':<40} | {'seconds':>7} | " + " | ".join(f"{f'{r / 1000:g} kHz':>9}" for r in rates) + " |")
    print(f"|{'-' * 7}|{'-' * 42}|{'-' * 9}|" + "|".join("-" * 11 for _ in rates) + "|")
    cpu_total, audio_total = np.zeros(len(rates)), 0.0
    for plan in plans:
        cpu = np.zeros(len(rates))
        for k, rate in enumerate(rates):
            c0 = time.process_time()
            synthetic.render_track(plan, rate)
            cpu[k] = time.process_time() - c0
        cpu_total, audio_total = cpu_total + cpu, audio_total + plan.duration
        label = " / ".join(f"{w:g} {g}" for g, w in zip(_genres(), plan.label) if w > 0)
        print(f"| {plan.index:>5} | {label[:40]:<40} | {plan.duration:7.1f} | "
              + " | ".join(f"{c / plan.duration * 100:9.3f}" for c in cpu) + " |")
    per100 = cpu_total / audio_total * 100
    print(f"mean {per100[0]:.3f} s CPU per 100 s of track at 44.1 kHz (target <= 0.5 s: "
          f"{'met' if per100[0] <= 0.5 else 'NOT met'}; x{0.5 / per100[0]:.2f} of the target's budget left); "
          f"{per100[1]:.3f} s at the demo's 22.05 kHz (x{per100[0] / per100[1]:.2f} less)")


def bench_loudness(release: Path, records: list[dict]) -> None:
    """Integrated loudness (pyloudnorm, ITU-R BS.1770-4), crest factor and sample peak of the
    written tracks, against the drop loudness the plans asked for."""
    import pyloudnorm

    from housex.dataset_script.audio import load_audio
    from housex.dataset_script.synthetic.master import CEILING_DB

    rows = []
    for r in records:
        y, sr = load_audio(release / r["audio"])
        y = y.T.astype(np.float64)  # (channels, samples) -> pyloudnorm's (samples, channels)
        peak = float(np.max(np.abs(y)))
        rms = float(np.sqrt(np.mean(y**2)))
        rows.append((pyloudnorm.Meter(sr).integrated_loudness(y), 20 * np.log10(peak / rms), 20 * np.log10(peak),
                     r["params"]["drop_lufs"]))
    a = np.array(rows)
    print(f"\nloudness of {len(rows)} synthetic tracks (mastered; ceiling {CEILING_DB} dBFS)")
    print(f"| {'figure':<36} | {'min':>6} | {'p10':>6} | {'median':>6} | {'p90':>6} | {'max':>6} |")
    print(f"|{'-' * 38}|{'-' * 8}|{'-' * 8}|{'-' * 8}|{'-' * 8}|{'-' * 8}|")
    for name, col in (("integrated loudness (LUFS)", 0), ("crest factor (dB, peak / RMS)", 1),
                      ("sample peak (dBFS)", 2), ("drop loudness asked (LUFS)", 3)):
        q = np.percentile(a[:, col], [0, 10, 50, 90, 100])
        print(f"| {name:<36} | " + " | ".join(f"{v:6.2f}" for v in q) + " |")
    over = int(np.sum(a[:, 2] > CEILING_DB + 0.01))
    print(f"tracks over the ceiling: {over}")


def _iou(det, truth) -> float:
    inter = sum(max(0.0, min(b, d) - max(a, c)) for a, b in det for c, d in truth)
    union = sum(b - a for a, b in det) + sum(d - c for c, d in truth) - inter
    return inter / union if union > 0 else 0.0


def bench_drops(release: Path, records: list[dict]) -> None:
    from housex.dataset_script.audio import load_audio, to_mono
    from housex.dataset_script.drops import detect_drops

    found = fallback = expected_fallback = 0
    ious, hits, starts = [], [], []
    for r in records:
        y, sr = load_audio(release / r["audio"])
        det = detect_drops(to_mono(y), sr)
        truth = [tuple(s) for s in r["drop_sections"]]
        expected_fallback += r["expects_fallback"]
        if det.fallback or not det.sections:
            fallback += 1
            continue
        found += 1
        ious.append(_iou(det.sections, truth))
        for c, d in truth:  # a generator drop counts as found when a detection covers half of it
            cover = sum(max(0.0, min(b, d) - max(a, c)) for a, b in det.sections)
            hits.append(cover >= 0.5 * (d - c))
            near = min(det.sections, key=lambda s: abs(s[0] - c))
            starts.append(abs(near[0] - c))
    n = len(records)
    print(f"\ndrop detection on {n} synthetic tracks (detect_drops defaults: margin 1.5 dB, min 15 s, skip 15 s)")
    print(f"| {'figure':<52} | {'value':>8} | {'target':>7} |")
    print(f"|{'-' * 54}|{'-' * 10}|{'-' * 9}|")
    print(f"| {'tracks with >= 1 detected drop (no fallback)':<52} | {found / n:8.1%} | {'>= 90%':>7} |")
    print(f"| {'tracks on the fallback (generator meant: short drops)':<52} | {fallback:>4}/{expected_fallback:<3} | {'':>7} |")
    if ious:
        print(f"| {'mean IoU detected vs generator drop sections':<52} | {np.mean(ious):8.3f} | {'':>7} |")
        print(f"| {'generator drops covered >= 50% by a detection':<52} | {np.mean(hits):8.1%} | {'':>7} |")
        print(f"| {'median |start error| (s)':<52} | {np.median(starts):8.2f} | {'':>7} |")


def bench_probe(release: Path, work: Path, n_tracks: int) -> None:
    import datasets

    from housex.dataset_script.export import export_dataset
    from housex.trainer.baselines.probe import linear_probe

    datasets.disable_progress_bars()
    out = work / f"{release.name}-clips"
    if not (out / "README.md").exists():
        t0 = time.perf_counter()
        summary = export_dataset(release, out, configs=("clips",), progress=False, overwrite=True)
        print(f"\nbuilt clips config in {time.perf_counter() - t0:.0f} s:\n{summary.format()}")
    ds = datasets.load_dataset(str(out), "clips")
    t0 = time.perf_counter()
    result = linear_probe(ds)
    print(f"\n{result.format()}  ({time.perf_counter() - t0:.0f} s)")
    print(f"probe accuracy {result.accuracy:.3f} on {n_tracks} tracks (target < 0.80: "
          f"{'met' if result.accuracy < 0.80 else 'NOT met'}); chance (majority class) "
          f"{np.bincount(ds['validation']['label']).max() / ds['validation'].num_rows:.3f}")


def bench_label_ceiling(n_plans: int, seed: int = 7) -> None:
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    from housex.dataset_script.genres import sharpen_ids
    from housex.dataset_script.synthetic import plan_track

    t0 = time.perf_counter()
    categorical = ["kick", "hats", "bass", "lead", "chords"]
    numeric = ["groove", "rhythm", "distortion", "organicity", "space"]
    plans = [plan_track(seed, i) for i in range(n_plans)]
    rows = [[p.bpm, len(p.params["organic"]), *(p.params[k] for k in numeric), *(str(p.params[k]) for k in categorical)]
            for p in plans]
    table = pd.DataFrame(rows, columns=["bpm", "organic", *numeric, *categorical]).astype(dict.fromkeys(categorical, "category"))
    labels = np.array([p.label for p in plans])
    y = np.atleast_1d(sharpen_ids(labels))
    split = n_plans * 4 // 5
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=300, random_state=0)
    pred = model.fit(table[:split], y[:split]).predict(table[split:])
    right, single = pred == y[split:], labels[split:].max(axis=1) == 1.0
    print(f"\nlabel ceiling from the generator's part choices ({n_plans} plans, 80/20, gradient boosting, "
          f"{time.perf_counter() - t0:.0f} s): accuracy {right.mean():.3f} "
          f"(one-genre tracks {right[single].mean():.3f}, mixed {right[~single].mean():.3f})")


def main() -> None:
    from housex.dataset_script import synthetic

    bench_render(_env_int("HOUSEX_BENCH_RENDER_TRACKS", 12))
    n_ceiling = _env_int("HOUSEX_BENCH_CEILING_PLANS", 8000)
    if n_ceiling > 0:
        bench_label_ceiling(n_ceiling)
    n_drops = _env_int("HOUSEX_BENCH_TRACKS", 200)
    n_probe = _env_int("HOUSEX_BENCH_PROBE_TRACKS", 400)
    n = max(n_drops, n_probe)
    if n <= 0:
        return
    workers = _env_int("HOUSEX_BENCH_WORKERS", 1)
    seed = _env_int("HOUSEX_BENCH_SEED", 0)
    lo, hi = (float(x) for x in os.environ.get("HOUSEX_BENCH_DURATION", "90,150").split(","))
    keep = os.environ.get("HOUSEX_BENCH_DIR")
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="housex-bench-synth-"))
    release = work / f"release-s{seed}-n{n}-{lo:g}-{hi:g}"
    try:
        if (release / synthetic.TRUTH_NAME).exists():
            records = synthetic.read_truth(release)
            print(f"\nreusing {release} ({len(records)} tracks)")
        else:
            t0 = time.perf_counter()
            records = synthetic.generate_release(release, n, seed, duration=(lo, hi), workers=workers, progress=False)
            print(f"\nrendered {n} tracks ({lo:g}-{hi:g} s) with {workers} worker(s) in {time.perf_counter() - t0:.0f} s")
        if n_drops > 0:
            bench_loudness(release, records[:n_drops])
            bench_drops(release, records[:n_drops])
        if n_probe > 0:
            probe_release = release
            if n_probe < n:  # the probe uses the first n_probe tracks: a folder of links to them
                probe_release = work / f"{release.name}-first{n_probe}"
                if not probe_release.exists():
                    probe_release.mkdir(parents=True)
                    for r in records[:n_probe]:
                        (probe_release / r["audio"]).symlink_to(release / r["audio"])
                    from housex.dataset_script.labelstudio import make_task
                    from housex.dataset_script.release import write_export

                    write_export(probe_release / synthetic.EXPORT_NAME,
                                 (make_task(r["task_id"], r["audio"], [r["label"].get(g, 0.0) for g in _genres()])
                                  for r in records[:n_probe]))
            bench_probe(probe_release, work, n_probe)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _genres():
    from housex.dataset_script.genres import GENRES

    return GENRES


if __name__ == "__main__":
    main()
