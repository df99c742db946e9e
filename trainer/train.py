"""Training and evaluation of the HouseX classifier with the Hugging Face ``Trainer``.

Shaped after transformers' ``run_audio_classification.py``: three argument dataclasses (parsed by
``HfArgumentParser`` from the command line and/or a YAML/JSON file: ``arguments.py``) ->
``load_dataset(..., "clips")`` (or a release folder built first) -> label mode -> features computed
on the fly with ``with_transform`` (``data.py``) -> ``Trainer`` -> evaluation -> ``metrics.json``,
confusion-matrix PNG, model card, ``save_pretrained`` (safetensors + feature extractor + custom
code) -> optional Hub push.  The validation clips' probabilities go to ``predictions.parquet``, and the
scores of ``metrics.json`` are computed from them (``predictions.metrics_from_predictions``: the metric
module's figures, track-level figures, track-bootstrap intervals).

``main(model_args, data_args, training_args)`` is what ``trainer/run.py``, the grid and the tests
call; ``parse_args(argv)`` (in ``arguments.py``) turns ``CONFIG.yaml --key value ...`` into the three
dataclasses.  Augmentation lives in ``augmentation.py``, the model card and the Hub push in
``card.py``, the confusion-matrix figure in ``plots.py``, any other HF audio classifier in
``peer_models.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import datasets
import evaluate
import numpy as np
import torch
import transformers
from transformers import Trainer, set_seed

from ..dataset_script.genres import GENRES
from ..dataset_script.safe_write import OutputLock
from ..modeling import HouseXConfig, HouseXFeatureExtractor, HouseXForAudioClassification
from ..modeling.backbone_housex import BackboneWeightsUnavailable
from . import METRIC_FILE, peer_models
from .arguments import DataTrainingArguments, ModelArguments, check_arguments, parse_args
from .card import push_folder_to_hub, write_model_card
from .checkpoints import SafeSavingMixin, checkpoint_problem, last_complete_checkpoint
from .data import (
    ClipSplits,
    add_features,
    build_augmentation,
    class_weights_from_targets,
    clip_seconds_of,
    dataset_looks_synthetic,
    load_clip_datasets,
    num_folds,
    select_clips,
    training_targets,
)
from .plots import plot_confusion
from .predictions import Predictions, make_predictions, metric_module, metrics_from_predictions, scored_clips
from .predictions import write_predictions
from .statistics import Bootstrap

logger = logging.getLogger("housex.trainer")


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
    try:
        return HouseXForAudioClassification(config)
    except BackboneWeightsUnavailable as e:  # said in the options the user typed, not in Python
        raise OSError(
            f"--backbone_pretrained true: could not fetch the ImageNet weights of {e.backbone!r} from {e.url} "
            f"({e.reason}); download that file where there is internet and pass --backbone_weights_path "
            f"/path/to/{Path(e.url).name}, or train without --backbone_pretrained"
        ) from None


class HouseXTrainer(SafeSavingMixin, Trainer):
    """``Trainer`` with the paper's StepLR when ``args.step_lr_step_size > 0``; checkpoints and the
    final model survive a kill and a full disk (``checkpoints.SafeSavingMixin``)."""

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


class PeerTrainer(peer_models.EncoderLearningRateMixin, peer_models.SoftLabelLossMixin, HouseXTrainer):
    """``HouseXTrainer`` for any HF audio classifier or encoder: the HouseX soft-label loss from its logits,
    ``--encoder_learning_rate`` for its pretrained encoder."""


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
    # which process runs where: a line from every process when there are several (the others log
    # warnings only), nothing on a normal single-process run
    logger.log(
        logging.WARNING if training_args.world_size > 1 else logging.DEBUG,
        "process %d of %d, device %s, parallel mode %s, bf16 %s",
        training_args.process_index, training_args.world_size, training_args.device,
        training_args.parallel_mode.value, training_args.bf16,
    )


class MetricScorer:
    """``compute_metrics`` for the Trainer with the HouseX metric; keeps the last full scores (the
    confusion matrix too) for metrics.json, while only scalars go to the Trainer's logs."""

    def __init__(self, metric):
        self.metric = metric
        self.last: dict = {}
        self.last_logits: np.ndarray | None = None  # (N, 8) of the last evaluation, in the dataset's order

    def __call__(self, eval_pred):
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        self.last_logits = np.asarray(logits)
        self.last = self.metric.compute(predictions=logits, references=eval_pred.label_ids, prediction_type="logits")
        return {k: v for k, v in self.last.items() if isinstance(v, (int, float))}

    @staticmethod
    def logits_only(logits, labels):
        """``preprocess_logits_for_metrics``: the model also returns pooled embeddings and patch masks."""
        return logits[0] if isinstance(logits, tuple) else logits


