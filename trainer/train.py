"""Training and evaluation of the HouseX classifier with the Hugging Face ``Trainer``.

Shaped after transformers' ``run_audio_classification.py``: three argument dataclasses (parsed by
``HfArgumentParser`` from the command line and/or a YAML/JSON file) -> ``load_dataset(..., "clips")``
(or a release folder built first) -> label mode -> features computed on the fly with
``with_transform`` -> ``Trainer`` -> evaluation -> ``metrics.json``, confusion-matrix PNG, model
card, ``save_pretrained`` (safetensors + feature extractor + custom code) -> optional Hub push.

``main(model_args, data_args, training_args)`` is what ``trainer/run.py``, the grid and the tests
call; ``parse_args(argv)`` turns ``CONFIG.yaml --key value ...`` into the three dataclasses.
Augmentation lives in ``augmentation.py``, the model card and the Hub push in ``card.py``, the
confusion-matrix figure in ``plots.py``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import evaluate
import numpy as np
import torch
import transformers
import yaml
from transformers import DataCollatorWithPadding, HfArgumentParser, Trainer, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from ..dataset_script.builder import HouseXBuilder, HouseXBuilderConfig
from ..dataset_script.genres import GENRES, LABEL_MODES, sharpen_ids
from ..modeling import HouseXConfig, HouseXFeatureExtractor, HouseXForAudioClassification, register_auto_classes
from . import METRIC_FILE, peer_models
from .augmentation import AugmentEpochCallback, FeatureAugmentCollator, SeededAugmenter, clip_keys
from .card import push_folder_to_hub, write_model_card
from .plots import plot_confusion

logger = logging.getLogger("housex.trainer")



# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------
@dataclass
class DataTrainingArguments:
    """Where the clips come from and how they are labelled."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Dataset folder (Parquet + README.md with configs) or Hub id, loaded with load_dataset."},
    )
    dataset_config_name: str = field(default="clips", metadata={"help": "Dataset config with 7.5 s drop clips."})
    release_dirs: list[str] | None = field(
        default=None,
        metadata={"help": "Release folder(s) (audio + Label-Studio export) to build the dataset from instead."},
    )
    build_dir: str | None = field(
        default=None,
        metadata={"help": "Cache folder of the dataset built from --release_dirs (default: the datasets cache)."},
    )
    build_options: str | None = field(
        default=None,
        metadata={"help": "Builder options for --release_dirs as KEY=VALUE,... e.g. 'clip_seconds=2,min_drop_seconds=4' "
                  "(fields of HouseXBuilderConfig)."},
    )
    train_split_name: str = field(default="train")
    eval_split_name: str = field(default="validation")
    audio_column_name: str = field(default="audio")
    label_column_name: str = field(default="soft_label", metadata={"help": "Column of 8 genre weights."})
    label_mode: str = field(
        default="soft",
        metadata={"help": "Training targets: 'soft' (weights as is), 'sharpen' (class of the max weight, ties to the "
                  "last genre) or 'clean' (only clips whose track has one genre at weight 1). Validation always "
                  "keeps the soft labels; the metric sharpens them, so every mode is scored on the same clips."},
    )
    max_length_seconds: float | None = field(
        default=None, metadata={"help": "Cut clips to this many seconds before the feature extractor (default: whole clip)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate train (debugging, tests)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate validation (debugging, tests)."})
    augment: bool = field(
        default=False,
        metadata={"help": "audiomentations on training clips: gain, Gaussian noise, pitch shift of at most 1 semitone "
                  "and a peaking EQ. No time-stretch: tempo (BPM) is a genre cue."},
    )
    augment_probability: float = field(default=0.5, metadata={"help": "Probability of each augmentation."})
    feature_augment: bool = field(
        default=False,
        metadata={"help": "Augment training features (also with --precompute_features): circular time "
                  "shift, a spectral tilt of up to +-4 dB at the band edges, one frequency and one time mask "
                  "of up to 1/8 of the bands / frames (SpecAugment). Deterministic per (seed, epoch, clip)."},
    )
    precompute_features: bool = field(
        default=False,
        metadata={"help": "Decode and featurise every clip once with Dataset.map (cached as Arrow by datasets, "
                  "reused by later runs) instead of on the fly each epoch. Much faster for several epochs on a "
                  "CPU; not combinable with --augment (augmentation must differ per epoch)."},
    )
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes for --precompute_features (Dataset.map num_proc)."}
    )
    class_weights: bool = field(
        default=False,
        metadata={"help": "Loss weights per class proportional to 1 / (summed training targets), as the paper; "
                  "stored in the model config (class_weights)."},
    )
    dataset_is_synthetic: bool | None = field(
        default=None,
        metadata={"help": "Say so on the model card; default: detected from the dataset card/description."},
    )

    def __post_init__(self):
        if self.label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode={self.label_mode!r}: expected one of {', '.join(LABEL_MODES)}")
        if self.dataset_name is None and not self.release_dirs:
            raise ValueError("give a dataset (--dataset_name FOLDER_OR_HUB_ID) or release folders (--release_dirs DIR ...)")
        if self.dataset_name is not None and self.release_dirs:
            raise ValueError("give either --dataset_name or --release_dirs, not both")
        if self.precompute_features and self.augment:
            raise ValueError("precompute_features and augment exclude each other: augmented clips differ per epoch")
        if not 0.0 <= self.augment_probability <= 1.0:
            raise ValueError(f"augment_probability={self.augment_probability} must lie in [0, 1]")


