"""The data of a training run: the clips dataset, its splits, training targets and features.

``load_clips_dataset`` is the one loader of a dataset's ``clips`` config (training, the baselines,
``housex probe``, embeddings).  ``load_clip_datasets`` loads it or builds it from release folders;
``select_clips`` holds out the tracks that choose the checkpoint (``--checkpoint_selection holdout``:
``selection_holdout``) and applies the label mode's filter and the ``max_*_samples`` truncation;
``make_transform`` turns decoded clips into model inputs and labels, on the fly (``add_features``:
``set_transform``) or once (``precompute``: ``Dataset.map``, cached by datasets).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import datasets
import numpy as np
import yaml
from transformers import DataCollatorWithPadding

from ..dataset_script.build_plan import TrackEntry, split_tracks
from ..dataset_script.builder import HouseXBuilder, HouseXBuilderConfig
from ..dataset_script.export import local_data_files
from ..dataset_script.genres import sharpen_ids
from .arguments import DataTrainingArguments
from .augmentation import AugmentEpochCallback, FeatureAugmentCollator, SeededAugmenter, clip_keys

logger = logging.getLogger("housex.trainer")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def load_clips_dataset(dataset: str | os.PathLike, config: str = "clips", *,
                       splits: Sequence[str] = ()) -> datasets.DatasetDict:
    """``load_dataset(dataset, config)`` of a dataset folder or Hub id, with ``splits`` required.

    One-line errors name the dataset, the config and the split: ``FileNotFoundError`` when there is
    no such dataset, ``ValueError`` when it has no such config or split.  A local folder is loaded with
    its declared data files, so datasets' cache follows the files (a rebuilt or another folder of the
    same name never loads a stale copy).
    """
    data_files = local_data_files(dataset, config) if Path(dataset).is_dir() else None
    try:
        raw = datasets.load_dataset(str(dataset), config, **({"data_files": data_files} if data_files else {}))
    except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as e:
        raise FileNotFoundError(f"dataset {dataset}: not found ({_first_line(e)})") from None
    except ValueError as e:
        first = _first_line(e)
        if "BuilderConfig" in first or "config" in first.lower():
            raise ValueError(f"dataset {dataset}: has no {config!r} config ({first}); build it with `housex build`") from None
        raise
    _require_splits(raw, splits, dataset, config)
    return raw


def _require_splits(raw: datasets.DatasetDict, splits: Sequence[str], source, config: str) -> None:
    """A one-line ``ValueError`` naming the first of ``splits`` that ``raw`` lacks."""
    for split in splits:
        if split not in raw:
            raise ValueError(f"dataset {source} (config {config!r}): has no split {split!r} (has {', '.join(raw)})")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def parse_build_options(text: str | None) -> dict:
    """``"clip_seconds=2,min_drop_seconds=4"`` -> builder config overrides (numbers and booleans parsed)."""
    allowed = {f.name for f in dataclasses.fields(HouseXBuilderConfig)} - {"name", "version", "data_dir", "data_files",
                                                                           "description"}
    out = {}
    for item in filter(None, (x.strip() for x in (text or "").split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise ValueError(f"build_options: {item!r} is not KEY=VALUE with KEY one of {', '.join(sorted(allowed))}")
        out[key] = yaml.safe_load(value.strip())
    return out



def load_clip_datasets(data_args: DataTrainingArguments, training_args):
    """``(DatasetDict, source)``: the clips config loaded by name/folder, or built from release folders.

    Release folders go through ``HouseXBuilder`` (cached under ``build_dir`` or the datasets cache,
    keyed by the release files and build options); under DDP the main process builds first.
    """
    if data_args.release_dirs:
        options = {"seed": training_args.seed, **parse_build_options(data_args.build_options)}
        with training_args.main_process_first(desc="building the dataset"):
            builder = HouseXBuilder(config_name=data_args.dataset_config_name, data_dir=list(data_args.release_dirs),
                                    cache_dir=data_args.build_dir, **options)
            builder.download_and_prepare()
            raw = builder.as_dataset()
        if training_args.should_log and builder.summary.tracks:  # empty when served from the cache
            logger.info("dataset build summary:\n%s", builder.summary.format())
        source = ",".join(data_args.release_dirs)
    else:
        source = data_args.dataset_name
        raw = load_clips_dataset(source, data_args.dataset_config_name)
    _require_splits(raw, (data_args.train_split_name, data_args.eval_split_name), source, data_args.dataset_config_name)
    columns = raw[data_args.train_split_name].column_names
    for col in (data_args.audio_column_name, data_args.label_column_name):
        if col not in columns:
            raise ValueError(f"dataset {source!r}: column {col!r} not found (has {', '.join(columns)})")
    return raw, source



def dataset_looks_synthetic(ds, data_args: DataTrainingArguments) -> bool:
    """True when a release folder holds the generator's ``generator-truth.json``, or the dataset's
    description or card (README.md of a dataset folder) says it is synthetic."""
    if data_args.release_dirs:
        from ..dataset_script.release import is_synthetic_release

        return any(is_synthetic_release(d) for d in data_args.release_dirs)
    texts = [ds.info.description or ""]
    if data_args.dataset_name and Path(data_args.dataset_name, "README.md").is_file():
        texts.append(Path(data_args.dataset_name, "README.md").read_text(encoding="utf-8", errors="replace"))
    return any("synthetic" in t.lower() for t in texts)



# --------------------------------------------------------------------------------------------
# Selecting, targets
# --------------------------------------------------------------------------------------------
class ClipSplits(NamedTuple):
    """The clips of a run: ``train`` (trained on), ``validation`` (scored once, or during training with
    ``--checkpoint_selection validation``/``last``) and ``selection`` (the held-out training tracks that
    choose the checkpoint with ``--checkpoint_selection holdout``; None otherwise)."""

    train: datasets.Dataset
    validation: datasets.Dataset
    selection: datasets.Dataset | None = None


def select_clips(raw, data_args: DataTrainingArguments, training_args, source: str) -> ClipSplits:
    """The train / validation splits (with ``--fold k``: the other folds / fold k); when training with
    ``--checkpoint_selection holdout``, the holdout of training tracks (:func:`selection_holdout`, drawn
    from all training tracks, so that it is labelled like validation); then the label mode's filter and
    the ``max_*_samples`` truncation (of train and validation; the holdout keeps whole tracks)."""
    if data_args.fold is not None:
        train_ds, eval_ds = fold_splits(raw, data_args, source)
    else:
        train_ds = raw[data_args.train_split_name]
        eval_ds = raw[data_args.eval_split_name]
    selection_ds = None
    if training_args.do_train and getattr(training_args, "checkpoint_selection", None) == "holdout":
        train_ds, selection_ds = selection_holdout(train_ds, training_args.selection_fraction, training_args.seed,
                                                   source, data_args.label_column_name)
    if data_args.label_mode == "clean":
        before = len(train_ds)
        train_ds = train_ds.filter(lambda s: max(s) >= 1.0 - 1e-9, input_columns=[data_args.label_column_name])
        logger.info("label_mode=clean: %d of %d training clips have one genre at weight 1", len(train_ds), before)
        if len(train_ds) == 0:
            raise ValueError(f"label_mode=clean: no training clip of {source!r} has a single-genre label")
    if data_args.max_train_samples is not None:
        train_ds = train_ds.select(range(min(data_args.max_train_samples, len(train_ds))))
    if data_args.max_eval_samples is not None:
        eval_ds = eval_ds.select(range(min(data_args.max_eval_samples, len(eval_ds))))
    if len(train_ds) == 0 and training_args.do_train:
        raise ValueError(f"dataset {source!r}: the {data_args.train_split_name!r} split is empty")
    if len(eval_ds) == 0:
        raise ValueError(f"dataset {source!r}: the {data_args.eval_split_name!r} split is empty")
    return ClipSplits(train_ds, eval_ds, selection_ds)


def selection_holdout(train_ds, fraction: float, seed: int, source: str = "the dataset",
                      label_column: str = "soft_label") -> tuple[datasets.Dataset, datasets.Dataset]:
    """``(train, holdout)``: ``fraction`` of the training TRACKS (every clip of a held-out track goes with
    it) held out to choose the checkpoint, by the builder's own train/validation rule
    (:func:`~housex.dataset_script.build_plan.split_tracks`: seeded, stratified on the sharpened track
    label where every genre has 2 tracks and the holdout one per genre, else a seeded shuffle).  The same
    seed gives the same holdout.  A dataset without ``track_id`` holds out single clips (with a warning)."""
    if "track_id" in train_ds.column_names:
        meta = train_ds.select_columns(["track_id", label_column])
        tracks = np.asarray(meta["track_id"], dtype=object)
    else:
        logger.warning("dataset %s has no track_id column: the checkpoint-selection holdout takes single clips, "
                       "whose tracks may also train", source)
        meta = train_ds.select_columns([label_column])
        tracks = np.asarray([f"clip{i:06d}" for i in range(len(train_ds))], dtype=object)
    labels = np.asarray(meta[label_column], dtype=np.float64)
    ids, first = np.unique(tracks, return_index=True)  # a track's label: its first clip's
    # split_tracks reads a track's source, id and label only; the clips dataset has no audio path per track
    entries = [TrackEntry("", str(t), "", Path(), labels[i]) for t, i in zip(ids, first)]
    held = {e.track_id for e in split_tracks(entries, validation_fraction=fraction, seed=seed,
                                             stratify=True)["validation"]}
    if not held:
        raise ValueError(f"--selection_fraction {fraction} of the {len(entries)} training tracks of {source} holds "
                         "out no track: raise it, or use --checkpoint_selection last")
    in_holdout = np.fromiter((t in held for t in tracks), dtype=bool, count=len(tracks))
    logger.info("checkpoint selection: %d of %d training tracks (%d clips) held out to choose the checkpoint",
                len(held), len(entries), int(in_holdout.sum()))
    return train_ds.select(np.flatnonzero(~in_holdout)), train_ds.select(np.flatnonzero(in_holdout))



def num_folds(raw, data_args: DataTrainingArguments) -> int | None:
    """The number of cross-validation folds of a dataset built with ``--folds K`` (None: no ``fold`` column)."""
    splits = [raw[data_args.train_split_name], raw[data_args.eval_split_name]]
    if any("fold" not in ds.column_names for ds in splits):
        return None
    return int(max(max(ds["fold"], default=-1) for ds in splits)) + 1


def fold_splits(raw, data_args: DataTrainingArguments, source: str):
    """``(train, validation)`` for ``--fold k``: both splits pooled, fold k validates, the rest trains."""
    k, folds = data_args.fold, num_folds(raw, data_args)
    if folds is None:
        raise ValueError(f"--fold {k}: dataset {source!r} has no 'fold' column (build it with housex build --folds K)")
    if k >= folds:
        raise ValueError(f"--fold {k}: dataset {source!r} has folds 0..{folds - 1}")
    pooled = datasets.concatenate_datasets([raw[data_args.train_split_name], raw[data_args.eval_split_name]])
    fold = np.asarray(pooled["fold"])
    return pooled.select(np.flatnonzero(fold != k)), pooled.select(np.flatnonzero(fold == k))


def clip_seconds_of(ds) -> float | None:
    """The clip length of a clips dataset (median of clip_end - clip_start over up to 64 rows), or None."""
    if "clip_start" not in ds.column_names or "clip_end" not in ds.column_names or len(ds) == 0:
        return None
    head = ds.select_columns(["clip_start", "clip_end"]).select(range(min(64, len(ds))))
    lengths = np.asarray(head["clip_end"], dtype=np.float64) - np.asarray(head["clip_start"], dtype=np.float64)
    return round(float(np.median(lengths)), 4)



def training_targets(soft_labels: np.ndarray, label_mode: str) -> np.ndarray:
    """(N, 8) soft labels -> training targets: (N, 8) float32 for 'soft', (N,) int64 ids otherwise."""
    soft = np.asarray(soft_labels, dtype=np.float64)
    if label_mode == "soft":
        return (soft / soft.sum(axis=-1, keepdims=True)).astype(np.float32)
    return np.atleast_1d(sharpen_ids(soft)).astype(np.int64)


def class_weights_from_targets(targets: np.ndarray, num_labels: int) -> list[float]:
    """Weights ∝ 1 / (summed targets per class), normalised to mean 1 over the classes present.

    ``targets``: (N, C) soft or (N,) ids.  A class that never occurs gets weight 0 (it is never a target).
    """
    t = np.asarray(targets)
    counts = np.bincount(t, minlength=num_labels).astype(np.float64) if t.ndim == 1 else t.sum(axis=0)
    weights = np.zeros(num_labels)
    present = counts > 0
    weights[present] = 1.0 / counts[present]
    weights[present] /= weights[present].mean()
    return weights.tolist()



# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------
def make_transform(feature_extractor, *, audio_column: str, label_column: str, label_mode: str | None,
                   augmenter=None, augment_keys: bool = False, max_length_seconds: float | None = None):
    """``with_transform`` function: decoded audio -> ``input_features``; soft label -> ``labels``.

    ``label_mode=None`` keeps the soft label (validation).  Audio is decoded by ``datasets``
    (already resampled to the feature extractor's rate by ``cast_column``) and averaged to mono.
    ``augment_keys`` adds ``augment_key`` (CRC-32 of the clip key) for :class:`FeatureAugmentCollator`.
    ``max_length_seconds`` keeps the first seconds of each clip.
    """
    sr = int(feature_extractor.sampling_rate)
    input_name = feature_extractor.model_input_names[0]  # input_features (HouseX, AST...), input_values (wav2vec2)
    max_samples = int(round(max_length_seconds * sr)) if max_length_seconds else None

    def transform(batch):
        waves = []
        keys = clip_keys(batch, audio_column) if augmenter is not None or augment_keys else None
        for i, audio in enumerate(batch[audio_column]):
            y = np.asarray(audio["array"], dtype=np.float32)
            if y.ndim == 2:  # (channels, samples) -> channel mean
                y = y.mean(axis=0)
            if max_samples is not None:
                y = y[:max_samples]
            if augmenter is not None:
                y = augmenter(y, sr, keys[i])
            waves.append(y)
        features = feature_extractor(waves, sampling_rate=sr, return_tensors="np")
        out = {input_name: list(features[input_name])}
        if "attention_mask" in features:
            out["attention_mask"] = list(features["attention_mask"])
        soft = np.asarray(batch[label_column], dtype=np.float64)
        out["labels"] = list(training_targets(soft, label_mode or "soft"))
        if augment_keys:
            out["augment_key"] = [zlib.crc32(k.encode()) for k in keys]
        return out

    return transform



def build_augmentation(data_args: DataTrainingArguments, training_args, feature_extractor):
    """``(waveform augmenter or None, feature-augmenting collator or None, their epoch callbacks)``."""
    augmenter = SeededAugmenter(data_args.augment_probability, training_args.seed) if data_args.augment else None
    collator = None
    if data_args.feature_augment:
        # chroma planes are not levels: only the dB plane gets the tilt
        tilt_planes = 1 if feature_extractor.use_chroma else feature_extractor.feature_shape[0]
        collator = FeatureAugmentCollator(DataCollatorWithPadding(feature_extractor), training_args.seed, tilt_planes)
    callbacks = [AugmentEpochCallback(a) for a in (augmenter, collator) if a is not None]
    return augmenter, collator, callbacks



def add_features(splits: ClipSplits, feature_extractor, augmenter, data_args: DataTrainingArguments,
                 training_args) -> ClipSplits:
    """Every split with ``input_features`` + ``labels``: on the fly (``set_transform``) or precomputed.
    Validation and the selection holdout keep the soft labels (they are scored alike)."""
    train_transform = make_transform(feature_extractor, audio_column=data_args.audio_column_name,
                                     label_column=data_args.label_column_name, label_mode=data_args.label_mode,
                                     augmenter=augmenter, augment_keys=data_args.feature_augment,
                                     max_length_seconds=data_args.max_length_seconds)
    eval_transform = make_transform(feature_extractor, audio_column=data_args.audio_column_name,
                                    label_column=data_args.label_column_name, label_mode=None,
                                    max_length_seconds=data_args.max_length_seconds)
    train_ds, eval_ds, selection_ds = splits
    if data_args.precompute_features:
        with training_args.main_process_first(desc="computing features"):
            train_ds = precompute(train_ds, train_transform, data_args.preprocessing_num_workers, "train",
                                  feature_extractor, data_args.label_mode, augment_keys=data_args.feature_augment)
            eval_ds = precompute(eval_ds, eval_transform, data_args.preprocessing_num_workers, "validation",
                                 feature_extractor, None)
            if selection_ds is not None:
                selection_ds = precompute(selection_ds, eval_transform, data_args.preprocessing_num_workers,
                                          "selection holdout", feature_extractor, None)
    else:
        for ds, transform in ((train_ds, train_transform), (eval_ds, eval_transform), (selection_ds, eval_transform)):
            if ds is not None:
                ds.set_transform(transform)
    return ClipSplits(train_ds, eval_ds, selection_ds)



def precompute(ds, transform, num_proc: int | None, split: str, feature_extractor, label_mode: str | None,
               augment_keys: bool = False):
    """Apply ``transform`` once with ``Dataset.map`` (cached by datasets as Arrow files) -> torch format.

    The map is fingerprinted by datasets from the dataset and the transform (feature extractor
    settings included), so a rerun with the same settings reuses the cache.  Features are stored
    as fixed-shape ``Array3D`` (read back as one block per batch; nested lists cost ~2 ms a row).
    The shapes come from the extractor's settings: running it here, before ``map`` forks its
    workers, would leave torch's thread pool in a state that hangs them.
    """
    # the label column's type follows what training_targets returns for this mode (validation: soft)
    targets = training_targets(np.ones((1, 8)), label_mode or "soft")
    columns = {
        "input_features": datasets.Array3D(shape=feature_extractor.feature_shape, dtype="float32"),
        "labels": datasets.List(datasets.Value("float32")) if targets.ndim == 2 else datasets.Value("int64"),
    }
    if feature_extractor.return_attention_mask:
        columns["attention_mask"] = datasets.List(datasets.Value("int32"))
    if augment_keys:
        columns["augment_key"] = datasets.Value("int64")
    mapped = ds.map(transform, batched=True, batch_size=32, num_proc=num_proc, remove_columns=ds.column_names,
                    features=datasets.Features(columns), desc=f"features ({split})")
    return mapped.with_format("torch")