def resume_checkpoint(training_args):
    """``resume_from_checkpoint`` with ``last``/``latest``/``true`` resolved to the newest COMPLETE
    checkpoint (one cut short by a kill or a full disk is skipped with a warning naming it; with
    none, training starts from the beginning, with a warning); a named checkpoint that is not
    complete is an error."""
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("last", "latest", "true"):
        resume = last_complete_checkpoint(training_args.output_dir)
        if resume is None:
            logger.warning("resume_from_checkpoint=last: no complete checkpoint-* folder in %s: training from the start",
                           training_args.output_dir)
    elif resume and (problem := checkpoint_problem(resume)) is not None:
        raise ValueError(f"--resume_from_checkpoint {resume}: {problem}")
    return resume


def scored_clip_ids(eval_ds, data_args: DataTrainingArguments) -> tuple[list[str], list[str], np.ndarray]:
    """``(clip ids, track ids, soft labels)`` of the validation clips, in the order they are scored.
    A dataset without ``track_id`` / ``clip_start`` / ``clip_end`` gets one "track" per clip (its
    intervals then treat the clips as independent, which a warning says)."""
    try:
        return scored_clips(eval_ds, data_args.label_column_name)
    except ValueError as e:
        logger.warning("%s: each clip is its own track in predictions.parquet; the intervals treat the clips as "
                       "independent", e)
        ids = [f"clip{i:06d}" for i in range(len(eval_ds))]
        return ids, ids, np.asarray(eval_ds[data_args.label_column_name], dtype=np.float64)


def holdout_counts(selection_ds) -> dict | None:
    """Tracks and clips of the checkpoint-selection holdout (None: no holdout), with its track ids."""
    if selection_ds is None:
        return None
    tracks = sorted(set(selection_ds["track_id"])) if "track_id" in selection_ds.column_names else []
    return {"holdout_tracks": len(tracks) or len(selection_ds), "holdout_clips": len(selection_ds),
            "holdout_track_ids": tracks}


def checkpoint_selection_record(trainer, training_args, holdout: dict | None) -> dict | None:
    """What chose the scored weights, for metrics.json: the rule, the data and metric it chose on, and the
    chosen step and epoch (None when this run did not train: a trained model evaluated as it is)."""
    if not training_args.do_train:
        return None
    rule, state = training_args.checkpoint_selection, trainer.state
    record = {"rule": rule}
    if rule == "last":
        record.update(chosen_on=None, step=state.global_step, epoch=state.epoch)
    else:
        step = state.best_global_step or state.global_step  # unset only when no evaluation ran: the last
        epochs = [e["epoch"] for e in state.log_history if e.get("step") == step and "epoch" in e]
        record.update(chosen_on="holdout of training tracks" if rule == "holdout" else "validation (the scored split)",
                      metric=training_args.metric_for_best_model, greater_is_better=training_args.greater_is_better,
                      best_metric=state.best_metric, step=step, epoch=epochs[-1] if epochs else None,
                      last_step=state.global_step)
    if rule == "holdout":
        record.update(selection_fraction=training_args.selection_fraction, seed=training_args.seed, **holdout)
    return record


