"""One prediction format for every row of the benchmark: ``predictions.parquet``.

Every command that scores validation clips (training runs and peer models, the linear probe,
zero-shot CLAP, the MLLM harness, encoder probes) writes this file into its output folder, and
``metrics.json`` is a function of it (:func:`metrics_from_predictions`).  A folder holding only
this file (plus, optionally, ``row.json`` naming the row) is a complete source for ``housex table``
and ``housex compare``.

Columns, one row per scored clip:

- ``clip_id`` (string, unique): ``track@start-end`` for HouseX datasets (:func:`make_clip_ids`);
- ``track_id`` (string): the clips of one track are resampled together by the bootstrap;
- ``soft_label`` (8 floats): the target as stored (canonical genre order; the metric renormalises
  it and sharpens it, ties to the last genre);
- ``probabilities`` (8 floats, ≥ 0, summing to 1): the predicted distribution; for an MLLM the
  one-hot of its parsed answer, all zeros when unparsed;
- ``parsed`` (bool, MLLMs only): False for an answer the parser could not read (a wrong answer);
- any other column (``extra_columns``: the raw answer, a fold, ...), kept as written.

The row's description (model, kind, features, labels, dataset, split, seed, fold ...) travels in
the Parquet schema metadata (key ``housex.row``, JSON); a ``row.json`` next to the file overrides it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import METRIC_FILE
from .statistics import Bootstrap, Terms, TrackBootstrap, make_terms

PREDICTIONS_FILE = "predictions.parquet"
ROW_FILE = "row.json"
ROW_METADATA_KEY = b"housex.row"
NUM_GENRES = 8
CORE_COLUMNS = ("clip_id", "track_id", "soft_label", "probabilities", "parsed")
# Figures of a probability row / of an MLLM row (parsed answers); track-level figures of each.
PROBABILITY_FIGURES = ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "precision_macro",
                       "recall_macro", "f1_macro", "kl_divergence", "js_distance", "top2_accuracy", "ece")
ANSWER_FIGURES = ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "unparsed_rate",
                  "intersect_rate")
TRACK_FIGURES = ("accuracy", "f1_weighted", "top2_accuracy", "kl_divergence")
TRACK_ANSWER_FIGURES = ("accuracy", "f1_weighted")
_SUM_TOLERANCE = 1e-3
ECE_BINS = 15  # the metric module's default


@dataclass(frozen=True)
class Predictions:
    """The clips one run scored (all arrays share the clip order of the file)."""

    clip_ids: np.ndarray  # (N,) str
    track_ids: np.ndarray  # (N,) str
    soft_labels: np.ndarray  # (N, 8) float64, as stored
    probabilities: np.ndarray  # (N, 8) float64
    parsed: np.ndarray | None = None  # (N,) bool for MLLM answers, else None
    extra: dict = field(default_factory=dict)  # column name -> (N,) array
    row_info: dict = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def is_answers(self) -> bool:
        """True for an MLLM row: one-hot answers, unparsed ones counted wrong."""
        return self.parsed is not None

    @property
    def num_tracks(self) -> int:
        return len(np.unique(self.track_ids))

    @functools.cached_property
    def _fingerprint(self) -> str:
        order = np.argsort(self.clip_ids, kind="stable")
        soft = self.soft_labels[order]
        h = hashlib.sha256()
        h.update("\n".join(self.clip_ids[order]).encode())
        h.update(b"\0" + "\n".join(self.track_ids[order]).encode() + b"\0")
        h.update(np.round(soft / soft.sum(axis=1, keepdims=True), 6).astype("<f8").tobytes())
        return h.hexdigest()[:16]

    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over the scored clips (clip ids, track ids, soft labels renormalised
        and rounded to 6 decimals, in clip-id order): equal exactly when two runs scored the same clips
        of the same dataset, whatever their order."""
        return self._fingerprint

    def in_order(self, clip_ids: Sequence[str]) -> Predictions:
        """The same predictions in the order of ``clip_ids`` (exactly this run's clips)."""
        clip_ids = np.asarray(clip_ids, dtype=object)
        index = {c: i for i, c in enumerate(self.clip_ids)}
        missing = [c for c in clip_ids if c not in index]
        if missing or len(clip_ids) != len(self):
            raise ValueError(f"{self.source or 'predictions'}: not the same clips ({len(missing)} missing)")
        take = np.fromiter((index[c] for c in clip_ids), dtype=np.int64, count=len(clip_ids))
        return self._take(take)

    def _take(self, take: np.ndarray) -> Predictions:
        return replace(self, clip_ids=self.clip_ids[take], track_ids=self.track_ids[take],
                       soft_labels=self.soft_labels[take], probabilities=self.probabilities[take],
                       parsed=None if self.parsed is None else self.parsed[take],
                       extra={k: v[take] for k, v in self.extra.items()})


