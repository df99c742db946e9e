"""The model card (README.md) of a trained HouseX model, from ``cards/model_card.md``, and the Hub push
of the finished model folder."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from ..cards import CARDS_DIR
from ..dataset_script.genres import GENRE_DESCRIPTIONS, GENRES
from .statistics import level_text

TEMPLATE_PATH = CARDS_DIR / "model_card.md"

# (metrics.json key, title on the card, model-index metric type)
CARD_METRICS = (
    ("accuracy", "accuracy", "accuracy"),
    ("precision_weighted", "precision (weighted)", "precision"),
    ("recall_weighted", "recall (weighted)", "recall"),
    ("f1_weighted", "F1 (weighted)", "f1"),
    ("f1_macro", "F1 (macro)", "f1"),
    ("top2_accuracy", "top-2 accuracy", "accuracy"),
    ("kl_divergence", "mean KL(target ‖ prediction), nats", "kl_divergence"),
    ("js_distance", "Jensen-Shannon distance (base 2)", "js_distance"),
    ("ece", "expected calibration error", "ece"),
)
# track level (the mean of a track's clip probabilities against its soft label): metrics.json key, title
CARD_TRACK_METRICS = (
    ("accuracy", "accuracy"),
    ("f1_weighted", "F1 (weighted)"),
    ("top2_accuracy", "top-2 accuracy"),
    ("kl_divergence", "mean KL(target ‖ prediction), nats"),
)


def _figure_rows(values: dict, intervals: dict, titles) -> list[dict]:
    """``{"name", "value", "interval"}`` per figure present (interval "—" when metrics.json has none)."""
    rows = []
    for key, title in titles:
        if isinstance(values.get(key), (int, float)):
            bounds = intervals.get(key)
            rows.append({"name": title, "value": f"{float(values[key]):.4f}",
                         "interval": f"[{bounds[0]:.4f}, {bounds[1]:.4f}]" if bounds else "—"})
    return rows


def dataset_id(source: str) -> str:
    """A Hub-style dataset name for the card metadata: a local folder's name, a Hub id as is."""
    return Path(source).name if source and os.path.isdir(source) else (source or "housex-v2")


def hub_dataset(source: str) -> str | None:
    """``source`` when it is a Hub dataset id; None for a local folder (or release folders), which
    the card's ``datasets:`` must not list as if it were on the Hub."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not source or os.path.isdir(source):
        return None
    try:
        validate_repo_id(source)
    except HFValidationError:
        return None
    return source


def describe_backbone(name: str | None) -> str:
    """How the card names a backbone: torchvision's models as such, ours (``patch_cnn``,
    ``patch_cnn_small``: no ImageNet weights exist for them) as this package's own CNN."""
    from ..modeling.backbone_housex import backbone_spec

    if not name:  # a peer model or an encoder classifier: no HouseX backbone
        return ""
    try:
        torchvision_model = backbone_spec(name).imagenet
    except ValueError:
        return f"`{name}`"
    return f"a torchvision `{name}`" if torchvision_model else f"`{name}`, this package's own small CNN (PatchCNN)"


def describe_selection(record: dict | None) -> str:
    """How the card says which weights were scored (metrics.json's ``checkpoint_selection`` record)."""
    if not record:
        return "the given model as it is (not trained in this run)"
    rule = record["rule"]
    epoch = f", epoch {record['epoch']:.2f}" if isinstance(record.get("epoch"), (int, float)) else ""
    if rule == "last":
        return f"the final weights (step {record.get('step')}{epoch}); no checkpoint was chosen"
    at = f"step {record.get('step')} of {record.get('last_step')}{epoch}"
    if rule == "holdout":
        return (f"the checkpoint with the best `{record.get('metric')}` on a holdout of "
                f"{record.get('holdout_tracks')} training tracks ({record.get('holdout_clips')} clips, "
                f"{record.get('selection_fraction', 0):.0%} of the training tracks, not trained on): {at}")
    return f"the checkpoint with the best `{record.get('metric')}` on the scored split itself (the paper's protocol): {at}"


