"""``housex.modeling``: HouseX config, feature extractor and models as transformers classes.

``register_auto_classes()`` registers them with ``AutoConfig``, ``AutoFeatureExtractor``,
``AutoModel`` and ``AutoModelForAudioClassification`` and marks them ``register_for_auto_class`` so
``save_pretrained`` writes ``auto_map`` and copies these files: a saved folder then loads with
``trust_remote_code=True`` where this package is not installed.  It is called in one place: the
post-import hook that ``import housex`` installs (``housex/__init__.py``), as soon as this package
is imported; nothing else needs to call it.
"""

from .configuration_encoder_classifier import HouseXEncoderClassifierConfig
from .configuration_housex import HOUSEX_GENRES, HOUSEX_PRESETS, HouseXConfig
from .feature_extraction_housex import HouseXFeatureExtractor
from .modeling_encoder_classifier import HouseXEncoderClassifierForAudioClassification
from .modeling_housex import (
    HouseXAudioClassifierOutput,
    HouseXForAudioClassification,
    HouseXModel,
    HouseXModelOutput,
    HouseXPreTrainedModel,
    soft_label_cross_entropy,
)

_REGISTERED = False


def register_auto_classes() -> None:
    """Register the HouseX classes with transformers' Auto classes (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

    AutoConfig.register(HouseXConfig.model_type, HouseXConfig, exist_ok=True)
    AutoFeatureExtractor.register(HouseXConfig, HouseXFeatureExtractor, exist_ok=True)
    AutoModel.register(HouseXConfig, HouseXModel, exist_ok=True)
    AutoModelForAudioClassification.register(HouseXConfig, HouseXForAudioClassification, exist_ok=True)
    HouseXConfig.register_for_auto_class()
    HouseXFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    HouseXModel.register_for_auto_class("AutoModel")
    HouseXForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
    AutoConfig.register(HouseXEncoderClassifierConfig.model_type, HouseXEncoderClassifierConfig, exist_ok=True)
    AutoModelForAudioClassification.register(HouseXEncoderClassifierConfig, HouseXEncoderClassifierForAudioClassification,
                                             exist_ok=True)
    HouseXEncoderClassifierConfig.register_for_auto_class()
    HouseXEncoderClassifierForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
    _REGISTERED = True


__all__ = [
    "HOUSEX_GENRES",
    "HOUSEX_PRESETS",
    "HouseXConfig",
    "HouseXFeatureExtractor",
    "HouseXModel",
    "HouseXForAudioClassification",
    "HouseXPreTrainedModel",
    "HouseXModelOutput",
    "HouseXAudioClassifierOutput",
    "HouseXEncoderClassifierConfig",
    "HouseXEncoderClassifierForAudioClassification",
    "soft_label_cross_entropy",
    "register_auto_classes",
]
