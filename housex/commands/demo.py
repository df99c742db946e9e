"""``housex demo``: the whole benchmark end to end on synthetic data, on a CPU.

Each step runs the same public command a user would type (as a subprocess, so ``accelerate
launch`` is real), and is skipped when its output already exists, so a rerun reuses what is built:

1. ``housex synth``    — a synthetic release folder (audio + Label-Studio export)
2. ``housex build``    — the Hub-ready dataset folder ``housex-v2/`` (Parquet + card)
3. ``housex probe``    — the linear-probe baseline on clip-mean log-mel features
4. ``accelerate launch -m housex.trainer.run cpu.yaml`` — train + evaluate (the module, so an
   installed package runs it too)
5. ``housex plot``     — confusion matrix and embedding scatter
6. ``housex predict`` on one held-out track, ``housex timeline`` on a mix of held-out tracks
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from housex.trainer import CONFIGS_DIR

from housex.commands.options import non_negative, positive

HELP = "run the whole benchmark on synthetic data: synth, build, probe, train, evaluate, plots, predict, timeline"


def add_arguments(p) -> None:
    p.add_argument("--out", default="demo-out", help="work folder for the release, model and plots (default: demo-out)")
    p.add_argument("--dataset", default="housex-v2", help="dataset folder to write (default: housex-v2 in the cwd)")
    # Many short tracks, one clip per drop: what the model must generalise across is tracks.  A
    # track's drops repeat one 4-bar loop, so its clips are near-duplicates: 1 clip per drop trained
    # as well as 2 for the same number of steps, and twice the tracks at 1 clip per drop gave
    # weighted F1 0.86 against 0.77-0.81 (720 tracks, 2 per drop) at the same training cost
    # (measured on the earlier generator).  On the produced set, 1600 tracks and 12 epochs gave
    # 0.91-0.92 where 1440 tracks and 20 epochs gave ~0.90, in less time (trainer/configs/cpu.yaml).
    p.add_argument("--tracks", type=positive(int), default=1600, help="synthetic tracks (default: 1600)")
    p.add_argument("--seed", type=non_negative(int), default=0)
    p.add_argument("--workers", type=positive(int), default=max(1, min(2, os.cpu_count() or 1)))
    p.add_argument("--duration", type=positive(float), nargs=2, default=(70.0, 100.0), metavar=("MIN", "MAX"),
                   help="track length range in seconds (default: 70 100)")
    # The model hears 22.05 kHz: the release's 44.1 kHz would be resampled to it in the build, so
    # the demo renders at that rate (half the render, FLAC, disk and decoding work of 44.1 kHz).
    p.add_argument("--sample-rate", type=positive(int), default=22050, metavar="HZ",
                   help="rate of the synthetic audio (default 22050, the model's; 44100 is the real release's)")
    # The release is decoded once, by the build: FLAC costs 2.3x the CPU of WAV to write and 6x to
    # read (~40 s of the demo), for a quarter less disk.
    p.add_argument("--format", choices=("wav", "flac"), default="wav",
                   help="audio format of the synthetic release (default wav; flac: smaller, slower)")
    p.add_argument("--clips-per-section", type=positive(int), default=1, help="clips per drop section in the build (default: 1)")
    p.add_argument("--config", default=str(CONFIGS_DIR / "cpu.yaml"), help="training config (default: the shipped cpu.yaml)")
    p.add_argument("--train-args", default="", help="extra arguments for housex.trainer.run, e.g. '--num_train_epochs 1'")
    p.add_argument("--num-processes", type=positive(int), default=1, help="accelerate processes (CPU)")
    p.add_argument("--mix-tracks", type=positive(int), default=4, help="held-out tracks concatenated into the demo mix")


# Disk use measured for 1440 tracks of 70-100 s at 44.1 kHz: release 14 GB of 16-bit stereo FLAC
# (synthetic.AUDIO_BYTES_PER_FRAME), dataset folder 1.3 GB, datasets caches ~1 GB.
DATASET_SHARE = 0.25  # dataset folder + caches (FLAC clips at the release's rate), relative to a FLAC release


def disk_needed(n_tracks: int, duration: tuple[float, float], sample_rate: int = 44_100, fmt: str = "flac") -> int:
    """Bytes the demo writes for ``n_tracks`` synthetic tracks of ``duration`` (min, max) seconds at
    ``sample_rate`` in ``fmt``."""
    from housex.dataset_script.synthetic.writer import estimate_release_bytes

    mean = (duration[0] + duration[1]) / 2
    return (estimate_release_bytes([mean] * n_tracks, sample_rate, fmt)
            + int(estimate_release_bytes([mean] * n_tracks, sample_rate, "flac") * DATASET_SHARE))


def check_disk(folder: Path, needed: int, free: int) -> None:
    """A clear error up front instead of a full disk in the middle of the build."""
    if free < needed:
        raise RuntimeError(
            f"{folder}: the demo needs about {needed / 1e9:.1f} GB of free disk (synthetic release, dataset, "
            f"caches) and {free / 1e9:.1f} GB are free; free some space, or run a smaller demo "
            "(e.g. --tracks 360)"
        )


def _step(title: str, cmd: list[str], *, env: dict | None = None) -> None:
    print(f"\n==> {title}\n$ {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"step '{title}' failed with exit code {proc.returncode}: {shlex.join(cmd)}")
    print(f"    ({title}: {time.perf_counter() - t0:.0f} s)", flush=True)


def _skip(title: str, why: str) -> None:
    print(f"\n==> {title}: reusing {why}", flush=True)


def _housex(*args: str) -> list[str]:
    return [sys.executable, "-m", "housex.cli", *args]


def train_command(config: str, dataset: str | os.PathLike, run_dir: str | os.PathLike, *, num_processes: int = 1,
                  extra: list[str] | tuple = ()) -> list[str]:
    """``accelerate launch --quiet ... -m housex.trainer.run CONFIG --dataset_name DATASET --output_dir RUN_DIR``.

    The module, not ``trainer/run.py``: that file exists only in a source checkout.  accelerate's
    --cpu launcher starts a single process; several CPU processes (DDP on gloo) need --multi_gpu
    with the config's use_cpu: true.
    """
    mode = ["--multi_gpu"] if num_processes > 1 else ["--cpu"]
    # The CPU threads accelerate would choose itself (it warns when it has to choose).
    import psutil

    threads = os.environ.get("OMP_NUM_THREADS") or max(1, (psutil.cpu_count(logical=False) or 1) // num_processes)
    # --quiet: a failed run's error is its one line, not repeated in the launcher's traceback
    return [sys.executable, "-m", "accelerate.commands.launch", "--quiet", *mode, "--num_processes", str(num_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--num_cpu_threads_per_process", str(threads),
            "-m", "housex.trainer.run", str(config), "--dataset_name", str(dataset), "--output_dir", str(run_dir),
            *extra]


def _validation_tracks(release: Path, dataset: Path, n: int) -> list[Path]:
    """Audio files of held-out (validation) tracks, from the built ``clips`` config's track ids."""
    from housex.trainer.data import load_clips_dataset

    ds = load_clips_dataset(dataset, "clips", splits=["validation"])["validation"].remove_columns("audio")
    files = {p.stem: p for p in release.iterdir() if p.suffix.lower() in (".flac", ".ogg", ".wav")}
    out = []
    for track_id in dict.fromkeys(ds["track_id"]):  # unique, in order
        if track_id in files:
            out.append(files[track_id])
        if len(out) == n:
            break
    if not out:
        raise RuntimeError(f"no validation track of {dataset} found in {release}")
    return out


