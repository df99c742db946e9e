"""Table 3 of the paper from finished runs, and the paired comparison of two runs.

Every row is a ``predictions.parquet`` (:mod:`housex.trainer.predictions`); a source is

- a folder holding ``predictions.parquet`` (a training run, a peer model, ``housex probe --out``,
  ``housex baseline ... --out``, an encoder probe, or anyone's own model; ``row.json`` beside the
  file names the row), or the file itself;
- a ``housex grid`` folder (``grid.json``): one row per cell, its folds pooled (every track scored
  once) and its seeds averaged (the mean of the seeds' probabilities; mean ± sd over seeds beside it).

A folder with neither file yet is listed as pending (rerun the table once it has finished).

Every figure comes with its interval from one cluster bootstrap over the tracks shared by all rows
(:mod:`housex.trainer.statistics`); per figure the best row is marked, and every row not
significantly worse than it (paired bootstrap, two-sided, Holm over the rows compared); ``table.json``
also holds the unadjusted paired p-value of every pair of rows for every figure.  Rows that
scored different clips (another dataset, split or subset; told apart by the clips' fingerprint) are
refused, or with ``allow_mixed`` set out in one table per set of clips, never mixed unmarked.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .predictions import (
    PREDICTIONS_FILE,
    Predictions,
    average_predictions,
    clip_terms,
    metrics_from_predictions,
    pool_predictions,
    read_predictions,
    track_terms,
)
from .statistics import LOWER_IS_BETTER, Bootstrap, TrackBootstrap, best_and_ties, format_figure, interval, level_text
from .statistics import paired_p_value, pairwise_p_values

KINDS = ("HouseX", "peer model", "linear probe", "encoder probe", "zero-shot", "MLLM")  # other kinds come last
TRACK_PREFIX = "track_"  # table key of a track-level figure: track_f1_weighted
COLUMNS = (  # (header, row key, cell: text / figure / count)
    ("Model", "model", "text"),
    ("Kind", "kind", "text"),
    ("Features", "features", "text"),
    ("Labels", "labels", "text"),
    ("Acc", "accuracy", "figure"),
    ("P", "precision_weighted", "figure"),
    ("R", "recall_weighted", "figure"),
    ("F1", "f1_weighted", "figure"),
    ("Top-2", "top2_accuracy", "figure"),
    ("Track F1", "track_f1_weighted", "figure"),
    ("Unparsed", "num_unparsed", "count"),
    ("Intersect", "intersect_rate", "figure"),
)
FIGURES = tuple(key for _, key, cell in COLUMNS if cell == "figure")
NA = "—"
#: The mark of a row whose checkpoint was chosen on the split it is scored on (its row info's
#: ``checkpoint_selection`` is "validation": the paper's protocol), and the note that explains it.
OPTIMISTIC_MARK = "†"
OPTIMISTIC_NOTE = (f"{OPTIMISTIC_MARK} checkpoint chosen on the scored split: optimistic (the paper's protocol; "
                   "`--checkpoint_selection holdout` chooses on held-out training tracks).")


def chosen_on_scored_split(info: dict) -> bool:
    """True for a row whose checkpoint was chosen on the clips it is scored on."""
    return info.get("checkpoint_selection") == "validation"


@dataclass
class Row:
    """One row of the table: its description, the predictions it is scored on, the runs behind it."""

    info: dict
    predictions: Predictions
    source: str
    runs: list[Predictions] = field(default_factory=list)  # one per seed when seeds were averaged

    @property
    def kind(self) -> str:
        return self.info.get("kind") or "other"


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def _row(predictions: Predictions, source: Path) -> Row:
    info = {"model": source.parent.name if source.name == PREDICTIONS_FILE else source.stem, "kind": "other",
            **predictions.row_info}
    return Row(info, predictions, str(source.parent if source.name == PREDICTIONS_FILE else source))


def grid_rows(folder: str | os.PathLike) -> tuple[list[Row], list[str]]:
    """``(rows, pending)`` of a grid folder: per cell, folds pooled and seeds averaged; a cell whose runs
    (every seed × fold the grid was given) have not all finished is pending."""
    folder = Path(folder)
    grid = _read_json(folder / "grid.json")
    seeds = grid.get("seeds") or [None]
    folds = list(range(grid["folds"])) if grid.get("folds") else [None]
    cells: dict[tuple, dict] = {}
    for run in grid.get("runs", []):
        cell = cells.setdefault((run["backbone"], run["features"], run["labels"]), {})
        cell[(run.get("seed"), run.get("fold"))] = Path(run["output_dir"]) / PREDICTIONS_FILE
    rows, pending = [], []
    for (backbone, features, labels), paths in cells.items():
        done = {key: path for key, path in paths.items() if path.is_file()}
        if len(done) < len(seeds) * len(folds):
            pending.append(f"{folder} cell {backbone}-{features}-{labels} ({len(done)} of "
                           f"{len(seeds) * len(folds)} runs finished)")
            continue
        runs = []
        for seed in seeds:  # each seed's folds pooled: every clip of the dataset once
            parts = [read_predictions(done[(seed, fold)]) for fold in folds]
            runs.append(pool_predictions(parts) if len(parts) > 1 else parts[0])
        info = {**runs[0].row_info, "kind": "HouseX", "model": backbone, "features": features, "labels": labels}
        for key in ("seed", "fold", "num_folds", "selection"):  # one run's, not the pooled row's
            info.pop(key, None)
        if seeds != [None]:
            info["seeds"] = seeds
        if folds != [None]:
            info["folds"] = len(folds)
        combined = average_predictions(runs, info) if len(runs) > 1 else replace(runs[0], row_info=info)
        rows.append(Row(info, combined, str(folder), runs if len(runs) > 1 else []))
    return rows, pending


def rows_of(source: str | os.PathLike) -> tuple[list[Row], list[str]]:
    """``(rows, pending)`` of one source (see the module docstring); one-line errors for anything else."""
    path = Path(source)
    if path.is_file():
        if path.suffix.lower() == ".parquet":
            return [_row(read_predictions(path), path)], []
        raise ValueError(f"{path}: not a source of the table: give a run folder (with {PREDICTIONS_FILE}), a "
                         f"{PREDICTIONS_FILE} file or a grid folder (a probe is written by housex probe --out FOLDER)")
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder or predictions file")
    if (path / "grid.json").is_file():
        return grid_rows(path)
    if (path / PREDICTIONS_FILE).is_file():
        return [_row(read_predictions(path), path / PREDICTIONS_FILE)], []
    if (path / "metrics.json").is_file():
        raise ValueError(f"{path}: metrics.json but no {PREDICTIONS_FILE}: written by an older version, rerun it "
                         "(rows are scored from their predictions)")
    return [], [str(path)]


def collect(sources) -> tuple[list[Row], list[str]]:
    rows, pending = [], []
    for source in sources:
        r, p = rows_of(source)
        rows += r
        pending += p
    rows.sort(key=lambda r: KINDS.index(r.kind) if r.kind in KINDS else len(KINDS))  # stable within a kind
    return rows, pending


# --------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------


def row_samples(predictions: Predictions, resampler: TrackBootstrap) -> dict[str, np.ndarray]:
    """Every figure of a row on every resample (track-level ones as ``track_<name>``)."""
    samples = resampler.samples(clip_terms(predictions), predictions.track_ids)
    terms, tracks = track_terms(predictions)
    samples.update({TRACK_PREFIX + k: v for k, v in resampler.samples(terms, tracks).items()})
    return samples


def row_points(predictions: Predictions) -> dict:
    """The metric module's figures of a row (track-level ones as ``track_<name>``)."""
    metrics = metrics_from_predictions(predictions, bootstrap=None)
    points = {k: v for k, v in metrics.items() if k != "track_level"}
    points.update({TRACK_PREFIX + k: v for k, v in metrics["track_level"].items()})
    return points