def make_clip_ids(track_ids, starts, ends) -> list[str]:
    """Stable clip ids ``track@start-end`` (a repeated id gets ``#2``, ``#3``...)."""
    seen: dict[str, int] = {}
    ids = []
    for t, a, b in zip(track_ids, starts, ends):
        base = f"{t}@{float(a):.3f}-{float(b):.3f}"
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return ids


def scored_clips(ds, label_column: str = "soft_label") -> tuple[list[str], list[str], np.ndarray]:
    """``(clip ids, track ids, (N, 8) soft labels)`` of a clips split (a ``datasets.Dataset`` with
    ``track_id``, ``clip_start``, ``clip_end`` and ``label_column``), in its row order."""
    missing = [c for c in ("track_id", "clip_start", "clip_end", label_column) if c not in ds.column_names]
    if missing:
        raise ValueError(f"clips split: column {missing[0]!r} missing (a HouseX 'clips' dataset is expected)")
    meta = ds.select_columns(["track_id", "clip_start", "clip_end", label_column])
    tracks = list(meta["track_id"])
    return (make_clip_ids(tracks, meta["clip_start"], meta["clip_end"]), tracks,
            np.asarray(meta[label_column], dtype=np.float64))


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _strings(values, name: str, n: int | None, where: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=object)
    if arr.ndim != 1 or (n is not None and len(arr) != n):
        raise ValueError(f"{where}: {name} has {len(arr)} entries, expected {n}")
    bad = [i for i, v in enumerate(arr) if not isinstance(v, str) or not v]
    if bad:
        raise ValueError(f"{where}: {name} row {bad[0]} is {arr[bad[0]]!r}, expected a non-empty string")
    return arr


def _matrix(values, name: str, n: int, where: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} is not a table of numbers (rows of {NUM_GENRES} floats)") from None
    if arr.shape != (n, NUM_GENRES):
        raise ValueError(f"{where}: {name} has shape {arr.shape}, expected ({n}, {NUM_GENRES}): one row of "
                         f"{NUM_GENRES} genres per clip")
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise ValueError(f"{where}: {name} row {bad[0]} is not finite ({arr[bad[0]].tolist()})")
    bad = np.flatnonzero((arr < 0).any(axis=1))
    if bad.size:
        raise ValueError(f"{where}: {name} row {bad[0]} has a negative value ({arr[bad[0]].tolist()})")
    return arr


def make_predictions(*, clip_ids, track_ids, soft_labels, probabilities, parsed=None, extra_columns=None,
                     row_info=None, source: str = "") -> Predictions:
    """Checked :class:`Predictions`: one-line ``ValueError`` naming the field for any bad value."""
    where = source or "predictions"
    clip_ids = _strings(clip_ids, "clip_id", None, where)
    n = len(clip_ids)
    if n == 0:
        raise ValueError(f"{where}: no clips")
    unique, counts = np.unique(clip_ids, return_counts=True)
    if counts.max() > 1:
        raise ValueError(f"{where}: clip_id {unique[counts.argmax()]!r} appears {counts.max()} times")
    track_ids = _strings(track_ids, "track_id", n, where)
    soft = _matrix(soft_labels, "soft_label", n, where)
    bad = np.flatnonzero(soft.sum(axis=1) <= 0)
    if bad.size:
        raise ValueError(f"{where}: soft_label row {bad[0]} ({clip_ids[bad[0]]}) sums to 0")
    probs = _matrix(probabilities, "probabilities", n, where)
    sums = probs.sum(axis=1)
    if parsed is not None:
        parsed = np.asarray(parsed)
        if parsed.shape != (n,) or parsed.dtype != bool:
            raise ValueError(f"{where}: parsed must be {n} booleans, got {parsed.dtype} of shape {parsed.shape}")
        bad = np.flatnonzero(~parsed & (sums != 0))
        if bad.size:
            raise ValueError(f"{where}: probabilities row {bad[0]} ({clip_ids[bad[0]]}) is unparsed but not all zeros")
        sums = np.where(parsed, sums, 1.0)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _SUM_TOLERANCE)
    if bad.size:
        raise ValueError(f"{where}: probabilities row {bad[0]} ({clip_ids[bad[0]]}) sums to {sums[bad[0]]:.6g}, not 1")
    extra = {}
    for name, values in (extra_columns or {}).items():
        if name in CORE_COLUMNS:
            raise ValueError(f"{where}: extra column {name!r} has the name of a core column")
        values = np.asarray(values) if not isinstance(values, np.ndarray) else values
        if len(values) != n:
            raise ValueError(f"{where}: extra column {name!r} has {len(values)} entries, expected {n}")
        extra[str(name)] = values
    info = dict(row_info or {})
    try:
        json.dumps(info)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: row_info is not JSON-serialisable ({e})") from None
    return Predictions(clip_ids, track_ids, soft, probs, parsed, extra, info, source)


