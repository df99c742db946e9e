"""``housex compare RUN_A RUN_B``: every figure's difference with its paired interval and p-value."""

from __future__ import annotations

import json
from pathlib import Path

from housex.commands.options import add_bootstrap_arguments, bootstrap_settings

HELP = "compare two runs on the same clips: B - A for every figure, paired track-bootstrap interval, p-value"


def add_arguments(p) -> None:
    p.add_argument("run_a", metavar="RUN_A", help="run folder (or predictions.parquet) A")
    p.add_argument("run_b", metavar="RUN_B", help="run folder (or predictions.parquet) B")
    p.add_argument("--json", metavar="FILE", help="also write the comparison to this JSON file")
    add_bootstrap_arguments(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:
    from housex.trainer.table import compare, format_comparison

    result = compare(args.run_a, args.run_b, bootstrap_settings(args))
    print(format_comparison(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0
