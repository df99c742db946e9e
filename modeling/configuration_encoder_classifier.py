"""Configuration of the encoder classifier: any pretrained audio encoder + a layer mix + a genre head.

``encoder_config`` is the encoder's own transformers config (wav2vec2, HuBERT, WavLM, Data2VecAudio,
AST, Whisper, CLAP's audio tower, the Qwen2-Audio encoder, the HouseX model, ...), stored nested in
``config.json`` like any composite config, so a saved folder rebuilds the encoder without its
original checkpoint.  The head reads ``layers`` of the encoder's hidden states (every state, the
embeddings' output included):

- ``layer="weighted"``: a learned softmax-weighted sum of all of them (SUPERB's weighted sum);
- ``layer="last"`` or an integer ``i``: that one state (``hidden_states[i]``).

Over time, ``time_pooling="mean"`` is the mean over real frames (padding masked out) and
``"attention"`` a learned attention over real frames.  Labels, ``class_weights`` and the loss are the
HouseX model's (soft-label cross entropy).

This file must stay self-contained (it is copied next to saved models as Hub custom code).
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .configuration_housex import HOUSEX_GENRES, HouseXConfig

TIME_POOLINGS = ("mean", "attention")
LAYER_CHOICES = ("weighted", "last")


class HouseXEncoderClassifierConfig(PretrainedConfig):
    r"""
    Args:
        encoder_config (`dict` or `PretrainedConfig`):
            Config of the audio encoder (its `model_type` picks the class).
        layer (`str` or `int`, *optional*, defaults to `"weighted"`):
            `"weighted"`, `"last"` or the index of one hidden state (0 = the embeddings' output).
        time_pooling (`str`, *optional*, defaults to `"mean"`):
            `"mean"` (masked mean over real frames) or `"attention"` (masked attention pooling).
        classifier_dropout (`float`, *optional*, defaults to 0.1):
            Dropout before the genre head.
        class_weights (`list[float]`, *optional*):
            Per-class weights of the loss (as [`HouseXConfig`]).
    """

    model_type = "housex_encoder_classifier"
    sub_configs = {"encoder_config": AutoConfig}

    def __init__(
        self,
        encoder_config: dict | PretrainedConfig | None = None,
        layer: str | int = "weighted",
        time_pooling: str = "mean",
        classifier_dropout: float = 0.1,
        class_weights: list[float] | None = None,
        **kwargs,
    ):
        if isinstance(encoder_config, dict):
            kind = encoder_config.get("model_type")
            # the HouseX model's own config: a sibling file (where housex is not installed it is not registered)
            if kind == HouseXConfig.model_type:
                config_class = HouseXConfig
            elif kind in CONFIG_MAPPING:
                config_class = CONFIG_MAPPING[kind]
            else:
                raise ValueError(f"encoder_config: model_type {kind!r} is not a transformers config")
            encoder_config = config_class(**{k: v for k, v in encoder_config.items() if k != "model_type"})
        self.encoder_config = encoder_config
        if not (layer in LAYER_CHOICES or (isinstance(layer, int) and not isinstance(layer, bool) and layer >= 0)):
            raise ValueError(f"layer={layer!r}: expected 'weighted', 'last' or a hidden-state index >= 0")
        if time_pooling not in TIME_POOLINGS:
            raise ValueError(f"time_pooling={time_pooling!r}: expected one of {', '.join(TIME_POOLINGS)}")
        if not 0.0 <= classifier_dropout < 1.0:
            raise ValueError(f"classifier_dropout={classifier_dropout} must lie in [0, 1)")
        self.layer = layer
        self.time_pooling = time_pooling
        self.classifier_dropout = classifier_dropout
        if class_weights is not None and len(class_weights) != len(HOUSEX_GENRES):
            raise ValueError(f"class_weights has {len(class_weights)} entries, expected {len(HOUSEX_GENRES)}")
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        kwargs.setdefault("id2label", dict(enumerate(HOUSEX_GENRES)))
        kwargs.setdefault("label2id", {g: i for i, g in enumerate(HOUSEX_GENRES)})
        super().__init__(**kwargs)


__all__ = ["HouseXEncoderClassifierConfig", "TIME_POOLINGS", "LAYER_CHOICES"]