# --------------------------------------------------------------------------------------------
# write / read
# --------------------------------------------------------------------------------------------


def _arrow_table(p: Predictions):
    import pyarrow as pa

    matrix = pa.list_(pa.float64(), NUM_GENRES)
    columns = {
        "clip_id": pa.array(p.clip_ids.tolist(), pa.string()),
        "track_id": pa.array(p.track_ids.tolist(), pa.string()),
        "soft_label": pa.FixedSizeListArray.from_arrays(pa.array(p.soft_labels.ravel()), NUM_GENRES),
        "probabilities": pa.FixedSizeListArray.from_arrays(pa.array(p.probabilities.ravel()), NUM_GENRES),
    }
    assert columns["soft_label"].type == matrix
    if p.parsed is not None:
        columns["parsed"] = pa.array(p.parsed.tolist(), pa.bool_())
    for name, values in p.extra.items():
        columns[name] = pa.array(values.tolist() if isinstance(values, np.ndarray) else list(values))
    table = pa.table(columns)
    return table.replace_schema_metadata({ROW_METADATA_KEY: json.dumps(p.row_info, sort_keys=True).encode()})


def write_predictions(folder: str | os.PathLike, *, clip_ids, track_ids, soft_labels, probabilities, parsed=None,
                      extra_columns=None, row_info=None) -> Path:
    """Check and write ``folder/predictions.parquet`` atomically (a temporary file, then ``os.replace``:
    a reader never sees half a file).  Returns its path."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    path = folder / PREDICTIONS_FILE
    p = make_predictions(clip_ids=clip_ids, track_ids=track_ids, soft_labels=soft_labels,
                         probabilities=probabilities, parsed=parsed, extra_columns=extra_columns,
                         row_info=row_info, source=str(path))
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{PREDICTIONS_FILE}.{os.getpid()}.tmp"
    try:
        pq.write_table(_arrow_table(p), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def predictions_path(folder_or_file: str | os.PathLike) -> Path:
    """``X/predictions.parquet`` for a folder, the file itself otherwise."""
    path = Path(folder_or_file)
    return path / PREDICTIONS_FILE if path.is_dir() else path


def _column_matrix(table, name: str, where: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(name).combine_chunks()
    if not (pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):
        raise ValueError(f"{where}: column {name!r} is {col.type}, expected a list of {NUM_GENRES} floats per clip")
    if col.null_count:
        raise ValueError(f"{where}: column {name!r} has {col.null_count} missing rows")
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(lengths != NUM_GENRES)
    if bad.size:
        raise ValueError(f"{where}: column {name!r} row {bad[0]} has {lengths[bad[0]]} values, expected {NUM_GENRES}")
    try:
        values = col.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    except (pa.ArrowInvalid, TypeError, ValueError):
        raise ValueError(f"{where}: column {name!r} holds non-numbers") from None
    return values.reshape(len(col), NUM_GENRES)


def read_predictions(folder_or_file: str | os.PathLike) -> Predictions:
    """A checked :class:`Predictions` from a folder (``predictions.parquet`` + optional ``row.json``)
    or a file; one-line errors naming the file and the field."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = predictions_path(folder_or_file)
    where = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no such file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{where}: not a Parquet file ({str(e).splitlines()[0]})") from None
    missing = [c for c in ("clip_id", "track_id", "soft_label", "probabilities") if c not in table.column_names]
    if missing:
        raise ValueError(f"{where}: column {missing[0]!r} missing (a predictions file needs clip_id, track_id, "
                         "soft_label, probabilities; parsed for MLLM answers)")
    row_info = {}
    raw = (table.schema.metadata or {}).get(ROW_METADATA_KEY)
    if raw:
        try:
            row_info = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError(f"{where}: its {ROW_METADATA_KEY.decode()} metadata is not JSON") from None
    row_file = path.parent / ROW_FILE
    if row_file.is_file():
        try:
            extra_info = json.loads(row_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{row_file}: not valid JSON ({e})") from None
        if not isinstance(extra_info, dict):
            raise ValueError(f"{row_file}: expected a JSON object naming the row (model, kind, dataset, split, ...)")
        row_info = {**row_info, **extra_info}
    parsed = None
    if "parsed" in table.column_names:
        col = table.column("parsed")
        if not pa.types.is_boolean(col.type) or col.null_count:
            raise ValueError(f"{where}: column 'parsed' must be booleans without missing rows")
        parsed = col.to_numpy(zero_copy_only=False).astype(bool)
    extra = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names
             if name not in CORE_COLUMNS}
    return make_predictions(clip_ids=table.column("clip_id").to_pylist(),
                            track_ids=table.column("track_id").to_pylist(),
                            soft_labels=_column_matrix(table, "soft_label", where),
                            probabilities=_column_matrix(table, "probabilities", where),
                            parsed=parsed, extra_columns=extra, row_info=row_info, source=where)


