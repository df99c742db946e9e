"""``housex synth``: write a synthetic HouseX release folder (audio + Label-Studio export + truth).

    housex synth --out DIR --tracks N --seed S [--duration MIN MAX] [--format flac|ogg|wav]
                 [--sample-rate HZ] [--workers K] [--preview]

``--preview`` also renders one single-genre track per genre into ``DIR/preview/`` (audio and a
mel-spectrogram PNG of the whole track and of a drop excerpt), for listening and looking.
"""

from __future__ import annotations

import os
from pathlib import Path

from housex.commands.options import fraction, non_negative, positive

HELP = "generate a synthetic HouseX release folder (procedural house tracks with soft labels)"


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="release folder to write (created if missing)")
    parser.add_argument("--tracks", type=positive(int), required=True, help="number of tracks")
    parser.add_argument("--seed", type=non_negative(int), default=0, help="random seed: same seed, identical files (default 0)")
    parser.add_argument("--duration", type=positive(float), nargs=2, default=(90.0, 150.0), metavar=("MIN", "MAX"),
                        help="track length range in seconds (default 90 150)")
    parser.add_argument("--format", choices=("flac", "ogg", "wav"), default="flac",
                        help="audio format (default flac; wav: no encoding or decoding work, a quarter more disk)")
    parser.add_argument("--sample-rate", type=positive(int), default=44100,
                        metavar="HZ", help="rate of the audio files (default 44100, the real release's; 22050 is the "
                                           "model's rate and takes half the time to render, write and decode)")
    parser.add_argument("--workers", type=positive(int), default=1, help="parallel render processes (default 1)")
    parser.add_argument("--genre-frequencies", default=None, metavar="W1,...,W8",
                        help="primary-genre weights in canonical order (default: the real export's shares)")
    parser.add_argument("--fallback-share", type=fraction(high_open=False), default=0.05,
                        help="share of tracks whose drops are too short for the detector (default 0.05)")
    parser.add_argument("--preview", action="store_true", help="also write one mel-spectrogram PNG per genre to OUT/preview/")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def write_previews(out_dir: Path, seed: int, duration: float = 60.0, fmt: str = "flac", sr: int = 44100) -> list[Path]:
    """One single-genre track per genre, its audio and a mel-spectrogram PNG, in ``out_dir``."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from housex.dataset_script import synthetic
    from housex.dataset_script.genres import GENRES

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for genre in GENRES:
        plan = synthetic.preview_plan(seed, genre, duration)
        y = synthetic.render_track(plan, sr)
        slug = genre.lower().replace(" ", "-")
        synthetic.write_audio(out_dir / f"{slug}.{fmt}", y, sr, fmt)
        mono = y.mean(axis=1)
        drop_a, _ = plan.drop_sections()[0]
        excerpt = mono[int((drop_a + 2) * sr): int((drop_a + 10) * sr)]
        fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [2, 1]})
        for ax, sig, hop, title in ((axes[0], mono, 2048, "whole track"), (axes[1], excerpt, 256, "drop, 8 s")):
            S = librosa.power_to_db(librosa.feature.melspectrogram(y=sig, sr=sr, n_fft=4096, hop_length=hop, n_mels=128), ref=np.max)
            ax.imshow(S, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                      extent=(0, len(sig) / sr, 0, 128))
            ax.set_xlabel("seconds")
            ax.set_ylabel("mel band")
            ax.set_title(title)
        for name, a, b in plan.section_times():
            axes[0].axvline(a, color="white", lw=0.6, alpha=0.6)
            axes[0].text(a + 0.5, 120, name, color="white", fontsize=7)
        p = plan.params
        fig.suptitle(f"{genre} — {plan.bpm:.1f} BPM, {plan.key}; kick {p['kick']}, bass {p['bass']}, lead {p['lead']}, "
                     f"chords {p['chords']}, organic {'+'.join(p['organic']) or '-'}; groove {p['groove']:.1f} "
                     f"rhythm {p['rhythm']:.1f} distortion {p['distortion']:.1f}", fontsize=9)
        fig.tight_layout()
        png = out_dir / f"{slug}.png"
        fig.savefig(png, dpi=80)
        plt.close(fig)
        written.append(png)
    return written


def run(args) -> int:
    from housex.dataset_script import synthetic
    from housex.dataset_script.release import is_synthetic_release
    from housex.dataset_script.synthetic.writer import in_progress

    freqs = None
    if args.genre_frequencies:
        try:
            freqs = [float(x) for x in args.genre_frequencies.split(",")]
        except ValueError:
            raise ValueError(f"--genre-frequencies: expected 8 comma-separated numbers, got {args.genre_frequencies!r}") from None
    out = Path(args.out)
    # A rerun may refill its own synthetic release; never write into a folder of other files
    # (a real release, a dataset): the export and truth files there would be replaced.
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (is_synthetic_release(out) or in_progress(out)):
        raise ValueError(f"--out {out}: folder holds other files (not a synthetic release); choose a new or empty folder")
    records = synthetic.generate_release(out, args.tracks, args.seed, duration=tuple(args.duration), fmt=args.format,
                                         workers=args.workers, progress=not args.no_progress, genre_frequencies=freqs,
                                         fallback_share=args.fallback_share, sr=args.sample_rate)
    print(f"wrote {len(records)} tracks to {out}/ ({synthetic.EXPORT_NAME}, {synthetic.TRUTH_NAME})")
    if args.preview:
        pngs = write_previews(out / "preview", args.seed, fmt=args.format, sr=args.sample_rate)
        print(f"previews: {os.path.commonpath([str(p) for p in pngs])}/ ({len(pngs)} PNG + audio)")
    return 0
