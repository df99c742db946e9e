"""``housex plot confusion|embeddings|spectrograms``: PNG figures for a model, a dataset, a release."""

from __future__ import annotations

import json
from pathlib import Path

from housex.commands.options import non_negative, positive

HELP = "plots: confusion matrix (from metrics.json), embedding scatter (PCA/t-SNE/UMAP), per-genre spectrograms"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    c = sub.add_parser("confusion", help="confusion matrix from an evaluation's metrics.json")
    c.add_argument("--metrics", required=True, help="metrics JSON with a confusion_matrix (or eval_confusion_matrix) entry")
    c.add_argument("--out", default=None, help="PNG path (default: confusion.png next to the metrics file)")
    c.add_argument("--counts", action="store_true", help="show raw counts instead of row-normalised fractions")

    e = sub.add_parser("embeddings", help="pooled clip embeddings of a model on a dataset, coloured by primary genre")
    e.add_argument("--model", required=True, help="model folder written by save_pretrained")
    e.add_argument("--dataset", required=True, help="exported dataset folder (loads with load_dataset(DIR, 'clips'))")
    e.add_argument("--split", default="validation", help="dataset split (default: validation)")
    e.add_argument("--max-clips", type=positive(int), default=400, help="at most this many clips, a seeded random subset (default: 400)")
    e.add_argument("--methods", nargs="+", choices=("pca", "tsne", "umap"), default=None,
                   help="projections (default: pca, tsne, and umap when umap-learn is installed)")
    e.add_argument("--batch-size", type=positive(int), default=16)
    e.add_argument("--seed", type=non_negative(int), default=0)
    e.add_argument("--out", default="embeddings.png", help="PNG path (default: embeddings.png)")

    s = sub.add_parser("spectrograms", help="one mel spectrogram of a drop clip per genre, from a release folder")
    s.add_argument("--data-dir", required=True, help="release folder: audio files + Label-Studio export")
    s.add_argument("--out", default="spectrograms.png", help="PNG path (default: spectrograms.png)")
    for q in (c, e, s):
        q.add_argument("--debug", action="store_true", help="show tracebacks")


def read_confusion(path: str | Path) -> list[list[float]]:
    """The confusion matrix of a metrics JSON (``confusion_matrix``, any ``eval_``/``test_`` prefix)."""
    path = Path(path)
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    for key in ("confusion_matrix", "eval_confusion_matrix", "test_confusion_matrix"):
        if isinstance(metrics, dict) and key in metrics:
            return metrics[key]
    raise ValueError(f"{path}: no confusion_matrix entry (keys: {', '.join(sorted(metrics)) if isinstance(metrics, dict) else '-'})")


def run(args) -> int:
    from housex import plots
    from housex.dataset_script.paths import check_output_path

    inputs = {"confusion": ["metrics"], "embeddings": ["model", "dataset"], "spectrograms": ["data_dir"]}[args.what]
    if args.what == "confusion":
        args.out = args.out or str(Path(args.metrics).with_name("confusion.png"))
    # never over an input file, nor inside an input folder (a model or dataset folder stays as written)
    check_output_path(args.out, [getattr(args, name) for name in inputs], option="--out")
    if args.what == "confusion":
        out = args.out
        path = plots.plot_confusion(read_confusion(args.metrics), out, normalize=not args.counts,
                                    title=f"Confusion matrix ({Path(args.metrics).parent.name or 'evaluation'})")
    elif args.what == "embeddings":
        from housex.inference import dataset_embeddings

        emb, ids, labels = dataset_embeddings(args.model, args.dataset, split=args.split, max_clips=args.max_clips,
                                              batch_size=args.batch_size, seed=args.seed)
        path = plots.plot_embeddings(emb, ids, args.out, labels=labels, methods=args.methods, seed=args.seed,
                                     title=f"Pooled embeddings of {len(ids)} {args.split} clips by primary genre")
    else:
        path = plots.spectrogram_previews(args.data_dir, args.out)
    print(f"wrote {path}")
    return 0