# --------------------------------------------------------------------------------------------
# combining runs
# --------------------------------------------------------------------------------------------


def average_predictions(runs: Sequence[Predictions], row_info: Mapping | None = None) -> Predictions:
    """The clip-wise mean of the probabilities of runs over the same clips (e.g. seeds of one cell)."""
    if not runs:
        raise ValueError("average_predictions: no runs")
    first = runs[0]
    if any(r.is_answers for r in runs):
        raise ValueError(f"{first.source}: MLLM answers are not averaged over runs")
    aligned = [first] + [r.in_order(first.clip_ids) for r in runs[1:]]
    probs = np.mean([r.probabilities for r in aligned], axis=0)
    return replace(first, probabilities=probs, extra={}, row_info=dict(row_info or first.row_info))


def pool_predictions(parts: Sequence[Predictions], row_info: Mapping | None = None) -> Predictions:
    """Disjoint clip sets (e.g. the validation folds of a K-fold run) as one set: every clip once."""
    if not parts:
        raise ValueError("pool_predictions: no parts")
    if len({p.is_answers for p in parts}) > 1:
        raise ValueError("pool_predictions: MLLM answers and probabilities cannot be pooled")
    first = parts[0]
    return make_predictions(
        clip_ids=np.concatenate([p.clip_ids for p in parts]),
        track_ids=np.concatenate([p.track_ids for p in parts]),
        soft_labels=np.concatenate([p.soft_labels for p in parts]),
        probabilities=np.concatenate([p.probabilities for p in parts]),
        parsed=None if first.parsed is None else np.concatenate([p.parsed for p in parts]),
        row_info=dict(row_info or first.row_info), source=first.source,
    )


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


@functools.cache
def metric_module():
    """The metric module (``trainer/housex_metric.py``) as ``evaluate.load`` loads it by path; its plain
    functions, without the Arrow round trip that ``compute`` adds (~0.1 s a call)."""
    import evaluate

    return sys.modules[type(evaluate.load(str(METRIC_FILE))).__module__]


