"""The paper's Table 3 as a grid: backbone × {mel, mel+chroma} × {hard, soft} labels, over seeds and folds.

Each cell is one ``housex.trainer.train.main`` run in ``<out>/<backbone>-<features>-<labels>/``
(``-seed<S>`` / ``-fold<k>`` appended when the grid is given seeds, ``--seeds``, or runs the folds of a
dataset built with ``--folds K``); a run whose ``metrics.json`` and ``predictions.parquet`` exist is
finished and skipped on a rerun, and a run with checkpoints but no ``metrics.json`` resumes from its
last checkpoint.  After every run the grid rewrites ``<out>/grid.json`` (all runs) and
``<out>/table.md`` (weighted P/R/F1 with intervals per cell, shaped like Table 3: one row per backbone
and feature set, hard and soft labels side by side; a cell's folds pooled and its seeds averaged as
in ``housex table``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("housex.trainer.grid")

FEATURE_SETS = {"mel": False, "mel+chroma": True}  # name -> use_chroma
LABEL_SETS = {"hard": "sharpen", "soft": "soft"}  # name -> label_mode
SCORE_KEYS = ("precision_weighted", "recall_weighted", "f1_weighted")


@dataclass(frozen=True)
class GridCell:
    backbone: str
    features: str
    labels: str
    seed: int | None = None  # set when the grid is given seeds
    fold: int | None = None  # set when the grid runs the folds of a dataset built with --folds

    @property
    def name(self) -> str:
        name = f"{self.backbone}-{self.features.replace('+', '-')}-{self.labels}"
        return name + ("" if self.seed is None else f"-seed{self.seed}") + ("" if self.fold is None else f"-fold{self.fold}")

    def arguments(self, run_dir: Path) -> list[str]:
        """Command-line flags that put this cell on top of the base config."""
        return [
            "--backbone", self.backbone,
            "--use_chroma", str(FEATURE_SETS[self.features]).lower(),
            "--label_mode", LABEL_SETS[self.labels],
            "--output_dir", str(run_dir),
            *([] if self.seed is None else ["--seed", str(self.seed)]),
            *([] if self.fold is None else ["--fold", str(self.fold)]),
        ]


def grid_cells(backbones, features=tuple(FEATURE_SETS), labels=tuple(LABEL_SETS), seeds=None,
               folds: int | None = None) -> list[GridCell]:
    """Every run of the grid: cell × seed (``seeds``; none: the config's seed) × fold (0..folds-1)."""
    for f in features:
        if f not in FEATURE_SETS:
            raise ValueError(f"grid features {f!r}: expected one of {', '.join(FEATURE_SETS)}")
    for lab in labels:
        if lab not in LABEL_SETS:
            raise ValueError(f"grid labels {lab!r}: expected one of {', '.join(LABEL_SETS)}")
    if not backbones:
        raise ValueError("grid: give at least one backbone")
    seeds = list(seeds or [])
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"grid seeds {seeds}: a seed is given twice")
    if folds is not None and folds < 2:
        raise ValueError(f"grid folds must be >= 2 (the dataset's --folds), got {folds}")
    seed_list = seeds or [None]
    fold_list = list(range(folds)) if folds else [None]
    return [GridCell(b, f, lab, seed, fold) for b in backbones for f in features for lab in labels
            for seed in seed_list for fold in fold_list]


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def format_table(out_dir: Path, runs: list[dict]) -> str:
    """Markdown table: rows backbone × features, columns hard/soft × weighted P/R/F1 with intervals,
    from the cells whose runs have all finished (folds pooled, seeds averaged); best F1 bold."""
    from .statistics import format_figure
    from .table import OPTIMISTIC_MARK, OPTIMISTIC_NOTE, chosen_on_scored_split, grid_rows, score_table

    rows, _ = grid_rows(out_dir)
    scored = {}
    for group in score_table(rows, allow_mixed=True) if rows else []:
        for record in group["rows"]:
            scored[(record["model"], record["features"], record["labels"])] = record
    table_rows = list(dict.fromkeys((r["backbone"], r["features"]) for r in runs))
    label_sets = [lab for lab in LABEL_SETS if any(r["labels"] == lab for r in runs)]
    f1s = [r["f1_weighted"] for r in scored.values() if r.get("f1_weighted") is not None]
    best = max(f1s) if f1s else None
    head = ["Backbone", "Features"] + [f"{lab.capitalize()} {m}" for lab in label_sets for m in ("P", "R", "F1")]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    optimistic = False
    for backbone, features in table_rows:
        marked = any(chosen_on_scored_split(scored.get((backbone, features, lab), {})) for lab in label_sets)
        optimistic |= marked
        cells = [backbone + (OPTIMISTIC_MARK if marked else ""), features]
        for lab in label_sets:
            record = scored.get((backbone, features, lab), {})
            for key in SCORE_KEYS:
                v = record.get(key)
                text = "–" if v is None else format_figure(v, record["intervals"].get(key))
                if key == "f1_weighted" and v is not None and v == best:
                    number, _, rest = text.partition(" ")
                    text = f"**{number}** {rest}"
                cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    if optimistic:
        lines += ["", OPTIMISTIC_NOTE]
    return "\n".join(lines) + "\n"