@dataclass
class ModelArguments:
    """A new model from these sizes, or a trained one from ``model_name_or_path``.

    Fields left at ``None`` keep the default of ``HouseXConfig`` / ``HouseXFeatureExtractor`` (or of
    the loaded model).
    """

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Trained HouseX folder or Hub id, or any AutoModelForAudioClassification (AST, wav2vec2, "
                  "HuBERT, Whisper, ...) with its feature extractor: trained with our labels and loss."},
    )
    config_name: str | None = field(
        default=None,
        metadata={"help": "Config (folder or Hub id, with its feature extractor) of any AutoModelForAudioClassification "
                  "to train from random weights."},
    )
    freeze_feature_encoder: bool = field(
        default=False, metadata={"help": "Freeze the convolutional feature encoder (wav2vec2, HuBERT, ...)."}
    )
    backbone: str | None = field(default=None, metadata={"help": "torchvision model name, e.g. resnet18, resnet152."})
    backbone_pretrained: bool | None = field(default=None, metadata={"help": "Start from ImageNet weights."})
    backbone_weights_path: str | None = field(default=None, metadata={"help": "Local ImageNet weights file."})
    backbone_head: str | None = field(default=None, metadata={"help": "'imagenet' (paper) or 'replace'."})
    backbone_chunk_size: int | None = field(default=None, metadata={"help": "Max patches per backbone call."})
    n_mels: int | None = field(default=None, metadata={"help": "Mel bands = patch height and width."})
    patch_hop: int | None = field(default=None, metadata={"help": "Patch hop along time, in frames."})
    d_model: int | None = field(default=None)
    num_hidden_layers: int | None = field(default=None)
    num_attention_heads: int | None = field(default=None)
    intermediate_size: int | None = field(default=None)
    hidden_dropout_prob: float | None = field(default=None)
    classifier_dropout: float | None = field(default=None)
    pooling: str | None = field(default=None, metadata={"help": "'first' (paper), 'cls' or 'mean'."})
    use_chroma: bool | None = field(default=None, metadata={"help": "Planes 2-3 = chroma_cqt / chroma_vqt."})
    sampling_rate: int | None = field(default=None, metadata={"help": "Feature extractor sampling rate."})
    n_fft: int | None = field(default=None)
    hop_length: int | None = field(default=None)
    clip_seconds: float | None = field(default=None, metadata={"help": "Clip length the feature extractor expects."})

    def config_overrides(self) -> dict:
        keys = (
            "backbone", "backbone_pretrained", "backbone_weights_path", "backbone_head", "backbone_chunk_size",
            "patch_hop", "d_model", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "hidden_dropout_prob", "classifier_dropout", "pooling",
        )
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if self.n_mels is not None:
            out["patch_size"] = self.n_mels  # square patches: height = width = mel bands
        return out

    def feature_extractor_overrides(self) -> dict:
        keys = ("n_mels", "use_chroma", "sampling_rate", "n_fft", "hop_length", "clip_seconds")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass
class HouseXTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus the paper's StepLR schedule."""

    step_lr_step_size: int = field(
        default=0,
        metadata={"help": "If > 0: StepLR (multiply the learning rate by step_lr_gamma every this many "
                  "optimizer steps) instead of lr_scheduler_type. The paper: 256."},
    )
    step_lr_gamma: float = field(default=0.9, metadata={"help": "StepLR factor (paper: 0.9)."})


