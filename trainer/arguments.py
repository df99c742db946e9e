"""The arguments of a training run: three dataclasses, their checks, and the YAML/JSON config file.

``parse_args(argv)`` turns ``[CONFIG.yaml|.json] [--name value ...]`` into ``(ModelArguments,
DataTrainingArguments, HouseXTrainingArguments)`` with ``HfArgumentParser``, as transformers'
example scripts do; ``check_arguments`` refuses bad values with one line naming the option.

What a field is, is said once, in its metadata (besides ``help``): ``"config"`` / ``"feature_extractor"``
name the ``HouseXConfig`` / ``HouseXFeatureExtractor`` argument it sets (the HouseX-model options,
which a peer model ignores), ``"rule"`` the range a number must lie in (:class:`NumericRule`),
``"one_of"`` the values a string option may take.  The
fields that ``TrainingArguments`` brings get their rules from :data:`TRAINING_ARGUMENT_RULES`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Callable, NamedTuple

import torch
import yaml
from transformers import HfArgumentParser, TrainingArguments

from ..dataset_script.genres import LABEL_MODES


class NumericRule(NamedTuple):
    """What a numeric option must be (said in the error) and the test of a value; ``None`` ("not set")
    passes, non-finite floats (nan, inf) always fail."""

    what: str
    ok: Callable[[float], bool]


AT_LEAST_1 = NumericRule("an integer ≥ 1", lambda v: v >= 1)
NON_NEGATIVE = NumericRule("≥ 0", lambda v: v >= 0)
POSITIVE = NumericRule("> 0", lambda v: v > 0)
PROBABILITY = NumericRule("in [0, 1]", lambda v: 0 <= v <= 1)
DROPOUT = NumericRule("in [0, 1)", lambda v: 0 <= v < 1)
OPEN_UNIT = NumericRule("in (0, 1)", lambda v: 0 < v < 1)
AT_LEAST_10 = NumericRule("an integer ≥ 10", lambda v: v >= 10)

#: ``--checkpoint_selection``: which data chooses the checkpoint that is scored (see its help).
CHECKPOINT_SELECTIONS = ("holdout", "last", "validation")

#: Rules of the ``TrainingArguments`` fields (transformers' own; ours carry theirs in their metadata).
TRAINING_ARGUMENT_RULES: dict[str, NumericRule] = {
    **dict.fromkeys(("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                     "eval_accumulation_steps", "save_total_limit"), AT_LEAST_1),
    **dict.fromkeys(("learning_rate", "num_train_epochs", "weight_decay", "max_grad_norm", "warmup_steps",
                     "dataloader_num_workers", "seed", "label_smoothing_factor"), NON_NEGATIVE),
    **dict.fromkeys(("adam_epsilon", "logging_steps", "eval_steps", "save_steps"), POSITIVE),
    **dict.fromkeys(("adam_beta1", "adam_beta2"), DROPOUT),
}

# Metadata keys of ours, not argparse's (HfArgumentParser passes metadata to add_argument).
_OWN_METADATA = ("config", "feature_extractor", "rule", "one_of")


# --------------------------------------------------------------------------------------------
# The three dataclasses
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
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Truncate train (debugging, tests).", "rule": AT_LEAST_1}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Truncate validation (debugging, tests).", "rule": AT_LEAST_1}
    )
    augment: bool = field(
        default=False,
        metadata={"help": "audiomentations on training clips: gain, Gaussian noise, pitch shift of at most 1 semitone "
                  "and a peaking EQ. No time-stretch: tempo (BPM) is a genre cue."},
    )
    augment_probability: float = field(
        default=0.5, metadata={"help": "Probability of each augmentation.", "rule": PROBABILITY}
    )
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
        default=None,
        metadata={"help": "Processes for --precompute_features (Dataset.map num_proc).", "rule": AT_LEAST_1},
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
    fold: int | None = field(
        default=None,
        metadata={"help": "Cross-validation on a dataset built with `housex build --folds K`: the tracks of fold k "
                  "(of both splits) are the validation set, all other tracks train.", "rule": NON_NEGATIVE},
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
    the loaded model).  A field whose metadata names a ``"config"`` and/or ``"feature_extractor"``
    argument describes a HouseX model (:meth:`housex_fields`; a peer model ignores them) and is passed
    on under that name (:meth:`config_overrides`, :meth:`feature_extractor_overrides`).
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
    freeze_encoder: bool = field(
        default=False, metadata={"help": "Freeze the whole pretrained encoder: only the layer weights, pooling and "
                                 "head train (a probe trained end to end)."}
    )
    encoder_classifier: bool = field(
        default=False,
        metadata={"help": "Train the encoder with our classifier (HouseXEncoderClassifierForAudioClassification: "
                  "weighted layer sum, masked pooling, 8-genre head) even when it has its own audio-classification "
                  "class. Always used for encoders without one (CLAP, Qwen2-Audio, MERT, ...)."},
    )
    encoder_layer: str = field(
        default="weighted",
        metadata={"help": "Encoder classifier: 'weighted' (softmax-weighted sum of all hidden states), 'last', or "
                  "the index of one hidden state (0 = the embeddings' output)."},
    )
    time_pooling: str = field(
        default="mean", metadata={"help": "Encoder classifier: 'mean' (masked mean over real frames) or 'attention'."}
    )
    use_weighted_layer_sum: bool = field(
        default=False,
        metadata={"help": "The native audio-classification class's own learned weighted sum of layers (wav2vec2, "
                  "HuBERT, WavLM, Data2VecAudio, SEW, UniSpeech, Whisper, ...; not AST)."},
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow the encoder's own Hub code."})
    backbone: str | None = field(
        default=None, metadata={"help": "torchvision model name, e.g. resnet18, resnet152.", "config": "backbone"}
    )
    backbone_pretrained: bool | None = field(
        default=None, metadata={"help": "Start from ImageNet weights.", "config": "backbone_pretrained"}
    )
    backbone_weights_path: str | None = field(
        default=None, metadata={"help": "Local ImageNet weights file.", "config": "backbone_weights_path"}
    )
    backbone_head: str | None = field(
        default=None, metadata={"help": "'imagenet' (paper) or 'replace'.", "config": "backbone_head"}
    )
    backbone_chunk_size: int | None = field(
        default=None,
        metadata={"help": "Max patches per backbone call.", "config": "backbone_chunk_size", "rule": AT_LEAST_1},
    )
    # square patches: height = width = mel bands
    n_mels: int | None = field(
        default=None,
        metadata={"help": "Mel bands = patch height and width.", "config": "patch_size", "feature_extractor": "n_mels",
                  "rule": AT_LEAST_1},
    )
    patch_hop: int | None = field(
        default=None, metadata={"help": "Patch hop along time, in frames.", "config": "patch_hop", "rule": AT_LEAST_1}
    )
    d_model: int | None = field(default=None, metadata={"config": "d_model", "rule": AT_LEAST_1})
    num_hidden_layers: int | None = field(default=None, metadata={"config": "num_hidden_layers", "rule": AT_LEAST_1})
    num_attention_heads: int | None = field(default=None, metadata={"config": "num_attention_heads", "rule": AT_LEAST_1})
    intermediate_size: int | None = field(default=None, metadata={"config": "intermediate_size", "rule": AT_LEAST_1})
    hidden_dropout_prob: float | None = field(default=None, metadata={"config": "hidden_dropout_prob", "rule": DROPOUT})
    classifier_dropout: float | None = field(default=None, metadata={"config": "classifier_dropout", "rule": DROPOUT})
    pooling: str | None = field(default=None, metadata={"help": "'first' (paper), 'cls' or 'mean'.", "config": "pooling"})
    use_chroma: bool | None = field(
        default=None, metadata={"help": "Planes 2-3 = chroma_cqt / chroma_vqt.", "feature_extractor": "use_chroma"}
    )
    sampling_rate: int | None = field(
        default=None,
        metadata={"help": "Feature extractor sampling rate.", "feature_extractor": "sampling_rate", "rule": AT_LEAST_1},
    )
    n_fft: int | None = field(default=None, metadata={"feature_extractor": "n_fft", "rule": AT_LEAST_1})
    hop_length: int | None = field(default=None, metadata={"feature_extractor": "hop_length", "rule": AT_LEAST_1})
    clip_seconds: float | None = field(
        default=None,
        metadata={"help": "Clip length the feature extractor expects.", "feature_extractor": "clip_seconds",
                  "rule": POSITIVE},
    )

    def housex_fields(self) -> list[str]:
        """The options that describe a HouseX model (its config or feature extractor), in field order."""
        return [f.name for f in dataclasses.fields(self) if "config" in f.metadata or "feature_extractor" in f.metadata]

    def config_overrides(self) -> dict:
        """``HouseXConfig`` arguments of the options that are set."""
        return self._set_options("config")

    def feature_extractor_overrides(self) -> dict:
        """``HouseXFeatureExtractor`` arguments of the options that are set."""
        return self._set_options("feature_extractor")

    def _set_options(self, target: str) -> dict:
        return {
            f.metadata[target]: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if target in f.metadata and getattr(self, f.name) is not None
        }


@dataclass
class HouseXTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus the paper's StepLR schedule, the data that chooses the checkpoint and the
    intervals' bootstrap settings."""

    step_lr_step_size: int = field(
        default=0,
        metadata={"help": "If > 0: StepLR (multiply the learning rate by step_lr_gamma every this many "
                  "optimizer steps) instead of lr_scheduler_type. The paper: 256.", "rule": NON_NEGATIVE},
    )
    step_lr_gamma: float = field(default=0.9, metadata={"help": "StepLR factor (paper: 0.9).", "rule": POSITIVE})
    encoder_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of a peer model's pretrained encoder (its base model); the head, layer "
                  "weights and pooling keep learning_rate. Default: one learning rate for all.", "rule": POSITIVE},
    )
    checkpoint_selection: str | None = field(
        default=None,
        metadata={"help": "Which data chooses the checkpoint that is scored. 'holdout': the best checkpoint by "
                  "metric_for_best_model on a seeded share (--selection_fraction) of the TRAINING tracks, held out "
                  "of training; the validation split (or fold) is then scored once and never chooses anything. "
                  "'last': the final weights, nothing chosen. 'validation': the best checkpoint on the validation "
                  "split itself, the paper's protocol: its figures are optimistic (housex table marks them). "
                  "Default: holdout when load_best_model_at_end is true, else last.",
                  "one_of": CHECKPOINT_SELECTIONS},
    )
    selection_fraction: float = field(
        default=0.1,
        metadata={"help": "--checkpoint_selection holdout: the share of the training tracks held out to choose the "
                  "checkpoint (whole tracks, seeded by --seed, stratified on the sharpened track label where each "
                  "genre has enough tracks).", "rule": OPEN_UNIT},
    )
    bootstrap_level: float = field(
        default=0.95, metadata={"help": "Level of the intervals in metrics.json and the card (cluster bootstrap "
                                "over the validation tracks).", "rule": OPEN_UNIT})
    bootstrap_resamples: int = field(default=2000, metadata={"help": "Bootstrap resamples.", "rule": AT_LEAST_10})
    bootstrap_seed: int = field(
        default=0, metadata={"help": "Seed of the resamples: the same seed gives the same intervals.",
                             "rule": NON_NEGATIVE})