def _selection_setting(record: dict | None) -> str:
    if not record:
        return "none (not trained in this run)"
    if record["rule"] == "last":
        return "`last` (the final weights)"
    return f"`{record['rule']}`, best `{record.get('metric')}` (see Evaluation)"


def build_model_card(*, metrics: dict, model_config, feature_extractor, label_mode: str, class_weights: bool,
                     training: dict, synthetic: bool, model_name: str, repo_id: str | None,
                     template_path: str | os.PathLike = TEMPLATE_PATH):
    """A ``huggingface_hub.ModelCard`` with ``model-index`` results from ``metrics`` (metrics.json)."""
    template_path = Path(template_path)
    if not template_path.is_file():
        raise FileNotFoundError(f"{template_path}: model card template not found")
    dataset = dataset_id(metrics.get("dataset", ""))
    on_hub = hub_dataset(metrics.get("dataset", ""))
    dataset_config = metrics.get("dataset_config", "clips")
    fold = metrics.get("fold")
    split = "validation" if fold is None else f"fold {fold}"
    eval_results = [
        EvalResult(
            task_type="audio-classification",
            task_name="House sub-genre classification",
            dataset_type=dataset,
            dataset_name=f"{dataset} ({'synthetic' if synthetic else dataset_config})",
            dataset_config=dataset_config,
            dataset_split=split,
            metric_type=metric_type,
            metric_name=title,
            metric_value=round(float(metrics[key]), 4),
        )
        for key, title, metric_type in CARD_METRICS
        if isinstance(metrics.get(key), (int, float))
    ]
    tags = ["audio", "music", "genre-classification", "house-music", "soft-labels", "housex"]
    if synthetic:
        tags.append("synthetic-data")
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="audio-classification",
        license="bsd-3-clause",
        datasets=[on_hub] if on_hub else None,
        tags=tags,
        metrics=sorted({m for _, _, m in CARD_METRICS}),
        model_name=model_name,
        eval_results=eval_results or None,
    )
    use_chroma = bool(getattr(feature_extractor, "use_chroma", False))
    arch = getattr(model_config, "encoder_config", None) or model_config  # an encoder classifier: its encoder's sizes
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        repo_id=repo_id or "path/to/this/folder",
        synthetic=synthetic,
        dataset=dataset,
        dataset_on_hub=bool(on_hub),
        dataset_config=dataset_config,
        num_eval_clips=metrics.get("num_eval_clips", "?"),
        label_mode=label_mode,
        class_weights=class_weights,
        clip_seconds=getattr(feature_extractor, "clip_seconds", 7.5),
        n_mels=getattr(feature_extractor, "n_mels", getattr(model_config, "patch_size", None)),
        features="mel + chroma" if use_chroma else "mel",
        model_type=model_config.model_type,
        backbone=getattr(model_config, "backbone", None),
        backbone_text=describe_backbone(getattr(model_config, "backbone", None)),
        num_hidden_layers=getattr(arch, "num_hidden_layers", None),
        num_attention_heads=getattr(arch, "num_attention_heads", None),
        d_model=getattr(arch, "d_model", getattr(arch, "hidden_size", None)),
        genres=[{"id": i, "name": g, "description": GENRE_DESCRIPTIONS[g]} for i, g in enumerate(GENRES)],
        metric_rows=_figure_rows(metrics, metrics.get("intervals", {}), [(k, t) for k, t, _ in CARD_METRICS]),
        track_rows=_figure_rows(metrics.get("track_level", {}), metrics.get("track_level_intervals", {}),
                                CARD_TRACK_METRICS),
        num_eval_tracks=metrics.get("num_tracks", "?"),
        evaluated_on=("Validation split" if fold is None
                      else f"Fold {fold} of {metrics.get('num_folds')} (cross-validation; the other folds trained)"),
        interval_level=level_text(metrics.get("bootstrap", {}).get("level", 0.95)),
        bootstrap=metrics.get("bootstrap"),
        selection_text=describe_selection(metrics.get("checkpoint_selection")),
        selection_optimistic=(metrics.get("checkpoint_selection") or {}).get("rule") == "validation",
        training_rows=[{"name": k, "value": v} for k, v in training.items()],
    )