def _clip_set_key(row: Row) -> str:
    return row.predictions.fingerprint()


def _describe_set(rows: list[Row]) -> dict:
    p = rows[0].predictions
    datasets_ = sorted({str(r.info.get("dataset") or "?") for r in rows})
    splits = sorted({str(r.info.get("split") or "?") for r in rows})
    return {"dataset": ", ".join(datasets_), "split": ", ".join(splits), "num_clips": len(p),
            "num_tracks": p.num_tracks, "clips_fingerprint": p.fingerprint()}


def _mixed_message(groups: list[list[Row]]) -> str:
    parts = []
    for rows in groups:
        d = _describe_set(rows)
        parts.append(f"{d['dataset']} {d['split']} ({d['num_clips']} clips, fingerprint {d['clips_fingerprint']}): "
                     f"{', '.join(r.info.get('model', '?') for r in rows)}")
    return (f"the rows score {len(groups)} different sets of clips, which one table cannot compare: "
            + "; ".join(parts) + ". Give --allow-mixed for one table per set of clips")


def score_rows(rows: list[Row], bootstrap: Bootstrap = Bootstrap()) -> dict:
    """Figures, intervals, marks and p-values of rows that scored the same clips (one shared set of
    resamples).  Returns the ``table.json`` group: the clip set's description and one record per row."""
    resampler = TrackBootstrap(rows[0].predictions.track_ids, bootstrap)
    points = [row_points(r.predictions) for r in rows]
    samples = [row_samples(r.predictions, resampler) for r in rows]
    records = []
    for row, point, sample in zip(rows, points, samples):
        record = {k: row.info.get(k) for k in ("kind", "model", "features", "labels")}
        record.update({k: v for k, v in row.info.items() if k not in record})
        record["source"] = row.source
        record.update(num_clips=len(row.predictions), num_tracks=row.predictions.num_tracks,
                      clips_fingerprint=row.predictions.fingerprint())
        record.update({key: point.get(key) for key in FIGURES})
        record["num_unparsed"] = point.get("num_unparsed")
        record["intervals"] = {key: interval(sample[key], bootstrap.level) for key in FIGURES if key in sample}
        record["marks"], record["p_values"] = {}, {}
        if row.runs:
            per_seed = [row_points(run) for run in row.runs]
            record["over_seeds"] = {key: {"mean": float(np.mean([s[key] for s in per_seed])),
                                          "sd": float(np.std([s[key] for s in per_seed], ddof=1))}
                                    for key in FIGURES if point.get(key) is not None}
        records.append(record)
    pairwise = {}
    for key in FIGURES:
        values = [r.get(key) for r in records]
        best, tied, p_values = best_and_ties(values, [s.get(key) for s in samples],
                                             lower_is_better=key.removeprefix(TRACK_PREFIX) in LOWER_IS_BETTER,
                                             level=bootstrap.level)
        for i, record in enumerate(records):
            if values[i] is None:
                continue
            record["marks"][key] = "best" if i == best else ("not worse" if tied[i] else None)
            record["p_values"][key] = p_values[i]
        present = [i for i, v in enumerate(values) if v is not None]
        if len(present) > 1:
            matrix = pairwise_p_values([samples[i][key] for i in present])
            pairwise[key] = {"rows": present, "p_values": np.round(matrix, 6).tolist()}
    return {**_describe_set(rows), "bootstrap": bootstrap.describe(), "rows": records, "pairwise": pairwise}