# --------------------------------------------------------------------------------------------
# Checks, config file, parsing
# --------------------------------------------------------------------------------------------
def numeric_rule(f: dataclasses.Field) -> NumericRule | None:
    """The range of a numeric option: from its metadata, else :data:`TRAINING_ARGUMENT_RULES`."""
    return f.metadata.get("rule") or TRAINING_ARGUMENT_RULES.get(f.name)


def check_arguments(model_args, data_args, training_args) -> None:
    """Refuse bad option values with one line naming the option, before anything is read or written.

    Numbers must be finite and in range (:func:`numeric_rule`; ``max_steps`` is -1 or ≥ 1), a string
    option with ``"one_of"`` one of them; ``checkpoint_selection`` agrees with ``load_best_model_at_end``
    (:func:`resolve_checkpoint_selection`, which also fills in its default); the ``output_dir`` must not
    be, contain or sit inside the dataset folder or a release folder (:func:`check_output_path`: a
    run's checkpoints never land in, or replace, its inputs).
    """
    from ..dataset_script.paths import check_output_path

    for args in (model_args, data_args, training_args):
        for f in dataclasses.fields(args):
            rule = numeric_rule(f)
            value = getattr(args, f.name, None)
            choices = f.metadata.get("one_of")
            if choices and value is not None and value not in choices:
                raise ValueError(f"--{f.name}: must be one of {', '.join(choices)}, got {value}")
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
    resolve_checkpoint_selection(training_args)
    inputs = list(data_args.release_dirs or [])
    if data_args.dataset_name:
        inputs.append(data_args.dataset_name)
    if training_args.output_dir:
        check_output_path(training_args.output_dir, inputs, option="--output_dir")


