"""``housex table SOURCE...``: the paper's Table 3 from finished runs, every figure with its interval."""

from __future__ import annotations

from pathlib import Path

from housex.commands.options import add_bootstrap_arguments, bootstrap_settings

HELP = "Table 3 from finished runs (grid folders, run or baseline folders, predictions.parquet files), with intervals"


def add_arguments(p) -> None:
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="grid folder, or a folder (or file) with predictions.parquet: a training run, housex probe "
                        "--out, housex baseline --out, or your own model's")
    p.add_argument("--out", default="table-out", help="folder for table.md and table.json (default: table-out)")
    p.add_argument("--no-intervals", action="store_true",
                   help="the paper's plain layout: figures without their intervals (still in table.json)")
    p.add_argument("--allow-mixed", action="store_true",
                   help="rows that scored different clips (datasets, splits) go into separate tables instead of "
                        "being refused")
    add_bootstrap_arguments(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:
    from housex.trainer.table import write_table

    groups, pending = write_table(args.sources, args.out, bootstrap=bootstrap_settings(args),
                                  intervals=not args.no_intervals, allow_mixed=args.allow_mixed)
    print((Path(args.out) / "table.md").read_text(encoding="utf-8"))
    rows = sum(len(g["rows"]) for g in groups)
    print(f"{rows} rows, {len(pending)} pending; JSON: {Path(args.out) / 'table.json'}")
    return 0