# Numeric options -> (what they must be, test); None values are "not set" and pass.  Non-finite
# floats (nan, inf) always fail.  Checked before anything is read or written.
_AT_LEAST_1 = ("an integer ≥ 1", lambda v: v >= 1)
_NON_NEGATIVE = ("≥ 0", lambda v: v >= 0)
_POSITIVE = ("> 0", lambda v: v > 0)
_PROBABILITY = ("in [0, 1]", lambda v: 0 <= v <= 1)
_DROPOUT = ("in [0, 1)", lambda v: 0 <= v < 1)
NUMERIC_RULES = {
    **dict.fromkeys(("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                     "eval_accumulation_steps", "max_train_samples", "max_eval_samples",
                     "preprocessing_num_workers", "backbone_chunk_size", "n_mels", "patch_hop", "d_model",
                     "num_hidden_layers", "num_attention_heads", "intermediate_size", "sampling_rate", "n_fft",
                     "hop_length", "save_total_limit"), _AT_LEAST_1),
    **dict.fromkeys(("learning_rate", "num_train_epochs", "weight_decay", "max_grad_norm", "warmup_steps",
                     "dataloader_num_workers", "seed", "step_lr_step_size", "label_smoothing_factor"), _NON_NEGATIVE),
    **dict.fromkeys(("adam_epsilon", "step_lr_gamma", "clip_seconds", "logging_steps", "eval_steps", "save_steps"),
                    _POSITIVE),
    **dict.fromkeys(("augment_probability",), _PROBABILITY),
    **dict.fromkeys(("hidden_dropout_prob", "classifier_dropout", "adam_beta1", "adam_beta2"), _DROPOUT),
}


def check_arguments(model_args, data_args, training_args) -> None:
    """Refuse bad option values with one line naming the option, before anything is read or written.

    Numbers must be finite and in range (:data:`NUMERIC_RULES`; ``max_steps`` is -1 or ≥ 1); the
    ``output_dir`` must not be, contain or sit inside the dataset folder or a release folder
    (:func:`check_output_path`: a run's checkpoints never land in, or replace, its inputs).
    """
    from ..dataset_script.paths import check_output_path

    for args in (model_args, data_args, training_args):
        for f in dataclasses.fields(args):
            rule = NUMERIC_RULES.get(f.name)
            value = getattr(args, f.name, None)
            if rule is None or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            what, ok = rule
            if not math.isfinite(value) or not ok(value):
                raise ValueError(f"--{f.name}: must be {what}, got {value}")
    steps = training_args.max_steps
    if steps is not None and steps != -1 and steps < 1:
        raise ValueError(f"--max_steps: must be -1 (use num_train_epochs) or an integer ≥ 1, got {steps}")
    if training_args.do_train and steps == -1 and training_args.num_train_epochs <= 0:
        raise ValueError(f"--num_train_epochs: must be > 0 to train, got {training_args.num_train_epochs}")
    inputs = list(data_args.release_dirs or [])
    if data_args.dataset_name:
        inputs.append(data_args.dataset_name)
    if training_args.output_dir:
        check_output_path(training_args.output_dir, inputs, option="--output_dir")


def _resolve_bf16(value) -> bool:
    """``bf16: auto`` -> True on a CUDA GPU with bf16 support, False elsewhere."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return value


def load_config_file(path: str | os.PathLike) -> dict:
    """A YAML or JSON file of argument names -> values."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: config file not found") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML ({e})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of argument names to values, got {type(data).__name__}")
    return data