def resolve_checkpoint_selection(training_args) -> None:
    """Fill in ``checkpoint_selection`` (holdout when ``load_best_model_at_end``, else last) and refuse, in
    one line, a choice that ``load_best_model_at_end`` contradicts."""
    choice, best = getattr(training_args, "checkpoint_selection", None), training_args.load_best_model_at_end
    if choice is None:
        training_args.checkpoint_selection = "holdout" if best else "last"
    elif choice == "last" and best:
        raise ValueError("--checkpoint_selection last scores the final weights, but load_best_model_at_end is true: "
                         "add --load_best_model_at_end false")
    elif choice != "last" and not best:
        raise ValueError(f"--checkpoint_selection {choice} chooses the best checkpoint, but load_best_model_at_end is "
                         "false (the final weights would be scored: that is --checkpoint_selection last); set "
                         "--load_best_model_at_end true with an eval_strategy and save_strategy")


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
    parser = _ArgumentParser((ModelArguments, DataTrainingArguments, HouseXTrainingArguments))
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


class _ArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` that keeps our metadata keys (:data:`_OWN_METADATA`) out of argparse."""

    @staticmethod
    def _parse_dataclass_field(parser, field: dataclasses.Field):
        field = copy.copy(field)
        field.metadata = MappingProxyType({k: v for k, v in field.metadata.items() if k not in _OWN_METADATA})
        HfArgumentParser._parse_dataclass_field(parser, field)


__all__ = [
    "DataTrainingArguments",
    "ModelArguments",
    "HouseXTrainingArguments",
    "NumericRule",
    "TRAINING_ARGUMENT_RULES",
    "CHECKPOINT_SELECTIONS",
    "resolve_checkpoint_selection",
    "numeric_rule",
    "check_arguments",
    "load_config_file",
    "parse_args",
]