def _write_outputs(out_dir: Path, runs: list[dict], meta: dict) -> None:
    (out_dir / "grid.json").write_text(json.dumps({**meta, "runs": runs}, indent=2) + "\n", encoding="utf-8")
    table = format_table(out_dir, runs)
    over = []
    if meta.get("seeds") and len(meta["seeds"]) > 1:
        over.append(f"seeds {', '.join(map(str, meta['seeds']))} averaged (the mean of their probabilities)")
    if meta.get("folds"):
        over.append(f"{meta['folds']} folds pooled (every track scored once)")
    header = (
        "# HouseX Table-3 grid\n\n"
        f"Weighted precision / recall / F1 on the validation clips of `{meta.get('dataset', '?')}` "
        "(targets sharpened, ties to the last genre), each with its 95% interval (cluster bootstrap over "
        "tracks)" + (f"; {'; '.join(over)}" if over else "") + ". Hard = sharpened training labels, soft = soft "
        "labels. `housex table` on this folder adds the marks and every other figure.\n\n"
    )
    (out_dir / "table.md").write_text(header + table, encoding="utf-8")


def _check_folds(args, folds: int) -> None:
    """Refuse ``--folds K`` before any training unless the dataset was built with ``--folds K``."""
    from .data import load_clip_datasets, num_folds

    _, data_args, training_args = args
    raw, source = load_clip_datasets(data_args, training_args)
    found = num_folds(raw, data_args)
    if found != folds:
        raise ValueError(f"grid --folds {folds}: the dataset {source!r} has {found or 'no'} folds "
                         f"(build it with housex build --folds {folds})")


def run_grid(
    out_dir: str | os.PathLike,
    *,
    backbones,
    features=tuple(FEATURE_SETS),
    labels=tuple(LABEL_SETS),
    config: str | None = None,
    train_args: list[str] | None = None,
    force: bool = False,
    seeds=None,
    folds: int | None = None,
) -> list[dict]:
    """Run (or resume) every run of the grid; returns one record per run (also in ``out_dir/grid.json``).

    ``config``: base YAML/JSON of trainer/run.py arguments (dataset, model sizes, optimiser);
    ``train_args``: extra ``--name value`` flags for every run (e.g. ``--dataset_name DIR``);
    ``seeds``: train every cell once per seed; ``folds``: the dataset's fold count (built with
    ``housex build --folds K``): every cell once per fold, fold k as its validation set.
    Each record: backbone, features, labels, seed and fold (when set), output_dir, status ("trained",
    "resumed" or "skipped" when already finished), metrics (the scalars of its metrics.json).
    """
    from housex.trainer.arguments import parse_args
    from housex.trainer.train import main

    from .checkpoints import last_complete_checkpoint
    from .predictions import PREDICTIONS_FILE

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cells = grid_cells(backbones, features, labels, seeds, folds)
    base = ([config] if config else []) + list(train_args or [])
    runs: list[dict] = []
    meta = {"config": config, "train_args": list(train_args or []), "dataset": None, "seeds": list(seeds or []),
            "folds": folds}
    if folds:
        _check_folds(parse_args(base + cells[0].arguments(out_dir / cells[0].name)), folds)
    for i, cell in enumerate(cells, 1):
        run_dir = out_dir / cell.name
        record = {"backbone": cell.backbone, "features": cell.features, "labels": cell.labels,
                  **({} if cell.seed is None else {"seed": cell.seed}),
                  **({} if cell.fold is None else {"fold": cell.fold}), "output_dir": str(run_dir)}
        metrics_file = run_dir / "metrics.json"
        if metrics_file.is_file() and (run_dir / PREDICTIONS_FILE).is_file() and not force:
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            record["status"] = "skipped"
            logger.info("[%d/%d] %s: finished earlier, skipped", i, len(cells), cell.name)
        else:
            argv = base + cell.arguments(run_dir)
            last = last_complete_checkpoint(run_dir) if run_dir.is_dir() and not force else None
            if last:
                argv += ["--resume_from_checkpoint", last]
            logger.info("[%d/%d] %s: %s", i, len(cells), cell.name, "resuming from " + last if last else "training")
            model_args, data_args, training_args = parse_args(argv)
            metrics = main(model_args, data_args, training_args)
            record["status"] = "resumed" if last else "trained"
        meta["dataset"] = meta["dataset"] or metrics.get("dataset")
        record["metrics"] = _scalars(metrics)
        runs.append(record)
        _write_outputs(out_dir, runs, meta)
    return runs