def parse_args(argv: list[str] | None = None, **overrides):
    """``[CONFIG.yaml|.json] [--name value ...]`` -> (ModelArguments, DataTrainingArguments, TrainingArguments).

    Precedence: the file < ``overrides`` (Python keyword arguments) < command-line flags.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, HouseXTrainingArguments))
    file_values: dict = {}
    source = "arguments"
    if argv and not argv[0].startswith("-") and Path(argv[0]).suffix.lower() in (".yaml", ".yml", ".json"):
        source = argv[0]
        file_values = load_config_file(argv.pop(0))
    file_values.update(overrides)
    known = {a.dest for a in parser._actions}
    unknown = sorted(set(file_values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown argument(s) {', '.join(unknown)}")
    if "bf16" in file_values:
        file_values["bf16"] = _resolve_bf16(file_values["bf16"])
    for i, tok in enumerate(argv):
        if tok == "--bf16" and i + 1 < len(argv) and argv[i + 1].lower() == "auto":
            argv[i + 1] = str(_resolve_bf16("auto"))
    parser.set_defaults(**file_values)
    model_args, data_args, training_args, rest = parser.parse_args_into_dataclasses(
        args=argv, return_remaining_strings=True
    )
    if rest:
        raise ValueError(f"unknown command-line argument(s): {' '.join(rest)}")
    return model_args, data_args, training_args


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
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
        try:
            raw = datasets.load_dataset(source, data_args.dataset_config_name)
        except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as e:
            raise FileNotFoundError(f"dataset {source!r} (config {data_args.dataset_config_name!r}) not found: {e}") from None
    for split in (data_args.train_split_name, data_args.eval_split_name):
        if split not in raw:
            raise ValueError(f"dataset {source!r} has no split {split!r} (has {', '.join(raw)})")
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


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------
def build_feature_extractor(model_args: ModelArguments, clip_seconds: float | None = None):
    """From ``model_name_or_path`` or new; ``clip_seconds`` (the dataset's clip length) unless set."""
    if peer_models.is_peer(model_args):
        return peer_models.load_feature_extractor(model_args)
    overrides = model_args.feature_extractor_overrides()
    if clip_seconds is not None and not model_args.model_name_or_path:
        overrides.setdefault("clip_seconds", clip_seconds)
    if model_args.model_name_or_path:
        return HouseXFeatureExtractor.from_pretrained(model_args.model_name_or_path, **overrides)
    return HouseXFeatureExtractor(**overrides)


def build_model(model_args: ModelArguments, feature_extractor, class_weights: list[float] | None):
    if peer_models.is_peer(model_args):
        return peer_models.build_model(model_args, class_weights)
    overrides = model_args.config_overrides()
    if model_args.model_name_or_path:
        config = HouseXConfig.from_pretrained(model_args.model_name_or_path, **overrides)
        config.class_weights = class_weights
        return HouseXForAudioClassification.from_pretrained(model_args.model_name_or_path, config=config)
    n_mels = int(feature_extractor.n_mels)
    if overrides.setdefault("patch_size", n_mels) != n_mels:
        raise ValueError(f"patch_size={overrides['patch_size']} must equal the feature extractor's n_mels={n_mels}")
    num_channels = getattr(feature_extractor, "num_channels", None)
    if num_channels is not None:
        overrides.setdefault("num_channels", int(num_channels))
    config = HouseXConfig(class_weights=class_weights, **overrides)
    return HouseXForAudioClassification(config)


class HouseXTrainer(Trainer):
    """``Trainer`` with the paper's StepLR when ``args.step_lr_step_size > 0``."""

    def create_scheduler(self, num_training_steps, optimizer=None):
        if self.lr_scheduler is None and getattr(self.args, "step_lr_step_size", 0) > 0:
            self.lr_scheduler = torch.optim.lr_scheduler.StepLR(
                optimizer if optimizer is not None else self.optimizer,
                step_size=self.args.step_lr_step_size,
                gamma=self.args.step_lr_gamma,
            )
            self._created_lr_scheduler = True
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

    def _save(self, output_dir=None, state_dict=None):
        # Trainer pickles the arguments to training_args.bin; we keep no pickles: JSON instead.
        super()._save(output_dir, state_dict)
        if not self.args.should_save:
            return
        folder = Path(output_dir if output_dir is not None else self.args.output_dir)
        (folder / "training_args.bin").unlink(missing_ok=True)
        (folder / "training_args.json").write_text(self.args.to_json_string() + "\n", encoding="utf-8")


class PeerTrainer(peer_models.SoftLabelLossMixin, HouseXTrainer):
    """``HouseXTrainer`` for any HF audio classifier: the HouseX soft-label loss from its logits."""


# --------------------------------------------------------------------------------------------
# The steps of main
# --------------------------------------------------------------------------------------------
def setup_logging(training_args) -> None:
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if training_args.should_log else logging.WARNING,
    )
    if not training_args.should_log:
        transformers.utils.logging.set_verbosity_warning()
        datasets.utils.logging.set_verbosity_warning()
    logger.warning(
        "process %d of %d, device %s, parallel mode %s, bf16 %s",
        training_args.process_index, training_args.world_size, training_args.device,
        training_args.parallel_mode.value, training_args.bf16,
    )


