"""``housex table SOURCE...``: the paper's Table 3 from finished runs (grid, training runs, probe, baselines)."""

from __future__ import annotations

from pathlib import Path

HELP = "Table 3 from finished runs: grid folders, training runs, probe JSON, zero-shot / MLLM folders"


def add_arguments(p) -> None:
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="grid folder, run folder (metrics.json), `housex probe --json` file, or baseline --out folder")
    p.add_argument("--out", default="table-out", help="folder for table.md and table.json (default: table-out)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:
    from housex.trainer.table import write_table

    rows, pending = write_table(args.sources, args.out)
    print((Path(args.out) / "table.md").read_text(encoding="utf-8"))
    print(f"{len(rows)} rows, {len(pending)} pending; JSON: {Path(args.out) / 'table.json'}")
    return 0
