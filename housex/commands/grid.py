"""``housex grid``: the paper's Table 3 (backbone × mel/mel+chroma × hard/soft) on a dataset."""

from __future__ import annotations

import shlex
from pathlib import Path

from housex.commands.options import bounded, non_negative
from housex.trainer import CONFIGS_DIR

HELP = "run the Table-3 grid (backbone x {mel, mel+chroma} x {hard, soft}); writes table.md and grid.json, resumable"

DEFAULT_CONFIG = CONFIGS_DIR / "cpu.yaml"


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="dataset folder or Hub id with the 'clips' config")
    src.add_argument("--release-dirs", nargs="+", metavar="DIR", help="release folder(s) to build the dataset from")
    p.add_argument("--out", default="grid-out", help="grid folder: one run folder per cell + table.md + grid.json")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="base training config (default: the shipped cpu.yaml)")
    p.add_argument("--backbones", nargs="+", default=["resnet18"], help="torchvision backbones (default: resnet18)")
    p.add_argument("--features", nargs="+", default=["mel", "mel+chroma"], choices=["mel", "mel+chroma"])
    p.add_argument("--labels", nargs="+", default=["hard", "soft"], choices=["hard", "soft"])
    p.add_argument("--train-args", default="", help="extra housex.trainer.run flags for every cell, e.g. '--num_train_epochs 1'")
    p.add_argument("--seeds", nargs="+", type=non_negative(int), metavar="SEED",
                   help="train every cell once per seed (the table: seed-averaged probabilities, mean ± sd)")
    p.add_argument("--folds", type=bounded(int, low=2), metavar="K",
                   help="run every cell on each of the K folds of a dataset built with `housex build --folds K` "
                        "(the table pools them: every track scored once)")
    p.add_argument("--force", action="store_true", help="rerun cells that already finished")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:
    from housex.trainer.grid import run_grid

    extra = shlex.split(args.train_args)
    if args.dataset:
        extra = ["--dataset_name", args.dataset, *extra]
    else:
        extra = ["--release_dirs", *args.release_dirs, *extra]
    run_grid(args.out, backbones=args.backbones, features=args.features, labels=args.labels,
             config=args.config, train_args=extra, force=args.force, seeds=args.seeds, folds=args.folds)
    out = Path(args.out)
    print((out / "table.md").read_text(encoding="utf-8"))
    print(f"all runs: {out / 'grid.json'}")
    return 0