def run_row_info(model, model_args, data_args, training_args, feature_extractor, source: str,
                 folds: int | None, selection: dict | None = None) -> dict:
    """What names this run's row in ``housex table`` (stored in predictions.parquet); ``selection``: the
    checkpoint-selection record (:func:`checkpoint_selection_record`), whose rule the table marks."""
    cfg = model.config
    labels = {"sharpen": "hard", "clean": "hard (clean)", "soft": "soft"}[data_args.label_mode]
    if cfg.model_type == "housex":
        kind, name = "HouseX", cfg.backbone
        features = "mel+chroma" if getattr(feature_extractor, "use_chroma", False) else "mel"
    else:
        kind, name = "peer model", str(model_args.model_name_or_path or model_args.config_name or cfg.model_type)
        name = Path(name).name if Path(name).is_dir() else name
        features = type(feature_extractor).__name__
    info = {"kind": kind, "model": name, "features": features, "labels": labels, "dataset": source,
            "split": data_args.eval_split_name if data_args.fold is None else "folds", "seed": training_args.seed}
    if data_args.fold is not None:
        info.update(fold=data_args.fold, num_folds=folds)
    if selection is not None:
        info["checkpoint_selection"] = selection["rule"]
        info["selection"] = {k: v for k, v in selection.items() if k not in ("rule", "holdout_track_ids")}
    return info


