"""``housex build --data-dir DIR [DIR...] --out housex-v2``: release folders → Hub-ready dataset folder."""

from __future__ import annotations

from housex.commands.options import DROP_RULE, bounded, fraction, non_negative, positive

HELP = "build the HouseX-v2 dataset (Parquet shards + dataset card) from release folders"


def add_arguments(p) -> None:
    p.epilog = (DROP_RULE + " In a build, --margin-db, --min-drop-seconds and --skip-seconds change these numbers, "
                "a release's drop file replaces detection for the tracks it lists, and --strict skips fallback tracks.")
    p.add_argument("--data-dir", nargs="+", required=True, metavar="DIR",
                   help="release folders: audio + Label-Studio export (*partition*.json) [+ drop file (*detect*.json)]")
    p.add_argument("--out", default="housex-v2", help="output folder (default: housex-v2; loads with load_dataset(OUT))")
    p.add_argument("--config", choices=("clips", "tracks", "all"), default="all",
                   help="which configs to write (default: all)")
    p.add_argument("--label-mode", choices=("soft", "sharpen", "clean"), default="soft",
                   help="soft: weights as annotated; sharpen: one-hot of the max; clean: single-genre tracks only")
    p.add_argument("--seed", type=non_negative(int), default=42, help="seed of the track split and the clip offsets (default: 42)")
    p.add_argument("--validation-fraction", type=fraction(), default=0.2, help="share of tracks in validation (default: 0.2)")
    p.add_argument("--stratify", action="store_true", help="stratify the split by primary genre")
    p.add_argument("--clips-per-section", type=positive(int), default=4, help="clips per drop section (default: 4)")
    p.add_argument("--clip-seconds", type=positive(float), default=7.5, help="clip length in seconds (default: 7.5)")
    p.add_argument("--margin-db", type=positive(float), default=1.5, help="drop threshold below the loudest part (default: 1.5 dB)")
    p.add_argument("--min-drop-seconds", type=positive(float), default=15.0, help="shortest drop section (default: 15 s)")
    p.add_argument("--skip-seconds", type=non_negative(float), default=15.0, help="intro ignored by drop detection (default: 15 s)")
    p.add_argument("--no-drop-file", action="store_true", help="ignore drop files and detect every track's drops")
    p.add_argument("--strict", action="store_true", help="skip tracks whose drop came from the loudest-window fallback")
    p.add_argument("--folds", type=bounded(int, low=2), default=None, metavar="K",
                   help="add a 'fold' column (0..K-1) to both configs: stratified group K-fold by track, seeded "
                        "by --seed; the train/validation split stays as it is")
    p.add_argument("--workers", type=positive(int), default=1,
                   help="processes that decode and cut tracks (default: 1; the output is the same for any number)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--push-to-hub", metavar="REPO", help="upload the folder to this Hub dataset repo afterwards")
    p.add_argument("--private", action="store_true", help="create the Hub repo as private")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:
    import datasets

    from housex.dataset_script.export import export_dataset, push_to_hub

    if args.quiet:
        datasets.disable_progress_bars()
    configs = ("tracks", "clips") if args.config == "all" else (args.config,)
    summary = export_dataset(
        args.data_dir,
        args.out,
        configs=configs,
        label_mode=args.label_mode,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        stratify=args.stratify,
        clips_per_section=args.clips_per_section,
        clip_seconds=args.clip_seconds,
        margin_db=args.margin_db,
        min_drop_seconds=args.min_drop_seconds,
        skip_seconds=args.skip_seconds,
        strict=args.strict,
        use_drop_file=not args.no_drop_file,
        overwrite=args.overwrite,
        progress=not args.quiet,
        workers=args.workers,
        folds=args.folds or 0,
    )
    print(summary.format())
    if args.push_to_hub:
        print(f"pushed: {push_to_hub(summary.out_dir, args.push_to_hub, private=args.private)}")
    return 0
