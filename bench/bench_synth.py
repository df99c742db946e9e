"""Synthetic generator: render speed and the quality figures of issue 3.

1. Render time of a 120 s track (one core; target ≤ 2 s), against a per-sample Python-loop
   Karplus-Strong string as the "reference" loop style the generator avoids.
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

from bench.timing import best_time


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _ks_reference(freq: float, n: int, sr: int, seed: int = 0) -> np.ndarray:
    """Karplus-Strong with a per-sample Python loop (the style dsp.karplus_strong avoids)."""
    rng = np.random.default_rng(seed)
    period = int(round(sr / freq))
    out = np.zeros(n)
    out[:period] = rng.uniform(-1, 1, period)
    for t in range(period, n):
        out[t] += 0.5 * 0.996 * (out[t - period] + out[t - period - 1])
    return out


def _ks_lfilter(freq: float, n: int, sr: int, seed: int = 0) -> np.ndarray:
    """The same comb as one scipy.signal.lfilter call (O(n * L) direct form)."""
    from scipy import signal

    rng = np.random.default_rng(seed)
    period = int(round(sr / freq))
    x = np.zeros(n)
    x[:period] = rng.uniform(-1, 1, period)
    a = np.zeros(period + 2)
    a[0], a[period], a[period + 1] = 1.0, -0.498, -0.498
    return signal.lfilter([1.0], a, x)


def bench_render(n_tracks: int = 3) -> None:
    from housex.dataset_script import synthetic
    from housex.dataset_script.synthetic import dsp
    from housex.dataset_script.genres import GENRES

    print("render time of a 120 s track (44.1 kHz stereo), one process")
    print(f"| {'genre':<18} | {'wall s':>7} | {'cpu s':>7} | {'cpu / 2 s target':>16} |")
    print(f"|{'-' * 20}|{'-' * 9}|{'-' * 9}|{'-' * 18}|")
    cpus = []
    for g in GENRES[:n_tracks] if n_tracks < 8 else GENRES:
        plan = synthetic.preview_plan(0, g, 120.0)
        t0, c0 = time.perf_counter(), time.process_time()
        synthetic.render_track(plan)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        cpus.append(cpu)
        print(f"| {g:<18} | {wall:7.2f} | {cpu:7.2f} | {cpu / 2.0:16.2f} |")
    print(f"mean cpu {np.mean(cpus):.2f} s per 120 s track (target <= 2 s)")
    sr, n = 44100, 44100
    ref, _ = best_time(lambda: _ks_reference(220.0, n, sr), 1)
    lf, _ = best_time(lambda: _ks_lfilter(220.0, n, sr), 3)
    ours, _ = best_time(lambda: dsp.karplus_strong(220.0, n, sr, np.random.default_rng(0)), 3)
    print(f"Karplus-Strong, 1 s note at 220 Hz: per-sample Python loop {ref * 1e3:.1f} ms (reference), "
          f"lfilter comb {lf * 1e3:.2f} ms (x{ref / lf:.0f}), block recursion {ours * 1e3:.2f} ms (x{ref / ours:.0f})")


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

    bench_render(_env_int("HOUSEX_BENCH_RENDER_TRACKS", 3))
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
