"""``housex probe --dataset DIR``: the linear-probe baseline (logistic regression on clip-mean log-mel)."""

from __future__ import annotations

from pathlib import Path

from housex.commands.options import add_bootstrap_arguments, bootstrap_settings, non_negative, positive

HELP = "linear-probe baseline: logistic regression on clip-mean log-mel features of a built clips dataset"


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", required=True, help="dataset folder written by `housex build` (or a Hub id)")
    parser.add_argument("--config", default="clips", help="dataset config (default: clips)")
    parser.add_argument("--n-mels", type=positive(int), default=64, help="mel bands of the features (default 64)")
    parser.add_argument("--C", type=positive(float), default=1.0, help="inverse L2 regularisation of the logistic regression (default 1)")
    parser.add_argument("--seed", type=non_negative(int), default=0, help="seed of the solver (default 0)")
    parser.add_argument("--workers", type=positive(int), default=1, help="processes that decode the clips (default 1; same figures)")
    parser.add_argument("--out", metavar="FOLDER",
                        help="write predictions.parquet and metrics.json here (a row of `housex table`)")
    add_bootstrap_arguments(parser)


def run(args) -> int:
    from housex.trainer.baselines.probe import linear_probe, summary
    from housex.trainer.data import load_clips_dataset

    if Path(args.dataset).exists() and not Path(args.dataset).is_dir():
        raise ValueError(f"{args.dataset}: expected a dataset folder")
    ds = load_clips_dataset(args.dataset, args.config)
    record = linear_probe(ds, n_mels=args.n_mels, C=args.C, seed=args.seed, num_proc=args.workers,
                          source=args.dataset, out=args.out, bootstrap=bootstrap_settings(args))
    print(summary(record))
    return 0