def select_clips(raw, data_args: DataTrainingArguments, training_args, source: str):
    """``(train, validation)`` splits after the label mode's filter and the ``max_*_samples`` truncation."""
    train_ds = raw[data_args.train_split_name]
    eval_ds = raw[data_args.eval_split_name]
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
    return train_ds, eval_ds


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


def add_features(train_ds, eval_ds, feature_extractor, augmenter, data_args: DataTrainingArguments, training_args):
    """Both splits with ``input_features`` + ``labels``: on the fly (``set_transform``) or precomputed."""
    train_transform = make_transform(feature_extractor, audio_column=data_args.audio_column_name,
                                     label_column=data_args.label_column_name, label_mode=data_args.label_mode,
                                     augmenter=augmenter, augment_keys=data_args.feature_augment,
                                     max_length_seconds=data_args.max_length_seconds)
    eval_transform = make_transform(feature_extractor, audio_column=data_args.audio_column_name,
                                    label_column=data_args.label_column_name, label_mode=None,
                                    max_length_seconds=data_args.max_length_seconds)
    if data_args.precompute_features:
        with training_args.main_process_first(desc="computing features"):
            train_ds = precompute(train_ds, train_transform, data_args.preprocessing_num_workers, "train",
                                  feature_extractor, data_args.label_mode, augment_keys=data_args.feature_augment)
            eval_ds = precompute(eval_ds, eval_transform, data_args.preprocessing_num_workers, "validation",
                                 feature_extractor, None)
    else:
        train_ds.set_transform(train_transform)
        eval_ds.set_transform(eval_transform)
    return train_ds, eval_ds


class MetricScorer:
    """``compute_metrics`` for the Trainer with the HouseX metric; keeps the last full scores (the
    confusion matrix too) for metrics.json, while only scalars go to the Trainer's logs."""

    def __init__(self, metric):
        self.metric = metric
        self.last: dict = {}

    def __call__(self, eval_pred):
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        self.last = self.metric.compute(predictions=logits, references=eval_pred.label_ids, prediction_type="logits")
        return {k: v for k, v in self.last.items() if isinstance(v, (int, float))}

    @staticmethod
    def logits_only(logits, labels):
        """``preprocess_logits_for_metrics``: the model also returns pooled embeddings and patch masks."""
        return logits[0] if isinstance(logits, tuple) else logits


def resume_checkpoint(training_args):
    """``resume_from_checkpoint`` with ``last``/``latest``/``true`` resolved to the newest checkpoint."""
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("last", "latest", "true"):
        resume = get_last_checkpoint(training_args.output_dir)
        if resume is None:
            raise FileNotFoundError(f"resume_from_checkpoint=last: no checkpoint-* folder in {training_args.output_dir}")
    return resume


