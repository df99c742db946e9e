"""The paper's Table 3 as a grid: backbone × {mel, mel+chroma} × {hard, soft} labels.

Each cell is one ``housex.trainer.train.main`` run in ``<out>/<backbone>-<features>-<labels>/``;
a cell whose ``metrics.json`` exists is finished and skipped on a rerun, and a cell with
checkpoints but no ``metrics.json`` resumes from its last checkpoint.  After every cell the grid
rewrites ``<out>/grid.json`` (all runs) and ``<out>/table.md`` (weighted P/R/F1 per cell, shaped
like Table 3: one row per backbone and feature set, hard and soft labels side by side).
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

    @property
    def name(self) -> str:
        return f"{self.backbone}-{self.features.replace('+', '-')}-{self.labels}"

    def arguments(self, run_dir: Path) -> list[str]:
        """Command-line flags that put this cell on top of the base config."""
        return [
            "--backbone", self.backbone,
            "--use_chroma", str(FEATURE_SETS[self.features]).lower(),
            "--label_mode", LABEL_SETS[self.labels],
            "--output_dir", str(run_dir),
        ]


def grid_cells(backbones, features=tuple(FEATURE_SETS), labels=tuple(LABEL_SETS)) -> list[GridCell]:
    for f in features:
        if f not in FEATURE_SETS:
            raise ValueError(f"grid features {f!r}: expected one of {', '.join(FEATURE_SETS)}")
    for lab in labels:
        if lab not in LABEL_SETS:
            raise ValueError(f"grid labels {lab!r}: expected one of {', '.join(LABEL_SETS)}")
    if not backbones:
        raise ValueError("grid: give at least one backbone")
    return [GridCell(b, f, lab) for b in backbones for f in features for lab in labels]


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def format_table(runs: list[dict]) -> str:
    """Markdown table: rows backbone × features, columns hard/soft × weighted P/R/F1; best F1 bold."""
    by_cell = {(r["backbone"], r["features"], r["labels"]): r for r in runs}
    rows = []
    for r in runs:
        if (r["backbone"], r["features"]) not in rows:
            rows.append((r["backbone"], r["features"]))
    label_sets = [lab for lab in LABEL_SETS if any(r["labels"] == lab for r in runs)]
    f1s = [r["metrics"]["f1_weighted"] for r in runs if r.get("metrics", {}).get("f1_weighted") is not None]
    best = max(f1s) if f1s else None
    head = ["Backbone", "Features"] + [f"{lab.capitalize()} {m}" for lab in label_sets for m in ("P", "R", "F1")]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for backbone, features in rows:
        cells = [backbone, features]
        for lab in label_sets:
            m = by_cell.get((backbone, features, lab), {}).get("metrics") or {}
            for key in SCORE_KEYS:
                v = m.get(key)
                text = "–" if v is None else f"{v:.3f}"
                if key == "f1_weighted" and v is not None and v == best:
                    text = f"**{text}**"
                cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_outputs(out_dir: Path, runs: list[dict], meta: dict) -> None:
    (out_dir / "grid.json").write_text(json.dumps({**meta, "runs": runs}, indent=2) + "\n", encoding="utf-8")
    table = format_table(runs)
    header = (
        "# HouseX Table-3 grid\n\n"
        f"Weighted precision / recall / F1 on the validation split of `{meta.get('dataset', '?')}` "
        "(targets sharpened, ties to the last genre). Hard = sharpened training labels, soft = soft labels.\n\n"
    )
    (out_dir / "table.md").write_text(header + table, encoding="utf-8")


def run_grid(
    out_dir: str | os.PathLike,
    *,
    backbones,
    features=tuple(FEATURE_SETS),
    labels=tuple(LABEL_SETS),
    config: str | None = None,
    train_args: list[str] | None = None,
    force: bool = False,
) -> list[dict]:
    """Run (or resume) every cell; returns one record per cell (also in ``out_dir/grid.json``).

    ``config``: base YAML/JSON of trainer/run.py arguments (dataset, model sizes, optimiser);
    ``train_args``: extra ``--name value`` flags for every cell (e.g. ``--dataset_name DIR``).
    Each record: backbone, features, labels, output_dir, status ("trained", "resumed" or
    "skipped" when already finished), metrics (the scalars of its metrics.json).
    """
    from transformers.trainer_utils import get_last_checkpoint

    from housex.trainer.arguments import parse_args
    from housex.trainer.train import main

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cells = grid_cells(backbones, features, labels)
    base = ([config] if config else []) + list(train_args or [])
    runs: list[dict] = []
    meta = {"config": config, "train_args": list(train_args or []), "dataset": None}
    for i, cell in enumerate(cells, 1):
        run_dir = out_dir / cell.name
        record = {"backbone": cell.backbone, "features": cell.features, "labels": cell.labels,
                  "output_dir": str(run_dir)}
        metrics_file = run_dir / "metrics.json"
        if metrics_file.is_file() and not force:
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            record["status"] = "skipped"
            logger.info("[%d/%d] %s: finished earlier, skipped", i, len(cells), cell.name)
        else:
            argv = base + cell.arguments(run_dir)
            last = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() and not force else None
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
