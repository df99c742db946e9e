"""Any Hugging Face audio classifier in our Trainer: the peer-model rows of Table 3.

``trainer/run.py --model_name_or_path <folder or Hub id>`` (pretrained weights) or ``--config_name
<folder or Hub id>`` (a config only, random weights) of any ``AutoModelForAudioClassification``
(AST, wav2vec2, HuBERT, Whisper's encoder classifier, ...) trains it on the same clips as the HouseX
model, as transformers' ``run_audio_classification.py`` does: its own feature extractor (audio
resampled to its rate), ``label2id``/``id2label`` from our genres (a pretrained head of another size
is replaced: ``ignore_mismatched_sizes``), ``--max_length_seconds`` and ``--freeze_feature_encoder``.
The loss is the HouseX soft-label cross-entropy from the logits (label modes and class weights as
for HouseX), never the model's own hard-label loss; the metric, card and ``metrics.json`` are the same.

Any audio *encoder* too (``trainer/encoders.py``: CLAP's audio tower, the Qwen2-Audio encoder, MERT,
...), also one without a classification class, through the encoder classifier
(``HouseXEncoderClassifierForAudioClassification``: a softmax-weighted sum of its layers, masked mean or
attention pooling, an 8-genre head); ``--encoder_classifier`` picks it for encoders that have a class
of their own too.  ``--use_weighted_layer_sum`` sets the native class's own layer sum where it has one,
``--freeze_encoder`` freezes the pretrained encoder, ``--encoder_learning_rate`` gives it its own
learning rate (:class:`EncoderLearningRateMixin`), and ``--gradient_checkpointing`` works where the
encoder supports it (a one-line error where not).
"""

from __future__ import annotations

import logging

from housex.dataset_script.genres import GENRES, ID2LABEL, LABEL2ID

logger = logging.getLogger("housex.trainer.peer_models")
ENCODER_CLASSIFIER_TYPE = "housex_encoder_classifier"
# audio encoders without an audio-classification class (trainer/encoders.py loads their encoder part);
# any other model type takes the encoder classifier only when asked (--encoder_classifier)
AUDIO_ENCODER_TYPES = frozenset({"mert_model", "clap", "qwen2_audio", "qwen2_audio_encoder", "audioflamingo3_encoder",
                                 "pe_audio_encoder", "parakeet_encoder", "gemma3n_audio", ENCODER_CLASSIFIER_TYPE})

def model_type_of(name: str) -> str:
    """``model_type`` in the ``config.json`` of a folder or Hub id (read without building the config)."""
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(name)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"{name}: no config.json ({str(e).splitlines()[0]})") from None
    return str(config.get("model_type", ""))


def uses_encoder_classifier(model_args) -> bool:
    """The encoder classifier: asked for, a trained one, or a known audio encoder with no classification class."""
    return bool(model_args.encoder_classifier) or model_type_of(source_of(model_args)) in AUDIO_ENCODER_TYPES