def answer_columns(p: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """An MLLM row as 9 columns (8 genres + "unparsed", a class no clip has): (N, 9) one-hot answers
    and (N, 9) soft targets, so the metric counts an unparsed answer as wrong."""
    n = len(p)
    answers = np.zeros((n, NUM_GENRES + 1))
    answers[np.arange(n), np.where(p.parsed, p.probabilities.argmax(axis=1), NUM_GENRES)] = 1.0
    return answers, np.hstack([p.soft_labels, np.zeros((n, 1))])


def _answer_scores(p: Predictions) -> dict:
    answers, targets = answer_columns(p)
    full = metric_module().housex_scores(answers, targets, prediction_type="probs")
    scores = {k: full[k] for k in ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted")}
    scores["confusion_matrix"] = full["confusion_matrix"][:NUM_GENRES]  # columns: 8 genres + unparsed
    unparsed = int((~p.parsed).sum())
    scores["num_unparsed"] = unparsed
    scores["unparsed_rate"] = unparsed / len(p)
    chosen = p.probabilities.argmax(axis=1)
    scores["intersect_rate"] = float(np.mean(p.parsed & (p.soft_labels[np.arange(len(p)), chosen] > 0)))
    scores["num_examples"] = len(p)
    return scores


def track_means(p: Predictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(track ids sorted, (T, C) mean predictions, (T, C) mean soft labels)``; an MLLM row's
    predictions are its 9-column answers (:func:`answer_columns`), so a track's answer is its majority."""
    tracks, inverse = np.unique(p.track_ids, return_inverse=True)
    if p.is_answers:
        preds, targets = answer_columns(p)
    else:
        preds, targets = p.probabilities, p.soft_labels
    targets = targets / targets.sum(axis=1, keepdims=True)
    counts = np.bincount(inverse, minlength=len(tracks))[:, None]
    sums = np.zeros((len(tracks), preds.shape[1]))
    np.add.at(sums, inverse, preds)
    soft = np.zeros_like(sums)
    np.add.at(soft, inverse, targets)
    return tracks, sums / counts, soft / counts


def track_level_scores(p: Predictions) -> dict:
    """Per track, the mean of its clips' predictions against the track's soft label: accuracy,
    weighted F1, top-2 and KL (accuracy and weighted F1 of the majority answer for an MLLM row)."""
    tracks, preds, targets = track_means(p)
    full = metric_module().housex_scores(preds, targets, prediction_type="probs")
    keys = TRACK_ANSWER_FIGURES if p.is_answers else TRACK_FIGURES
    return {**{k: full[k] for k in keys}, "num_tracks": int(len(tracks))}


def clip_terms(p: Predictions) -> Terms:
    """The bootstrap's per-clip terms of every clip-level figure (the metric module's definitions)."""
    metric = metric_module()
    if p.is_answers:
        answers, targets = answer_columns(p)
        chosen = p.probabilities.argmax(axis=1)
        hits = p.parsed & (p.soft_labels[np.arange(len(p)), chosen] > 0)
        return make_terms(metric.sharpen_ids(targets), answers.argmax(axis=1), NUM_GENRES + 1,
                          means={"unparsed_rate": (~p.parsed).astype(np.float64), "intersect_rate": hits},
                          figures=ANSWER_FIGURES)
    probs = metric.to_probabilities(p.probabilities, "probs")
    terms = metric.example_scores(probs, metric.to_soft_targets(p.soft_labels, NUM_GENRES))
    return make_terms(terms["target_id"], terms["predicted_id"], NUM_GENRES,
                      means={"kl_divergence": terms["kl_divergence"], "js_distance": terms["js_distance"],
                             "top2_accuracy": terms["top2"]},
                      confidence=terms["confidence"], n_bins=ECE_BINS,
                      bins=metric.confidence_bins(terms["confidence"], ECE_BINS), figures=PROBABILITY_FIGURES)


def track_terms(p: Predictions) -> tuple[Terms, np.ndarray]:
    """``(terms, track ids)``: the per-track terms of the track-level figures (:func:`track_means`)."""
    metric = metric_module()
    tracks, preds, targets = track_means(p)
    preds = metric.to_probabilities(preds, "probs")
    if p.is_answers:
        return make_terms(metric.sharpen_ids(targets), preds.argmax(axis=1), NUM_GENRES + 1,
                          figures=TRACK_ANSWER_FIGURES), tracks
    terms = metric.example_scores(preds, targets)
    return make_terms(terms["target_id"], terms["predicted_id"], NUM_GENRES,
                      means={"kl_divergence": terms["kl_divergence"], "top2_accuracy": terms["top2"]},
                      figures=TRACK_FIGURES), tracks


def metrics_from_predictions(p: Predictions, bootstrap: Bootstrap | None = Bootstrap()) -> dict:
    """What ``metrics.json`` holds about the scored clips, from the predictions alone: the metric
    module's scores (or the MLLM answer scores), the track-level scores, the clip/track counts, the
    clips' fingerprint and, unless ``bootstrap`` is None, the interval of every figure
    (``intervals``, ``track_level_intervals``: cluster bootstrap over tracks, :mod:`statistics`)."""
    if p.is_answers:
        scores = _answer_scores(p)
    else:
        scores = metric_module().housex_scores(p.probabilities, p.soft_labels, prediction_type="probs")
    out = {
        **scores,
        "num_tracks": p.num_tracks,
        "clips_fingerprint": p.fingerprint(),
        "track_level": track_level_scores(p),
    }
    if bootstrap is not None:
        resampler = TrackBootstrap(p.track_ids, bootstrap)
        out["intervals"] = resampler.intervals(clip_terms(p), p.track_ids)
        out["track_level_intervals"] = resampler.intervals(*track_terms(p))
        out["bootstrap"] = bootstrap.describe()
    return out
