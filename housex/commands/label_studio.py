"""``housex label-studio config|tasks``: the labeling config, and pre-annotated import tasks."""

from __future__ import annotations

import sys

HELP = "Label Studio: print the labeling config, or write import tasks pre-annotated by a model"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="ls_command", required=True, metavar="{config,tasks}")
    c = sub.add_parser("config", help="print the labeling config (XML): audio, drops, one 0-1 number per genre")
    c.add_argument("--out", default=None, help="write the XML here instead of printing it")
    t = sub.add_parser("tasks", help="import tasks whose predictions are the model's genre weights, snapped to the "
                          "nearest pattern annotators use (1, 0.75/0.25, 0.5/0.5 or 0.5/0.25/0.25)")
    t.add_argument("audio", nargs="+", metavar="AUDIO_OR_DIR", help="audio files or folders (walked for audio files)")
    t.add_argument("--model", required=True, help="model folder written by save_pretrained")
    t.add_argument("--out", required=True, help="tasks JSON to import into Label Studio")
    t.add_argument("--upload-prefix", default="/data/upload/1/",
                   help="prefix of data.audio: where Label Studio serves the files (default: /data/upload/1/)")
    t.add_argument("--drop-file", default=None,
                   help="also write the detected drops in the release format (detected_drops.json) here")
    t.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default: 16)")
    t.add_argument("--clips-per-drop", type=int, default=4, help="clips sampled per drop section (default: 4)")
    t.add_argument("--seed", type=int, default=0, help="seed of the clip sampling (default: 0)")
    t.add_argument("--device", default=None, help="torch device, e.g. cuda (default: CPU)")
    for q in (c, t):
        q.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:
    from pathlib import Path

    from housex.labelstudio import labeling_config

    if args.ls_command == "config":
        xml = labeling_config()
        if args.out:
            Path(args.out).write_text(xml, encoding="utf-8")
            print(f"wrote {args.out}", file=sys.stderr)
        else:
            sys.stdout.write(xml)
        return 0

    from housex.dataset_script.release import write_drop_file
    from housex.labelstudio import make_tasks, write_tasks

    failed = []

    def on_error(path, error):
        if args.debug:
            raise error
        failed.append(path)
        print(f"housex label-studio: error: {error}", file=sys.stderr)

    tasks = make_tasks(args.audio, args.model, upload_prefix=args.upload_prefix, batch_size=args.batch_size,
                       clips_per_drop=args.clips_per_drop, seed=args.seed, device=args.device, on_error=on_error)
    write_tasks(args.out, tasks)
    if args.drop_file:
        write_drop_file(args.drop_file, {t["data"]["track"]: t["data"]["drops"] for t in tasks if not t["data"]["fallback"]}, prefix=args.upload_prefix)
    print(f"wrote {len(tasks)} task(s) to {args.out}" + (f" ({len(failed)} file(s) failed)" if failed else ""),
          file=sys.stderr)
    return 2 if failed else 0
