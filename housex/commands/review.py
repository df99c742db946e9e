"""``housex review --dataset DIR --model DIR --out DIR``: where label and model disagree most."""

from __future__ import annotations

import sys

HELP = "review of disagreements: static HTML + CSV of the clips whose label the model disputes most"


def add_arguments(p) -> None:
    p.add_argument("--dataset", required=True, help="dataset folder written by `housex build --out DIR`")
    p.add_argument("--model", required=True, help="model folder written by save_pretrained")
    p.add_argument("--out", required=True, help="report folder (index.html, review.csv, audio/)")
    p.add_argument("--split", default="validation", help="split of the clips config to review (default: validation)")
    p.add_argument("--top", type=int, default=50, help="rows in the report (default: 50; 0 = every clip)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default: 16)")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default: CPU)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:
    from housex.review import review

    rows = review(args.dataset, args.model, args.out, split=args.split, top=args.top or None,
                  batch_size=args.batch_size, device=args.device)
    mismatches = sum(r.mismatch for r in rows)
    print(f"wrote {args.out}/index.html and review.csv: {len(rows)} clips ({mismatches} with another top genre)",
          file=sys.stderr)
    return 0
