"""``housex predict TRACK... --model DIR``: per-drop and per-track genres of whole tracks."""

from __future__ import annotations

import json
import sys

from housex.commands.options import DROP_RULE, non_negative, positive

HELP = "classify whole tracks from their drops: per-drop and per-track top genres"


def add_arguments(p) -> None:
    p.epilog = DROP_RULE
    p.add_argument("tracks", nargs="+", metavar="TRACK", help="audio files (wav, flac, ogg, mp3, m4a, ... anything FFmpeg decodes)")
    p.add_argument("--model", required=True, help="model folder written by save_pretrained (e.g. demo-out/model)")
    p.add_argument("--json", action="store_true", help="print one JSON document (a list, one object per track) instead of text")
    p.add_argument("--batch-size", type=positive(int), default=16, help="clips per forward pass (default: 16)")
    p.add_argument("--clips-per-drop", type=positive(int), default=4, help="clips sampled per drop section (default: 4)")
    p.add_argument("--top", type=positive(int), default=3, help="genres shown per track/drop in text output (default: 3)")
    p.add_argument("--seed", type=non_negative(int), default=0, help="seed of the clip sampling (default: 0)")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default: the model's, CPU)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:
    from housex.inference import AudioInputError, classify_track, load_classifier

    model, fe = load_classifier(args.model, device=args.device)
    results, failed = [], 0
    for path in args.tracks:
        try:
            pred = classify_track(path, model, fe, batch_size=args.batch_size, clips_per_section=args.clips_per_drop,
                                  seed=args.seed, device=args.device)
        except (AudioInputError, ValueError, OSError, RuntimeError) as e:
            # One unreadable/silent file must not hide the results of the others.
            if args.debug:
                raise
            failed += 1
            print(f"housex predict: error: {e}", file=sys.stderr)
            results.append({"source": path, "error": str(e)})
            continue
        results.append(pred.to_dict())
        if not args.json:
            print(pred.format(args.top), flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return 2 if failed else 0