def score_table(rows: list[Row], bootstrap: Bootstrap = Bootstrap(), allow_mixed: bool = False) -> list[dict]:
    """Rows grouped by the clips they scored (in order of first appearance), each group scored."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(_clip_set_key(row), []).append(row)
    if len(groups) > 1 and not allow_mixed:
        raise ValueError(_mixed_message(list(groups.values())))
    return [score_rows(group, bootstrap) for group in groups.values()]


# --------------------------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------------------------


def _cell(record: dict, key: str, cell: str, intervals: bool) -> str:
    value = record.get(key)
    if cell == "text":
        text = NA if value is None else str(value)
        return text + OPTIMISTIC_MARK if key == "model" and chosen_on_scored_split(record) else text
    if value is None:
        return NA
    if cell == "count":
        return f"{value:d}"
    text = format_figure(value, record["intervals"].get(key) if intervals else None)
    mark = record["marks"].get(key)
    number, _, rest = text.partition(" ")
    if mark == "best":
        number = f"**{number}**"
    elif mark == "not worse":
        number = f"*{number}*"
    return f"{number} {rest}".rstrip()


def format_group(group: dict, intervals: bool = True) -> str:
    """One markdown table for one set of clips."""
    rows = group["rows"]
    seeds = any("over_seeds" in r for r in rows)
    head = [h for h, _, _ in COLUMNS] + (["F1 over seeds"] if seeds else [])
    lines = [f"Dataset `{group['dataset']}`, split `{group['split']}`: {group['num_clips']} clips of "
             f"{group['num_tracks']} tracks (clips fingerprint `{group['clips_fingerprint']}`).", "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join("---" if cell == "text" else "---:" for _, _, cell in COLUMNS) + ("|---:" if seeds else "")
             + "|"]
    for r in rows:
        cells = [_cell(r, key, cell, intervals) for _, key, cell in COLUMNS]
        if seeds:
            s = r.get("over_seeds", {}).get("f1_weighted")
            cells.append(f"{s['mean']:.3f} ± {s['sd']:.3f} ({len(r['seeds'])})" if s else NA)
        lines.append("| " + " | ".join(cells) + " |")
    if any(chosen_on_scored_split(r) for r in rows):
        lines += ["", OPTIMISTIC_NOTE]
    return "\n".join(lines) + "\n"


def legend(bootstrap: Bootstrap, intervals: bool = True) -> str:
    alpha = 1 - bootstrap.level
    shown = (f"Each cell: the figure [{level_text(bootstrap.level)} interval]. " if intervals else "")
    return (f"{shown}Intervals: cluster bootstrap over the validation tracks ({bootstrap.resamples} resamples, seed "
            f"{bootstrap.seed}; every clip of a drawn track comes along). Per column, **bold** is the best row and "
            f"*italic* a row not significantly worse than it (paired bootstrap on the same resamples, two-sided, "
            f"Holm-corrected over the rows compared, α = {alpha:.3g}). Track F1: the mean of a track's clip "
            "probabilities against the track's soft label.\n")


def write_table(sources, out_dir: str | os.PathLike, *, bootstrap: Bootstrap = Bootstrap(), intervals: bool = True,
                allow_mixed: bool = False) -> tuple[list[dict], list[str]]:
    """Write ``out_dir/table.md`` and ``out_dir/table.json``; returns ``(groups, pending)``."""
    rows, pending = collect(sources)
    groups = score_table(rows, bootstrap, allow_mixed) if rows else []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = ("# HouseX Table 3\n\nWeighted precision / recall / F1 and accuracy on the validation clips "
              "(targets sharpened, ties to the last genre; the same metric module for every row). "
              "MLLM: unparsed answers count as wrong; intersect = share of clips whose answer has a non-zero "
              "weight in the soft label.\n\n")
    body = "\n".join(format_group(g, intervals) for g in groups)
    note = f"\nPending (not finished yet): {', '.join(pending)}\n" if pending else ""
    (out / "table.md").write_text(header + body + ("\n" + legend(bootstrap, intervals) if groups else "") + note,
                                  encoding="utf-8")
    payload = {"columns": [key for _, key, _ in COLUMNS], "bootstrap": bootstrap.describe(), "groups": groups,
               "rows": [r for g in groups for r in g["rows"]], "pending": pending}
    (out / "table.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return groups, pending


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------


def single_row(source: str | os.PathLike) -> Row:
    rows, pending = rows_of(source)
    if pending:
        raise ValueError(f"{source}: not finished yet (no {PREDICTIONS_FILE})")
    if len(rows) != 1:
        raise ValueError(f"{source}: holds {len(rows)} rows; compare two runs (a grid's cell folder, not the grid)")
    return rows[0]


def compare(source_a, source_b, bootstrap: Bootstrap = Bootstrap()) -> dict:
    """B − A for every figure on the same resampled tracks: difference, its interval, two-sided paired
    bootstrap p-value.  Runs that scored different clips are refused with one line."""
    a, b = single_row(source_a), single_row(source_b)
    ids_a, ids_b = set(a.predictions.clip_ids), set(b.predictions.clip_ids)
    if ids_a != ids_b:
        raise ValueError(f"{source_a} and {source_b} scored different clips: {len(ids_a - ids_b)} of A's "
                         f"{len(ids_a)} clips are missing from B, {len(ids_b - ids_a)} of B's {len(ids_b)} from A")
    pa, pb = a.predictions, b.predictions.in_order(a.predictions.clip_ids)
    if not np.array_equal(pa.track_ids, pb.track_ids) or not np.allclose(pa.soft_labels / pa.soft_labels.sum(1, keepdims=True),
                                                                         pb.soft_labels / pb.soft_labels.sum(1, keepdims=True)):
        raise ValueError(f"{source_a} and {source_b}: the same clip ids with other tracks or labels (another dataset)")
    resampler = TrackBootstrap(pa.track_ids, bootstrap)
    points_a, points_b = row_points(pa), row_points(pb)
    samples_a, samples_b = row_samples(pa, resampler), row_samples(pb, resampler)
    figures = {}
    for key in samples_a:
        if key not in samples_b:
            continue
        d = samples_b[key] - samples_a[key]
        figures[key] = {"a": points_a[key], "b": points_b[key], "difference": points_b[key] - points_a[key],
                        "interval": interval(d, bootstrap.level), "p_value": float(paired_p_value(d)),
                        "lower_is_better": key.removeprefix(TRACK_PREFIX) in LOWER_IS_BETTER}
    return {"a": {"source": str(source_a), **{k: a.info.get(k) for k in ("kind", "model")}},
            "b": {"source": str(source_b), **{k: b.info.get(k) for k in ("kind", "model")}},
            "num_clips": len(pa), "num_tracks": pa.num_tracks, "clips_fingerprint": pa.fingerprint(),
            "bootstrap": bootstrap.describe(),
            "test": "paired cluster bootstrap over tracks: p = min(1, 2 min(P*(d <= 0), P*(d >= 0)))",
            "figures": figures}


def format_comparison(result: dict) -> str:
    level = result["bootstrap"]["level"]
    lines = [f"B − A, A = {result['a']['source']}, B = {result['b']['source']}: {result['num_clips']} clips of "
             f"{result['num_tracks']} tracks; {level_text(level)} paired intervals and two-sided p-values from the "
             f"same {result['bootstrap']['resamples']} track resamples (seed {result['bootstrap']['seed']})", "",
             f"| figure | A | B | B − A [{level_text(level)} interval] | p |", "|---|---:|---:|---:|---:|"]
    for key, f in result["figures"].items():
        note = " (lower is better)" if f["lower_is_better"] else ""
        diff = f"{f['difference']:+.3f} [{f['interval'][0]:+.3f}, {f['interval'][1]:+.3f}]"
        lines.append(f"| {key}{note} | {f['a']:.3f} | {f['b']:.3f} | {diff} | {f['p_value']:.3g} |")
    return "\n".join(lines) + "\n"