def save_outputs(out_dir: Path, metrics: dict, trainer, *, model_args, data_args, training_args, feature_extractor,
                 synthetic: bool, push_repo: str | None) -> None:
    """metrics.json, confusion_matrix.png and the model card (README.md) next to the model; then the Hub push."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    plot_confusion(metrics["confusion_matrix"], out_dir / "confusion_matrix.png",
                   title=f"HouseX validation ({data_args.label_mode} labels)")
    write_model_card(out_dir, metrics=metrics, model=trainer.model, model_args=model_args,
                     data_args=data_args, training_args=training_args, feature_extractor=feature_extractor,
                     synthetic=synthetic, repo_id=push_repo)
    logger.info("saved model, metrics.json, confusion_matrix.png and README.md to %s", out_dir)
    if push_repo:
        url = push_folder_to_hub(out_dir, push_repo, token=training_args.hub_token,
                                 private=training_args.hub_private_repo)
        logger.info("pushed to the Hub: %s", url)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def main(model_args: ModelArguments, data_args: DataTrainingArguments, training_args, *, callbacks=None) -> dict:
    """Train (when ``do_train``), evaluate, save.  Returns the metrics (as written to metrics.json)."""
    # 1. arguments
    check_arguments(model_args, data_args, training_args)
    setup_logging(training_args)
    set_seed(training_args.seed)
    if not training_args.do_train and not model_args.model_name_or_path:
        raise ValueError("do_train is false and no model_name_or_path is given: nothing to evaluate")
    # Our evaluation needs the raw columns (audio, soft_label) inside the transform.
    training_args.remove_unused_columns = False
    push_repo = None
    if training_args.push_to_hub:
        # Pushed at the very end with our own call, so an offline machine trains and saves first.
        push_repo = training_args.hub_model_id or Path(training_args.output_dir).name
        training_args.push_to_hub = False

    # 2. data
    raw, source = load_clip_datasets(data_args, training_args)
    synthetic = data_args.dataset_is_synthetic
    if synthetic is None:
        synthetic = dataset_looks_synthetic(raw[data_args.train_split_name], data_args)
    train_ds, eval_ds = select_clips(raw, data_args, training_args, source)

    # 3. features (a peer model brings its own extractor)
    peer = peer_models.is_peer(model_args)
    if peer:
        peer_models.check_data_args(data_args, model_args)
    feature_extractor = build_feature_extractor(model_args, clip_seconds_of(train_ds if len(train_ds) else eval_ds))
    audio_feature = datasets.Audio(sampling_rate=int(feature_extractor.sampling_rate))
    train_ds = train_ds.cast_column(data_args.audio_column_name, audio_feature)
    eval_ds = eval_ds.cast_column(data_args.audio_column_name, audio_feature)
    weights = None
    if data_args.class_weights:
        soft = np.asarray(train_ds[data_args.label_column_name], dtype=np.float64)
        weights = class_weights_from_targets(training_targets(soft, data_args.label_mode), len(GENRES))
        logger.info("class weights: %s", [round(w, 3) for w in weights])
    augmenter, collator, augment_callbacks = build_augmentation(data_args, training_args, feature_extractor)
    train_ds, eval_ds = add_features(train_ds, eval_ds, feature_extractor, augmenter, data_args, training_args)

    # 4. model (Auto classes + auto_map so the saved folder loads with pipeline(..., trust_remote_code=True))
    register_auto_classes()
    model = build_model(model_args, feature_extractor, weights)
    if list(model.config.id2label.values()) != list(GENRES):
        raise ValueError(f"model {model_args.model_name_or_path!r}: labels {list(model.config.id2label.values())} "
                         f"are not the 8 HouseX genres in canonical order")

    # 5. Trainer
    with training_args.main_process_first(desc="loading the metric"):
        scorer = MetricScorer(evaluate.load(str(METRIC_FILE)))
    trainer = (PeerTrainer if peer else HouseXTrainer)(
        model=model,
        args=training_args,
        train_dataset=train_ds if training_args.do_train else None,
        eval_dataset=eval_ds,
        processing_class=feature_extractor,
        data_collator=collator,  # None: the Trainer's default (padding with the feature extractor)
        compute_metrics=scorer,
        preprocess_logits_for_metrics=MetricScorer.logits_only,
        callbacks=[*(callbacks or []), *augment_callbacks],
    )
    train_metrics: dict = {}
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=resume_checkpoint(training_args))
        train_metrics = dict(result.metrics)
        trainer.save_model()  # safetensors + config + custom code (+ feature extractor via processing_class)
        trainer.save_state()

    # 6. evaluate
    eval_metrics = {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()}
    metrics = {
        **eval_metrics,
        "confusion_matrix": scorer.last.get("confusion_matrix"),
        "labels": list(GENRES),
        "label_mode": data_args.label_mode,
        "model_name_or_path": model_args.model_name_or_path,
        "config_name": model_args.config_name,
        "dataset": source,
        "dataset_config": data_args.dataset_config_name,
        "synthetic_dataset": bool(synthetic),
        "num_train_clips": len(train_ds) if training_args.do_train else 0,
        "num_eval_clips": len(eval_ds),
        "train": train_metrics,
    }

    # 7. save
    if not training_args.do_train:
        trainer.save_model()  # an evaluated model folder is complete too (card, metrics, weights)
    if trainer.is_world_process_zero():
        save_outputs(Path(training_args.output_dir), metrics, trainer, model_args=model_args, data_args=data_args,
                     training_args=training_args, feature_extractor=feature_extractor, synthetic=bool(synthetic),
                     push_repo=push_repo)
    trainer.accelerator.wait_for_everyone()
    return metrics


def cli(argv: list[str] | None = None) -> int:
    model_args, data_args, training_args = parse_args(argv)
    main(model_args, data_args, training_args)
    return 0


__all__ = [
    "DataTrainingArguments",
    "ModelArguments",
    "HouseXTrainingArguments",
    "parse_args",
    "main",
    "cli",
    "training_targets",
    "class_weights_from_targets",
]