def _make_mix(tracks: list[Path], out: Path) -> None:
    """Concatenate held-out tracks into one long mix (what a DJ-set timeline is run on)."""
    import numpy as np
    import soundfile as sf

    parts, sr = [], None
    for path in tracks:
        y, rate = sf.read(path, dtype="float32", always_2d=True)
        sr = sr or rate
        parts.append(y)
    sf.write(out, np.concatenate(parts), sr)


def truth_lines(release: Path, tracks: list[Path]) -> list[str]:
    """What the generator put in ``tracks`` (their exact labels, from ``generator-truth.json``), laid
    end to end as in the demo mix: one line per track, ``start - end  genre weights``."""
    import soundfile as sf

    from housex.dataset_script.release import TRUTH_NAME, is_synthetic_release, read_truth
    from housex.results import format_genres, mmss

    if not is_synthetic_release(release):
        return []
    labels = {t["audio"]: t["label"] for t in read_truth(release)}
    lines, start = [], 0.0
    for path in tracks:
        end = start + sf.info(path).duration
        label = labels.get(path.name)
        text = format_genres(sorted(label.items(), key=lambda kv: -kv[1])) if label else f"(not in {TRUTH_NAME})"
        lines.append(f"  {mmss(start)} - {mmss(end)}  {text}")
        start = end
    return lines


DEMO_FIGURES = (  # (title, metrics.json key; track level when the key starts with "track_")
    ("accuracy", "accuracy"),
    ("precision (weighted)", "precision_weighted"),
    ("recall (weighted)", "recall_weighted"),
    ("F1 (weighted)", "f1_weighted"),
    ("F1 (macro)", "f1_macro"),
    ("top-2 accuracy", "top2_accuracy"),
    ("mean KL(target||pred)", "kl_divergence"),
    ("Jensen-Shannon distance", "js_distance"),
    ("expected calibration error", "ece"),
    ("track accuracy", "track_accuracy"),
    ("track F1 (weighted)", "track_f1_weighted"),
)


