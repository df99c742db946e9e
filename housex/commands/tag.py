"""``housex tag LIBRARY_DIR --model DIR --out tags.parquet``: genres of every track of a library."""

from __future__ import annotations

import argparse
import sys

from housex.commands.options import DROP_RULE

HELP = "tag a music library: one Parquet row of genres per audio file (resumable, incremental)"


def add_arguments(p) -> None:
    p.epilog = DROP_RULE
    p.add_argument("library", nargs="+", metavar="LIBRARY_DIR", help="folders (walked for audio files) or audio files")
    p.add_argument("--model", required=True, help="model folder written by save_pretrained (e.g. demo-out/model)")
    p.add_argument("--out", required=True, help="Parquet file of the rows (rerun with the same --out to resume / update)")
    p.add_argument("--csv", default=None, help="also write the rows as CSV here")
    p.add_argument("--workers", type=int, default=1, help="decoding processes (0: decode in the main process; default: 1)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default: 16)")
    p.add_argument("--clips-per-drop", type=int, default=4, help="clips sampled per drop section (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clip sampling (default: 0)")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default: CPU)")
    p.add_argument("--flush-every", type=int, default=32, help="tracks per part file written while running (default: 32)")
    p.add_argument("--retry-errors", action="store_true", help="retag unchanged files whose row holds an error")
    p.add_argument("--write-tags", action="store_true",
                   help="put the top genre into each file's GENRE tag and the distribution into a comment (mutagen)")
    p.add_argument("--dry-run", action=argparse.BooleanOptionalAction, default=True,
                   help="with --write-tags: only list what would change (default); --no-dry-run writes the tags")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args, state=None) -> int:
    from housex.tag import tag_library

    mode = None if not args.write_tags else ("dry-run" if args.dry_run else "write")
    summary = tag_library(
        args.library if len(args.library) > 1 else args.library[0], args.model, args.out, csv_path=args.csv,
        workers=args.workers, batch_size=args.batch_size, clips_per_drop=args.clips_per_drop, seed=args.seed,
        device=args.device, flush_every=args.flush_every, retry_errors=args.retry_errors, write_tags_mode=mode,
        progress=not args.no_progress, state=state,
    )
    if state is not None:
        print(f"process {state.process_index + 1} of {state.num_processes}: tagged {summary.tagged} file(s)",
              file=sys.stderr, flush=True)
    if state is None or state.is_main_process:
        print(summary.format(), file=sys.stderr)
        if mode == "dry-run":
            print(f"{len(summary.tag_changes)} file(s) would change; rerun with --write-tags --no-dry-run to write",
                  file=sys.stderr)
    return 0