def check_audio_classifier(source: str) -> str:
    """``model_type`` of ``source`` if transformers has an audio-classification head for it, else a one-line error."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES

    kind = model_type_of(source)
    if kind not in MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES:
        raise ValueError(f"{source}: model_type {kind!r} has no audio-classification head "
                         "(not an AutoModelForAudioClassification; --encoder_classifier true tries it as an audio encoder)")
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
    """The peer model's own feature extractor (``preprocessor_config.json`` next to its config, or its
    processor's); an encoder classifier's asks for the frame mask, so padding stays out of its pooling."""
    from transformers import AutoFeatureExtractor

    from .encoders import load_feature_extractor as encoder_feature_extractor

    ignored = [f for f in model_args.housex_fields() if getattr(model_args, f) is not None]
    if ignored:
        logger.warning("%s is not a HouseX model: ignoring %s", source_of(model_args), ", ".join(ignored))
    source = source_of(model_args)
    if uses_encoder_classifier(model_args):
        extractor = encoder_feature_extractor(source, None, model_args.trust_remote_code)
        if hasattr(extractor, "return_attention_mask"):
            extractor.return_attention_mask = True
        return extractor
    check_audio_classifier(source)
    try:
        return AutoFeatureExtractor.from_pretrained(source)
    except (OSError, ValueError):
        raise FileNotFoundError(f"{source}: no audio feature extractor (preprocessor_config.json)") from None


def _encoder_classifier(model_args, source: str, class_weights: list[float] | None):
    from transformers import AutoModelForAudioClassification

    from housex.modeling import HouseXEncoderClassifierConfig, HouseXEncoderClassifierForAudioClassification
    from housex.modeling.modeling_encoder_classifier import build_encoder

    from .encoders import config_dict, load_encoder, mert_as_hubert_config

    if model_args.use_weighted_layer_sum:
        raise ValueError("--use_weighted_layer_sum is an option of native classification classes; the encoder "
                         "classifier has its own (--encoder_layer weighted)")
    layer = int(model_args.encoder_layer) if str(model_args.encoder_layer).isdigit() else model_args.encoder_layer
    if model_type_of(source) == ENCODER_CLASSIFIER_TYPE:  # a trained encoder classifier: go on from it
        config = HouseXEncoderClassifierConfig.from_pretrained(source, class_weights=class_weights)
        return AutoModelForAudioClassification.from_pretrained(source, config=config)
    if model_args.model_name_or_path:
        encoder, _ = load_encoder(source, trust_remote_code=model_args.trust_remote_code)
        encoder.train()
    else:  # --config_name: random weights
        from transformers import AutoConfig

        raw = config_dict(source)
        encoder_config = (mert_as_hubert_config(source, raw) if raw.get("model_type") == "mert_model"
                          else AutoConfig.from_pretrained(source, trust_remote_code=model_args.trust_remote_code))
        encoder_config = getattr(encoder_config, "audio_config", None) or encoder_config
        encoder = build_encoder(encoder_config)
    no_layerdrop(encoder.config, source)
    config = HouseXEncoderClassifierConfig(encoder_config=encoder.config, layer=layer,
                                           time_pooling=model_args.time_pooling, class_weights=class_weights)
    return HouseXEncoderClassifierForAudioClassification(config, encoder=encoder)


def build_model(model_args, class_weights: list[float] | None):
    """``AutoModelForAudioClassification`` with our 8 genres as labels (weights from ``model_name_or_path``,
    a head of another size re-initialised, or random from ``config_name``), or the encoder classifier
    (:func:`uses_encoder_classifier`)."""
    from transformers import AutoConfig, AutoModelForAudioClassification

    source = source_of(model_args)
    if uses_encoder_classifier(model_args):
        model = _encoder_classifier(model_args, source, class_weights)
    else:
        check_audio_classifier(source)
        labels = {"num_labels": len(GENRES), "id2label": dict(ID2LABEL), "label2id": dict(LABEL2ID)}
        config = AutoConfig.from_pretrained(source, **labels)
        config.class_weights = class_weights  # read by the soft-label loss, saved in config.json as for HouseX
        if model_args.use_weighted_layer_sum:
            if not hasattr(config, "use_weighted_layer_sum"):
                raise ValueError(f"--use_weighted_layer_sum: {source} ({config.model_type}) has no such option "
                                 "(use --encoder_classifier for a weighted layer sum)")
            config.use_weighted_layer_sum = True
            no_layerdrop(config, source)
        if model_args.model_name_or_path:
            model = AutoModelForAudioClassification.from_pretrained(source, config=config, ignore_mismatched_sizes=True)
        else:
            model = AutoModelForAudioClassification.from_config(config)
    if model_args.freeze_feature_encoder:
        if not hasattr(model, "freeze_feature_encoder"):
            raise ValueError(f"--freeze_feature_encoder: {source} ({model.config.model_type}) has no feature encoder to freeze")
        try:
            model.freeze_feature_encoder()
        except ValueError as e:
            raise ValueError(f"--freeze_feature_encoder: {e}") from None
    if model_args.freeze_encoder:
        encoder_of(model).requires_grad_(False)
    return model


def no_layerdrop(config, source: str) -> None:
    """LayerDrop off for a layer sum: in transformers 5 a dropped layer leaves no hidden state (4.x repeated
    the previous one), so the sum over ``layers + 1`` states fails on a shape mismatch in training."""
    if getattr(config, "layerdrop", 0.0):
        logger.warning("%s: layerdrop %s -> 0 (a weighted layer sum needs every layer's state)", source, config.layerdrop)
        config.layerdrop = 0.0


def encoder_of(model):
    """The pretrained encoder inside a peer model (its base model); a one-line error if it has none apart."""
    encoder = getattr(model, "encoder", None) if model.config.model_type == ENCODER_CLASSIFIER_TYPE else model.base_model
    if encoder is None or encoder is model:
        raise ValueError(f"{type(model).__name__}: no pretrained encoder apart from its head")
    return encoder


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


class EncoderLearningRateMixin:
    """``Trainer`` mixin: with ``args.encoder_learning_rate`` the pretrained encoder's parameters get that
    learning rate and everything else (head, layer weights, pooling) ``args.learning_rate``; weight decay
    as the Trainer applies it (not on biases and norms).  The schedule scales both groups alike."""

    def create_optimizer(self, model=None):
        rate = getattr(self.args, "encoder_learning_rate", None)
        if rate is None or self.optimizer is not None:
            return super().create_optimizer(model)
        model = model if model is not None else self.model
        inside = {id(p) for p in encoder_of(model).parameters()}
        decay = set(self.get_decay_parameter_names(model))
        groups = []
        for in_encoder, lr in ((True, rate), (False, self.args.learning_rate)):
            for decayed in (True, False):
                params = [p for n, p in model.named_parameters()
                          if p.requires_grad and (id(p) in inside) == in_encoder and (n in decay) == decayed]
                if params:
                    groups.append({"params": params, "lr": lr,
                                   "weight_decay": self.args.weight_decay if decayed else 0.0})
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        optimizer_kwargs.pop("lr", None)
        self.optimizer = optimizer_cls(groups, lr=self.args.learning_rate, **optimizer_kwargs)
        return self.optimizer