def _figure(metrics: dict, key: str) -> str:
    from housex.trainer.statistics import format_figure

    if key.startswith("track_"):
        key = key.removeprefix("track_")
        value, bounds = metrics.get("track_level", {}).get(key), metrics.get("track_level_intervals", {}).get(key)
    else:
        value, bounds = metrics.get(key), metrics.get("intervals", {}).get(key)
    return format_figure(value, bounds) if isinstance(value, (int, float)) else "-"


def results_table(metrics: dict, probe: dict) -> str:
    """The demo's result table: every figure of the model and the probe with its track-bootstrap interval."""
    from housex.trainer.statistics import level_text

    boot = metrics.get("bootstrap") or {}
    width = 22
    lines = [f"Results on the synthetic validation split ({metrics.get('num_examples', '?')} clips of "
             f"{metrics.get('num_tracks', '?')} tracks; {level_text(boot.get('level', 0.95))} intervals: cluster "
             f"bootstrap over tracks, {boot.get('resamples', '?')} resamples, seed {boot.get('seed', '?')})",
             f"| {'metric':<28} | {'HouseX model':>{width}} | {'linear probe':>{width}} |",
             f"|{'-' * 30}|{'-' * (width + 2)}|{'-' * (width + 2)}|"]
    for title, key in DEMO_FIGURES:
        lines.append(f"| {title:<28} | {_figure(metrics, key):>{width}} | {_figure(probe, key):>{width}} |")
    return "\n".join(lines)


def _print_results(run_dir: Path, probe_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    probe_file = probe_dir / "metrics.json"
    probe = json.loads(probe_file.read_text()) if probe_file.exists() else {}
    print("\n" + results_table(metrics, probe))


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    release = out / "release"
    dataset = Path(args.dataset)
    run_dir = out / "model"
    probe_dir = out / "probe"
    t_start = time.perf_counter()

    from housex.dataset_script.release import EXPORT_NAME

    if (release / EXPORT_NAME).exists():
        _skip("1/6 synthesise", str(release))
    else:
        import shutil

        check_disk(out, disk_needed(args.tracks, args.duration, args.sample_rate, args.format), shutil.disk_usage(out).free)
        _step(
            "1/6 synthesise",
            _housex("synth", "--out", str(release), "--tracks", str(args.tracks), "--seed", str(args.seed),
                    "--workers", str(args.workers), "--duration", *map(str, args.duration),
                    "--sample-rate", str(args.sample_rate), "--format", args.format),
        )

    if (dataset / "README.md").exists():
        _skip("2/6 build", str(dataset))
    else:
        _step("2/6 build", _housex("build", "--data-dir", str(release), "--out", str(dataset), "--config", "clips",
                                    "--clips-per-section", str(args.clips_per_section), "--workers", str(args.workers)))

    if (probe_dir / "metrics.json").exists():
        _skip("3/6 linear probe", str(probe_dir))
    else:
        _step("3/6 linear probe", _housex("probe", "--dataset", str(dataset), "--workers", str(args.workers), "--out", str(probe_dir)))

    if (run_dir / "metrics.json").exists() and (run_dir / "config.json").exists():
        _skip("4/6 train + evaluate", str(run_dir))
    else:
        _step("4/6 train + evaluate", train_command(args.config, dataset, run_dir, num_processes=args.num_processes,
                                                    extra=shlex.split(args.train_args)))

    _step("5/6 plots", _housex("plot", "confusion", "--metrics", str(run_dir / "metrics.json"), "--out", str(out / "confusion.png")))
    if not (out / "embeddings.png").exists():
        _step("5/6 plots", _housex("plot", "embeddings", "--model", str(run_dir), "--dataset", str(dataset), "--out", str(out / "embeddings.png")))

    held_out = _validation_tracks(release, dataset, args.mix_tracks)
    _step("6/6 classify a held-out track", _housex("predict", str(held_out[0]), "--model", str(run_dir)))
    print("truth (the generator's label):", *truth_lines(release, held_out[:1]), sep="\n")
    mix = out / "mix.flac"
    if not mix.exists():
        _make_mix(held_out, mix)
    _step("6/6 classify a mix", _housex("timeline", str(mix), "--model", str(run_dir), "--out", str(out / "mix-timeline")))
    print("truth (the generator's labels of the mixed tracks):", *truth_lines(release, held_out), sep="\n")

    _print_results(run_dir, probe_dir)
    print(f"\nDemo finished in {time.perf_counter() - t_start:.0f} s. Outputs: {out}/ and {dataset}/")
    print(f"  model: {run_dir}   plots: {out}/confusion.png {out}/embeddings.png {out}/mix-timeline.png")
    return 0
