"""Any Hugging Face audio classifier in our Trainer: the peer-model rows of Table 3.

``trainer/run.py --model_name_or_path <folder or Hub id>`` (pretrained weights) or ``--config_name
<folder or Hub id>`` (a config only, random weights) of any ``AutoModelForAudioClassification``
(AST, wav2vec2, HuBERT, Whisper's encoder classifier, ...) trains it on the same clips as the HouseX
model, as transformers' ``run_audio_classification.py`` does: its own feature extractor (audio
resampled to its rate), ``label2id``/``id2label`` from our genres (a pretrained head of another size
is replaced: ``ignore_mismatched_sizes``), ``--max_length_seconds`` and ``--freeze_feature_encoder``.
The loss is the HouseX soft-label cross-entropy from the logits (label modes and class weights as
for HouseX), never the model's own hard-label loss; the metric, card and ``metrics.json`` are the same.
"""

from __future__ import annotations

import logging

from housex.dataset_script.genres import GENRES, ID2LABEL, LABEL2ID

logger = logging.getLogger("housex.trainer.peer_models")

def model_type_of(name: str) -> str:
    """``model_type`` in the ``config.json`` of a folder or Hub id (read without building the config)."""
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(name)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"{name}: no config.json ({str(e).splitlines()[0]})") from None
    return str(config.get("model_type", ""))


def check_audio_classifier(source: str) -> str:
    """``model_type`` of ``source`` if transformers has an audio-classification head for it, else a one-line error."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES

    kind = model_type_of(source)
    if kind not in MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES:
        raise ValueError(f"{source}: model_type {kind!r} has no audio-classification head "
                         "(not an AutoModelForAudioClassification)")
    return kind


def is_peer(model_args) -> bool:
    """True for ``--config_name`` or a ``--model_name_or_path`` that is not a HouseX model."""
    if getattr(model_args, "config_name", None):
        if model_args.model_name_or_path:
            raise ValueError("give either --model_name_or_path (pretrained) or --config_name (random init), not both")
        return True
    return bool(model_args.model_name_or_path) and model_type_of(model_args.model_name_or_path) != "housex"


def source_of(model_args) -> str:
    return model_args.model_name_or_path or model_args.config_name


def check_data_args(data_args, model_args) -> None:
    """The HouseX-feature options that a peer model's own extractor cannot take: one-line errors."""
    for flag in ("precompute_features", "feature_augment"):
        if getattr(data_args, flag, False):
            raise ValueError(f"--{flag} works on HouseX features only; {source_of(model_args)} uses its own "
                             "feature extractor (use --augment for waveform augmentation)")


def load_feature_extractor(model_args):
    """The peer model's own feature extractor (``preprocessor_config.json`` next to its config)."""
    from transformers import AutoFeatureExtractor

    ignored = [f for f in model_args.housex_fields() if getattr(model_args, f) is not None]
    if ignored:
        logger.warning("%s is not a HouseX model: ignoring %s", source_of(model_args), ", ".join(ignored))
    source = source_of(model_args)
    check_audio_classifier(source)
    try:
        return AutoFeatureExtractor.from_pretrained(source)
    except (OSError, ValueError):
        raise FileNotFoundError(f"{source}: no audio feature extractor (preprocessor_config.json)") from None


def build_model(model_args, class_weights: list[float] | None):
    """``AutoModelForAudioClassification`` with our 8 genres as labels; weights from
    ``model_name_or_path`` (a head of another size is re-initialised) or random from ``config_name``."""
    from transformers import AutoConfig, AutoModelForAudioClassification

    source = source_of(model_args)
    check_audio_classifier(source)
    labels = {"num_labels": len(GENRES), "id2label": dict(ID2LABEL), "label2id": dict(LABEL2ID)}
    config = AutoConfig.from_pretrained(source, **labels)
    config.class_weights = class_weights  # read by the soft-label loss, saved in config.json as for HouseX
    if model_args.model_name_or_path:
        model = AutoModelForAudioClassification.from_pretrained(source, config=config, ignore_mismatched_sizes=True)
    else:
        model = AutoModelForAudioClassification.from_config(config)
    if getattr(model_args, "freeze_feature_encoder", False):
        if not hasattr(model, "freeze_feature_encoder"):
            raise ValueError(f"--freeze_feature_encoder: {source} ({config.model_type}) has no feature encoder to freeze")
        model.freeze_feature_encoder()
    return model


def soft_label_loss(model, logits, labels):
    """The HouseX loss (soft-label cross-entropy, optional class weights) of any classifier's logits:
    `soft_label_cross_entropy`, the function the HouseX head calls, with ``model.config``'s
    ``num_labels`` and ``class_weights``."""
    from housex.modeling import soft_label_cross_entropy

    return soft_label_cross_entropy(logits, labels, num_labels=model.config.num_labels,
                                    class_weights=getattr(model.config, "class_weights", None))


class SoftLabelLossMixin:
    """``Trainer`` mixin: the loss from the logits with :func:`soft_label_loss`, not the model's own."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]  # not popped: the Trainer's prediction_step reads it afterwards
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
        loss = soft_label_loss(self.accelerator.unwrap_model(model), outputs.logits, labels)
        return (loss, outputs) if return_outputs else loss
