"""What every baseline shares: the clips split at a model's sampling rate, the metric, the outputs.

Every baseline scores the validation clips of the same ``clips`` dataset with the same ``evaluate``
metric module (``trainer/housex_metric.py``, loaded by path), whose targets are the soft labels
sharpened as in the paper (ties go to the last genre), and writes the same two files
(:func:`write_scores`): ``predictions.parquet`` (one row per clip) and ``metrics.json`` computed
from it, every figure with its track-bootstrap interval.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from housex.dataset_script.genres import NUM_GENRES
from housex.trainer.predictions import (
    make_clip_ids,
    make_predictions,
    metrics_from_predictions,
    read_predictions,
    write_predictions,
)
from housex.trainer.statistics import Bootstrap


@dataclass
class Clips:
    """One split of a clips dataset, decoded mono at ``sampling_rate`` and cut to ``max_seconds``."""

    dataset: object  # datasets.Dataset with the audio column cast to the model's rate
    ids: list[str]
    soft_labels: np.ndarray  # (N, 8) rows summing to 1
    source: str
    split: str
    sampling_rate: int
    max_seconds: float | None = None

    @property
    def seconds(self) -> float:
        """The audio length a model gets: the median clip length, cut to ``max_seconds``."""
        stored = float(np.median(np.asarray(self.dataset["clip_end"]) - np.asarray(self.dataset["clip_start"])))
        return round(min(stored, self.max_seconds or stored), 4)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def track_ids(self) -> list[str]:
        return list(self.dataset["track_id"])

    def audio(self, index: int) -> np.ndarray:
        a = self.dataset[int(index)]["audio"]
        y = np.asarray(a["array"], dtype=np.float32)
        y = y.mean(axis=0) if y.ndim > 1 else y
        if self.max_seconds:
            y = y[: int(round(self.max_seconds * self.sampling_rate))]
        return y

    def batches(self, batch_size: int, indices=None) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        """``(indices, waveforms)`` in groups of ``batch_size`` over ``indices`` (default: all)."""
        order = list(range(len(self))) if indices is None else list(indices)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            yield chunk, [self.audio(i) for i in chunk]


def load_clips(dataset: str, split: str = "validation", *, sampling_rate: int, max_seconds: float | None = None,
               config: str = "clips") -> Clips:
    """The ``split`` of the ``clips`` config of a dataset folder or Hub id; one-line errors naming it."""
    import datasets

    from housex.trainer.data import load_clips_dataset

    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"--clip-seconds must be > 0, got {max_seconds}")
    ds = load_clips_dataset(dataset, config, splits=(split,))[split]
    for column in ("audio", "soft_label", "track_id", "clip_start", "clip_end"):
        if column not in ds.column_names:
            raise ValueError(f"dataset {dataset} split {split}: column {column!r} missing (not a HouseX clips dataset)")
    if len(ds) == 0:
        raise ValueError(f"dataset {dataset} split {split}: no clips")
    soft = np.asarray(ds["soft_label"], dtype=np.float64)
    if soft.shape[1:] != (NUM_GENRES,):
        raise ValueError(f"dataset {dataset}: soft_label has shape {soft.shape[1:]}, expected ({NUM_GENRES},)")
    soft = soft / soft.sum(axis=1, keepdims=True)
    ids = make_clip_ids(ds["track_id"], ds["clip_start"], ds["clip_end"])
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=int(sampling_rate), num_channels=1))
    return Clips(ds, ids, soft, str(dataset), split, int(sampling_rate), max_seconds)


def write_scores(out: str | Path | None, *, record: dict, row_info: dict, clip_ids, track_ids, soft_labels,
                 probabilities, parsed=None, extra_columns=None, bootstrap: Bootstrap = Bootstrap()) -> dict:
    """Score one run's predictions: ``out/predictions.parquet``, then ``out/metrics.json`` = ``record`` +
    :func:`~housex.trainer.predictions.metrics_from_predictions` of the file as written (``out`` None:
    nothing is written).  Returns the metrics."""
    columns = dict(clip_ids=clip_ids, track_ids=track_ids, soft_labels=soft_labels, probabilities=probabilities,
                   parsed=parsed, extra_columns=extra_columns, row_info=row_info)
    if out is None:
        predictions = make_predictions(**columns)
    else:
        predictions = read_predictions(write_predictions(out, **columns))
    metrics = {**record, **metrics_from_predictions(predictions, bootstrap)}
    if out is not None:
        write_json(Path(out) / "metrics.json", metrics)
    return metrics


def write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path