def write_model_card(out_dir, *, metrics, model, model_args, data_args, training_args, feature_extractor,
                     synthetic: bool, repo_id: str | None) -> Path:
    """Render the card for a finished run and save it as ``out_dir/README.md``."""
    cfg = model.config
    if cfg.model_type == "housex":
        architecture = {
            "backbone": f"`{cfg.backbone}`" + (" (ImageNet init)" if getattr(cfg, "backbone_pretrained", False) else " (random init)"),
            "patches": f"{cfg.patch_size}×{cfg.patch_size}, hop {cfg.patch_hop} frames",
            "transformer": f"{cfg.num_hidden_layers} layer(s), {cfg.num_attention_heads} heads, d_model {cfg.d_model}",
        }
    else:  # a peer model (trainer/peer_models.py)
        start = (f"weights of `{model_args.model_name_or_path}`" if model_args.model_name_or_path
                 else f"random init from the config `{model_args.config_name}`")
        architecture = {"model": f"`{cfg.model_type}`, {start}",
                        "feature encoder": "frozen" if model_args.freeze_feature_encoder else "trained"}
    training = {
        **architecture,
        "optimizer": f"`{getattr(training_args.optim, 'value', training_args.optim)}`, lr {training_args.learning_rate:g}, weight decay {training_args.weight_decay:g}",
        "schedule": (
            f"StepLR every {training_args.step_lr_step_size} steps × {training_args.step_lr_gamma:g}"
            if getattr(training_args, "step_lr_step_size", 0) > 0
            else f"`{getattr(training_args.lr_scheduler_type, 'value', training_args.lr_scheduler_type)}`"
        ),
        "batch size (per device)": training_args.per_device_train_batch_size,
        "epochs": training_args.num_train_epochs if training_args.max_steps <= 0 else f"max_steps {training_args.max_steps}",
        "training clips": metrics.get("num_train_clips", "?"),
        "augmentation": ", ".join(
            [what for on, what in (
                (data_args.augment, "waveform: gain, noise, ±1 semitone pitch, EQ"),
                (data_args.feature_augment, "features: time shift, spectral tilt, frequency/time masks"),
            ) if on] or ["none"]
        ),
        "checkpoint selection": _selection_setting(metrics.get("checkpoint_selection")),
        "seed": training_args.seed,
    }
    card = build_model_card(
        metrics=metrics,
        model_config=cfg,
        feature_extractor=feature_extractor,
        label_mode=data_args.label_mode,
        class_weights=bool(data_args.class_weights),
        training=training,
        synthetic=synthetic,
        model_name=Path(training_args.output_dir).name or "housex-model",
        repo_id=repo_id,
    )
    path = Path(out_dir) / "README.md"
    card.save(path)
    return path


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, *, token=None, private=None,
                       commit_message: str = "Upload HouseX model") -> str:
    """Upload a saved model folder with the official huggingface_hub API.

    Any failure (offline, no token, no permission) raises ``RuntimeError`` that says the local
    folder is complete and how to retry; nothing local is changed.
    """
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                 commit_message=commit_message,
                                 ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**", "*.pt", "*.pth"])
    except Exception as e:  # offline mode, network, auth: all end the same way for the user
        raise RuntimeError(
            f"push_to_hub to {repo_id!r} failed ({type(e).__name__}: {e}). The trained model is saved "
            f"locally in {folder}; retry later with `huggingface-cli upload {repo_id} {folder}`."
        ) from None
    return getattr(info, "commit_url", str(info))