def save_outputs(out_dir: Path, metrics: dict, trainer, *, model_args, data_args, training_args, feature_extractor,
                 synthetic: bool, push_repo: str | None, predictions: Predictions) -> None:
    """predictions.parquet, metrics.json, confusion_matrix.png and the model card (README.md) next to the
    model; then the Hub push."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir, clip_ids=predictions.clip_ids, track_ids=predictions.track_ids,
                      soft_labels=predictions.soft_labels, probabilities=predictions.probabilities,
                      row_info=predictions.row_info)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    plot_confusion(metrics["confusion_matrix"], out_dir / "confusion_matrix.png",
                   title=f"HouseX validation ({data_args.label_mode} labels)")
    write_model_card(out_dir, metrics=metrics, model=trainer.model, model_args=model_args,
                     data_args=data_args, training_args=training_args, feature_extractor=feature_extractor,
                     synthetic=synthetic, repo_id=push_repo)
    logger.info("saved model, predictions.parquet, metrics.json, confusion_matrix.png and README.md to %s", out_dir)
    if push_repo:
        url = push_folder_to_hub(out_dir, push_repo, token=training_args.hub_token,
                                 private=training_args.hub_private_repo)
        logger.info("pushed to the Hub: %s", url)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def main(model_args: ModelArguments, data_args: DataTrainingArguments, training_args, *, callbacks=None) -> dict:
    """Train (when ``do_train``), evaluate, save.  Returns the metrics (as written to metrics.json).

    One run at a time writes an ``output_dir``: a second is refused naming the first (a lock file
    beside the folder, held by the main process)."""
    check_arguments(model_args, data_args, training_args)
    with OutputLock(training_args.output_dir) if training_args.process_index == 0 else contextlib.nullcontext():
        return _train_evaluate_save(model_args, data_args, training_args, callbacks=callbacks)


def _train_evaluate_save(model_args: ModelArguments, data_args: DataTrainingArguments, training_args, *,
                         callbacks=None) -> dict:
    # 1. arguments
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
    splits = select_clips(raw, data_args, training_args, source)
    train_ds, eval_ds = splits.train, splits.validation
    folds = num_folds(raw, data_args)
    clip_ids, track_ids, soft_labels = scored_clip_ids(eval_ds, data_args)
    holdout = holdout_counts(splits.selection)

    # 3. features (a peer model brings its own extractor)
    peer = peer_models.is_peer(model_args)
    if peer:
        peer_models.check_data_args(data_args, model_args)
    feature_extractor = build_feature_extractor(model_args, clip_seconds_of(train_ds if len(train_ds) else eval_ds))
    audio_feature = datasets.Audio(sampling_rate=int(feature_extractor.sampling_rate))
    splits = ClipSplits(*(None if ds is None else ds.cast_column(data_args.audio_column_name, audio_feature)
                          for ds in splits))
    train_ds = splits.train
    weights = None
    if data_args.class_weights:
        soft = np.asarray(train_ds[data_args.label_column_name], dtype=np.float64)
        weights = class_weights_from_targets(training_targets(soft, data_args.label_mode), len(GENRES))
        logger.info("class weights: %s", [round(w, 3) for w in weights])
    augmenter, collator, augment_callbacks = build_augmentation(data_args, training_args, feature_extractor)
    train_ds, eval_ds, selection_ds = add_features(splits, feature_extractor, augmenter, data_args, training_args)

    # 4. model (registered with the Auto classes by `import housex`: the saved folder gets auto_map and the
    # modeling code, so it loads with pipeline(..., trust_remote_code=True))
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
        # what the checkpoints are evaluated on while training: the holdout that chooses among them, or
        # validation (chosen on: the paper's protocol; or only watched, with checkpoint_selection last)
        eval_dataset=selection_ds if selection_ds is not None else eval_ds,
        processing_class=feature_extractor,
        data_collator=collator,  # None: the Trainer's default (padding with the feature extractor)
        compute_metrics=scorer,
        preprocess_logits_for_metrics=MetricScorer.logits_only,
        callbacks=[*(callbacks or []), *augment_callbacks],
    )
    train_metrics: dict = {}
    if training_args.do_train:
        trainer.check_free_space()
        train_metrics = trainer.train_or_restore(resume_checkpoint(training_args))
        trainer.save_model()  # safetensors + config + custom code (+ feature extractor via processing_class)
        trainer.save_state()

    # 6. evaluate: the chosen weights, once, on validation
    selection = checkpoint_selection_record(trainer, training_args, holdout)
    eval_metrics = {k.removeprefix("eval_"): v for k, v in trainer.evaluate(eval_dataset=eval_ds).items()}
    predictions = make_predictions(
        clip_ids=clip_ids, track_ids=track_ids, soft_labels=soft_labels,
        probabilities=metric_module().to_probabilities(scorer.last_logits, "logits"),
        row_info=run_row_info(model, model_args, data_args, training_args, feature_extractor, source, folds,
                              selection))
    bootstrap = Bootstrap(level=training_args.bootstrap_level, resamples=training_args.bootstrap_resamples,
                          seed=training_args.bootstrap_seed)
    metrics = {
        **eval_metrics,
        **metrics_from_predictions(predictions, bootstrap),  # the scores, from what predictions.parquet holds
        "labels": list(GENRES),
        "label_mode": data_args.label_mode,
        "model_name_or_path": model_args.model_name_or_path,
        "config_name": model_args.config_name,
        "dataset": source,
        "dataset_config": data_args.dataset_config_name,
        "synthetic_dataset": bool(synthetic),
        "num_train_clips": len(train_ds) if training_args.do_train else 0,
        "num_eval_clips": len(eval_ds),
        "split": predictions.row_info["split"],
        "fold": data_args.fold,
        "num_folds": folds,
        "seed": training_args.seed,
        "checkpoint_selection": selection,
        "train": train_metrics,
    }

    # 7. save
    if not training_args.do_train:
        trainer.save_model()  # an evaluated model folder is complete too (card, metrics, weights)
    if trainer.is_world_process_zero():
        save_outputs(Path(training_args.output_dir), metrics, trainer, model_args=model_args, data_args=data_args,
                     training_args=training_args, feature_extractor=feature_extractor, synthetic=bool(synthetic),
                     push_repo=push_repo, predictions=predictions)
    trainer.accelerator.wait_for_everyone()
    return metrics


def cli(argv: list[str] | None = None) -> int:
    model_args, data_args, training_args = parse_args(argv)
    main(model_args, data_args, training_args)
    return 0


__all__ = [
    "main",
    "cli",
    "build_feature_extractor",
    "build_model",
    "HouseXTrainer",
    "PeerTrainer",
    "MetricScorer",
    "save_outputs",
]
