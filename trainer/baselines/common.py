"""What every baseline shares: the clips split at a model's sampling rate, the metric, the outputs.

Every baseline scores the validation clips of the same ``clips`` dataset with the same ``evaluate``
metric module (``trainer/housex_metric.py``, loaded by path), whose targets are the soft labels
sharpened as in the paper (ties go to the last genre), and writes the same two files
(:func:`write_scores`): ``predictions.parquet`` (one row per clip) and ``metrics.json`` computed
from it, every figure with its track-bootstrap interval.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

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


# --------------------------------------------------------------------------------------------
# Hub ids without a network
# --------------------------------------------------------------------------------------------


@functools.cache
def hub_unreachable() -> str | None:
    """Why the Hugging Face Hub cannot be asked (``HF_HUB_OFFLINE``, or no TCP connection to its
    endpoint within 3 s), or None.  Behind a proxy the library decides: None."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as e:
        return f"no connection to {host}: {e.strerror or type(e).__name__}"
    return None


def hub_access(model: str, *, option: str = "--model") -> dict:
    """``from_pretrained`` keyword arguments for ``model`` (a folder or a Hub id), decided up front.

    A folder, or a Hub id while the Hub answers: ``{}``.  A Hub id with the Hub out of reach:
    ``{"local_files_only": True}`` when the model is in the local cache, else an ``OSError`` at
    once that says so and names the way out (the cache ``HF_HOME`` points to, or a local folder),
    instead of huggingface_hub's retries (about 30 s) and a message that blames the id.
    """
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(model).is_dir():
        return {}
    try:
        validate_repo_id(str(model))
    except HFValidationError:
        return {}  # not a Hub id: from_pretrained says it is no model folder
    reason = hub_unreachable()
    if reason is None:
        return {}
    if isinstance(try_to_load_from_cache(str(model), "config.json"), str):
        return {"local_files_only": True}
    raise OSError(
        f"{option} {model}: the Hugging Face Hub cannot be reached ({reason}) and the model is not in the local "
        f"cache {constants.HF_HUB_CACHE} (HF_HOME); download it where there is internet (hf download {model}) "
        f"into the cache HF_HOME points to, or pass {option} a local model folder"
    )

