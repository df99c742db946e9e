"""``housex timeline MIX --model DIR``: genre segments of a long DJ set, as CSV, JSON and PNG."""

from __future__ import annotations

from pathlib import Path

from housex.commands.options import non_negative, positive

HELP = "genre timeline of a long DJ set: sliding windows, smoothing, segments; writes CSV, JSON and PNG"


def add_window_arguments(p) -> None:
    """The model and timeline options (shared with ``housex cues``)."""
    p.add_argument("mix", metavar="MIX", help="audio file of the set (anything FFmpeg decodes)")
    p.add_argument("--model", required=True, help="model folder written by save_pretrained")
    p.add_argument("--hop", type=positive(float), default=2.5, help="seconds between window starts (default: 2.5)")
    p.add_argument("--smooth", type=non_negative(float), default=15.0, help="smoothing span in seconds (default: 15; 0 = none)")
    p.add_argument("--smoothing", choices=("median", "mean"), default="median", help="temporal filter (default: median)")
    p.add_argument("--min-segment", type=non_negative(float), default=30.0,
                   help="segments shorter than this many seconds are merged into a neighbour (default: 30)")
    p.add_argument("--batch-size", type=positive(int), default=16, help="windows per forward pass (default: 16)")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default: CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def timeline_options(args) -> dict:
    """``housex.inference.timeline`` keyword arguments from the parsed window options."""
    return dict(hop_seconds=args.hop, smooth_seconds=args.smooth, smoothing=args.smoothing,
                min_segment_seconds=args.min_segment, batch_size=args.batch_size, device=args.device,
                progress=not args.no_progress)


def add_arguments(p) -> None:
    add_window_arguments(p)
    p.add_argument("--out", default=None, metavar="PREFIX",
                   help="output prefix: writes PREFIX.csv, PREFIX.json, PREFIX.png (default: MIX without suffix + '-timeline')")
    p.add_argument("--cues", action="store_true",
                   help="also write bar-aligned cues for visuals: PREFIX-cues/cues.json and cues.mid (see housex cues)")


def run(args) -> int:
    from housex.dataset_script.paths import check_output_path
    from housex.djset import timeline

    prefix = args.out or str(Path(args.mix).with_suffix("")) + "-timeline"
    for suffix in (".csv", ".json", ".png"):  # never over the mix, nor inside the model folder
        check_output_path(prefix + suffix, [args.mix, args.model], option="--out")
    if args.cues:
        from housex.cues import set_cues

        tl, cues = set_cues(args.mix, args.model, **timeline_options(args))
    else:
        tl = timeline(args.mix, args.model, **timeline_options(args))
    paths = tl.write(prefix)
    print(tl.format())
    if args.cues:
        # keyed apart: the cues' "json" must not replace the timeline's
        paths.update({f"cues-{kind}": path for kind, path in cues.write(str(prefix) + "-cues").items()})
        print(cues.format())
    print("wrote " + "  ".join(str(p) for p in paths.values()))
    return 0
