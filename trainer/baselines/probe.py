"""Linear-probe baseline: logistic regression on clip-mean log-mel features.

A floor for the real model and a difficulty check for the synthetic generator: if a linear model on
the time-averaged spectrum already classifies the clips, the benchmark is too easy.  Features per
clip: log-mel power spectrogram (``power_to_db(ref=max)``, like the model's input) averaged over
time → (n_mels,); targets are the sharpened ``label`` column; the model is
``StandardScaler → LogisticRegression`` fitted on ``train``.  It runs through the layer probes' code
path (:mod:`layer_probe`: the built-in ``log-mel`` feature set, a grid of one ``logistic`` candidate,
so nothing is chosen) and its validation probabilities are scored like every other row
(``common.write_scores``: ``predictions.parquet``, then ``metrics.json`` through the metric module,
with track-bootstrap intervals).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import datasets
import librosa
import numpy as np
import soundfile as sf
from threadpoolctl import threadpool_limits

from ...dataset_script.audio import load_audio, to_mono
from ...dataset_script.genres import sharpen_ids
from ...dataset_script.librosa_import import import_librosa
from ..statistics import Bootstrap, format_figure, level_text


def clip_features(y: np.ndarray, sr: int, *, n_mels: int = 64, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Time-mean log-mel spectrum of one mono clip: y (samples,) → (n_mels,) float32 in dB (≤ 0)."""
    S = librosa.feature.melspectrogram(y=np.asarray(y, dtype=np.float32), sr=sr, n_fft=n_fft,
                                       hop_length=hop_length, n_mels=n_mels)
    return librosa.power_to_db(S, ref=np.max).mean(axis=1).astype(np.float32)


def _decode(audio, where: str) -> tuple[np.ndarray, int]:
    """Mono samples of one ``audio`` cell read with ``Audio(decode=False)``: {bytes, path}."""
    try:
        if audio.get("bytes"):
            y, sr = sf.read(io.BytesIO(audio["bytes"]), dtype="float32", always_2d=True)
            return to_mono(y.T), int(sr)
        if audio.get("path"):
            y, sr = load_audio(audio["path"])
            return to_mono(y), sr
    except (RuntimeError, sf.LibsndfileError) as e:
        raise ValueError(f"{where}: audio cannot be decoded ({e})") from None
    raise ValueError(f"{where}: audio cell has neither bytes nor path")


def dataset_features(ds, *, n_mels: int = 64, split_name: str = "", num_proc: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features X (N, n_mels) and sharpened labels y (N,) of a clips split (``audio``, ``label``);
    ``num_proc`` processes share the decoding (``Dataset.map``; the same figures for any count)."""
    for col in ("audio", "label"):
        if col not in ds.column_names:
            raise ValueError(f"split {split_name or '?'}: missing column {col!r} (a 'clips' dataset is expected)")
    raw = ds.select_columns(["audio", "label"]).cast_column("audio", datasets.Audio(decode=False))

    def featurise(batch, indices):
        return {"features": [clip_features(*_decode(audio, f"split {split_name} row {i}"), n_mels=n_mels)
                             for audio, i in zip(batch["audio"], indices)]}

    features = datasets.Features({"label": raw.features["label"],
                                  "features": datasets.List(datasets.Value("float32"), length=n_mels)})
    # one BLAS thread: the mel projections are small, and OpenBLAS's threads only wait for each other
    # (the probe took a fifth longer with them)
    if num_proc and num_proc > 1:
        import_librosa()  # here first, so that the workers only read numba's cache
    with threadpool_limits(limits=1, user_api="blas"):
        out = raw.map(featurise, batched=True, batch_size=64, with_indices=True, remove_columns=["audio"],
                      features=features, num_proc=num_proc if num_proc and num_proc > 1 else None,
                      desc=f"probe features ({split_name or 'split'})")
    return np.asarray(out["features"], dtype=np.float32).reshape(len(out), n_mels), np.asarray(out["label"], dtype=np.int64)


def model_name(n_mels: int) -> str:
    return f"logistic regression, clip-mean {n_mels}-band log-mel"


def log_mel(dataset, *, n_mels: int = 64, num_proc: int | None = None) -> FeatureSet:
    """The built-in ``log-mel`` feature set of the layer probes: one layer, the clip-mean log-mel spectrum."""
    from ..predictions import scored_clips
    from .layer_probe import FeatureSet, Split

    for split in ("train", "validation"):
        if split not in dataset:
            raise ValueError(f"dataset has no {split!r} split (found: {', '.join(dataset)})")
    splits = {}
    for name in ("validation", "train"):  # validation's columns checked before any feature is computed
        ids, tracks, soft = scored_clips(dataset[name])
        X, _ = dataset_features(dataset[name], n_mels=n_mels, split_name=name, num_proc=num_proc)
        splits[name] = Split(X[:, None, :], ids, [str(t) for t in tracks], soft)
    return FeatureSet("log-mel", "log-mel mean", splits["train"], splits["validation"])


def linear_probe(dataset: Mapping, *, n_mels: int = 64, C: float = 1.0, seed: int = 0, max_iter: int = 2000,
                 num_proc: int | None = None, source: str = "", out: str | Path | None = None,
                 bootstrap: Bootstrap = Bootstrap()) -> dict:
    """Fit the probe on ``dataset["train"]`` and score it on ``dataset["validation"]`` (features
    computed by ``num_proc`` processes); returns the metrics (written with ``predictions.parquet`` to
    ``out`` unless None).

    ``dataset``: a ``datasets.DatasetDict`` (or mapping of splits) of the "clips" config; ``source``
    names it in the outputs.
    """
    from .layer_probe import Candidate, run_probe

    features = log_mel(dataset, n_mels=n_mels, num_proc=num_proc)
    if len(np.unique(sharpen_ids(features.train.soft_labels))) < 2:
        raise ValueError(f"train split has {len(np.unique(sharpen_ids(features.train.soft_labels)))} class(es); "
                         "the probe needs at least 2")
    record = {"model": model_name(n_mels), "dataset": source, "n_mels": n_mels, "C": C}
    row_info = {"model": model_name(n_mels), "dataset": source}
    return run_probe(features, out, grid=[Candidate("logistic", 0, C=C)], seed=seed, bootstrap=bootstrap,
                     record_extra=record, row_extra=row_info, max_iter=max_iter)


def summary(record: dict) -> str:
    """The probe's figures with their intervals, one per line."""
    rows = [("accuracy", "accuracy"), ("precision (weighted)", "precision_weighted"),
            ("recall (weighted)", "recall_weighted"), ("F1 (weighted)", "f1_weighted"), ("F1 (macro)", "f1_macro"),
            ("top-2 accuracy", "top2_accuracy")]
    lines = [f"linear probe ({record['model']}), {record['num_train_clips']} train / {record['num_clips']} validation "
             f"clips ({record['num_tracks']} tracks; {level_text(record['bootstrap']['level'])} track-bootstrap intervals)"]
    lines += [f"  {name:<22} {format_figure(record[key], record['intervals'][key])}" for name, key in rows]
    return "\n".join(lines)
