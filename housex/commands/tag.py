"""``housex tag LIBRARY_DIR --model DIR --out tags.parquet``: genres of every track of a library.

Several processes: ``accelerate launch --multi_gpu --num_processes N -m housex.cli tag LIBRARY_DIR
--model DIR --out tags.parquet``; each process tags its share of the files (``housex.tag``).
"""

from __future__ import annotations

import argparse
import os
import sys

from housex.commands.options import DROP_RULE, non_negative, positive

HELP = "tag a music library: one Parquet row of genres per audio file (resumable, incremental)"


def add_arguments(p) -> None:
    p.epilog = DROP_RULE
    p.add_argument("library", nargs="+", metavar="LIBRARY_DIR", help="folders (walked for audio files) or audio files")
    p.add_argument("--model", required=True, help="model folder written by save_pretrained (e.g. demo-out/model)")
    p.add_argument("--out", required=True, help="Parquet file of the rows (rerun with the same --out to resume / update)")
    p.add_argument("--csv", default=None, help="also write the rows as CSV here")
    p.add_argument("--workers", type=non_negative(int), default=1,
                   help="decoding processes (0: decode in the main process; default: 1)")
    p.add_argument("--batch-size", type=positive(int), default=16, help="clips per forward pass (default: 16)")
    p.add_argument("--clips-per-drop", type=positive(int), default=4, help="clips sampled per drop section (default: 4)")
    p.add_argument("--seed", type=non_negative(int), default=0, help="seed of the clip sampling (default: 0)")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default: CPU)")
    p.add_argument("--flush-every", type=positive(int), default=32,
                   help="tracks per part file written while running (default: 32)")
    p.add_argument("--retry-errors", action="store_true", help="retag unchanged files whose row holds an error")
    p.add_argument("--write-tags", action="store_true",
                   help="put the top genre into each file's GENRE tag and the distribution into a comment (mutagen)")
    p.add_argument("--dry-run", action=argparse.BooleanOptionalAction, default=True,
                   help="with --write-tags: only list what would change (default); --no-dry-run writes the tags")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _launched_processes() -> int:
    """Processes started together by ``accelerate launch`` / torchrun / MPI (the variables accelerate reads)."""
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "WORLD_SIZE"):
        if int(os.environ.get(key, -1)) >= 0:
            return int(os.environ[key])
    return 1


def _process_state(args):
    """accelerate's ``PartialState`` when several processes were launched, else None; with a CUDA
    ``--device`` each process takes its own GPU."""
    if _launched_processes() <= 1:
        return None
    from accelerate import PartialState

    use_gpu = bool(args.device) and str(args.device).startswith("cuda")
    state = PartialState(cpu=not use_gpu)
    if use_gpu:
        args.device = str(state.device)
    return state


def run(args) -> int:
    from housex.tag import tag_library

    state = _process_state(args)
    mode = None if not args.write_tags else ("dry-run" if args.dry_run else "write")
    try:
        summary = tag_library(
            args.library if len(args.library) > 1 else args.library[0], args.model, args.out, csv_path=args.csv,
            workers=args.workers, batch_size=args.batch_size, clips_per_drop=args.clips_per_drop, seed=args.seed,
            device=args.device, flush_every=args.flush_every, retry_errors=args.retry_errors, write_tags_mode=mode,
            progress=not args.no_progress, state=state,
        )
    except KeyboardInterrupt:
        print("interrupted: the rows done so far are in the output; rerun to finish", file=sys.stderr)
        return 130
    if state is not None:
        print(f"process {state.process_index + 1} of {state.num_processes}: tagged {summary.tagged} file(s)",
              file=sys.stderr, flush=True)
    if state is None or state.is_main_process:
        print(summary.format(), file=sys.stderr)
        if mode == "dry-run":
            print(f"{len(summary.tag_changes)} file(s) would change; rerun with --write-tags --no-dry-run to write",
                  file=sys.stderr)
    return 0
