"""Pretrained audio encoders by name: the encoder module and its feature extractor.

``load_encoder(name)`` takes a folder or Hub id of any audio model transformers loads and returns
only its audio encoder (a ``PreTrainedModel`` whose forward gives per-layer ``hidden_states``, read by
:func:`housex.modeling.modeling_encoder_classifier.layer_states`) with its feature extractor:

- ``AutoModel`` audio encoders as they are (wav2vec2, HuBERT, WavLM, Data2VecAudio, AST,
  ``qwen2_audio_encoder``, the HouseX model, ...);
- encoder-decoder models (Whisper): the encoder alone;
- CLAP (``ClapModel``): its audio tower;
- Qwen2-Audio (``qwen2_audio``): its audio tower, read from the full checkpoint without building the
  language model (``key_mapping``);
- MERT (``m-a-p/MERT-v1-95M`` / ``-330M``, ``model_type`` ``mert_model``): MERT's Hub code does not run
  on transformers 5 (its config lacks ``conv_pos_batch_norm``, and its ``forward`` override would drop
  ``hidden_states``).  Its weights are those of a ``HubertModel`` (MERTFeatureProjection has HuBERT's
  parameter names), so the checkpoint is loaded into a native ``HubertModel`` built from the same
  config: no remote code.  Variants with parts HuBERT lacks (``feature_extractor_cqt``, ``deepnorm``)
  are refused by name.  Equivalence with MERT's own code is tested against reference states in
  ``tests/fixtures/mert`` (``make_reference.py`` there says how they were made).
"""

from __future__ import annotations

import logging

logger = logging.getLogger("housex.trainer.encoders")

MERT_MODEL_TYPE = "mert_model"
# config keys of MERT's own config class that are no HubertConfig arguments
_MERT_ONLY = ("auto_map", "architectures", "model_type", "transformers_version", "sample_rate",
              "feature_extractor_cqt", "feature_extractor_cqt_bins", "deepnorm", "attention_relax")


def config_dict(name: str, revision: str | None = None) -> dict:
    """``config.json`` of a folder or Hub id as a dict (no class built, no remote code run)."""
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(str(name), revision=revision)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"encoder {name}: no config.json ({str(e).splitlines()[0]})") from None
    return config


def mert_as_hubert_config(name: str, config: dict):
    """The ``HubertConfig`` of a MERT checkpoint's config; variants HuBERT cannot express are refused."""
    from transformers import HubertConfig

    for key in ("feature_extractor_cqt", "deepnorm"):
        if config.get(key):
            raise ValueError(f"encoder {name}: MERT with {key}=true has layers a HubertModel lacks; "
                             "only MERT-v1-style checkpoints (no CQT front end, no deepnorm) load here")
    return HubertConfig(**{k: v for k, v in config.items() if k not in _MERT_ONLY})


def load_feature_extractor(name: str, revision: str | None = None, trust_remote_code: bool = False):
    """The model's ``AutoFeatureExtractor``, else its ``AutoProcessor``'s feature extractor."""
    from transformers import AutoFeatureExtractor, AutoProcessor

    try:
        return AutoFeatureExtractor.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError):
        pass
    try:
        processor = AutoProcessor.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise FileNotFoundError(f"encoder {name}: no audio feature extractor or processor ({str(e).splitlines()[0]})") from None
    extractor = getattr(processor, "feature_extractor", None)
    if extractor is None:
        raise FileNotFoundError(f"encoder {name}: its processor ({type(processor).__name__}) has no feature extractor")
    return extractor


def load_encoder(name: str, *, revision: str | None = None, trust_remote_code: bool = False, dtype=None):
    """``(encoder, feature_extractor)`` of a folder or Hub id (see the module docstring), in eval mode."""
    import torch
    import transformers
    from transformers import AutoModel  # the HouseX classes: registered by `import housex`

    name = str(name)
    config = config_dict(name, revision)
    kind = config.get("model_type", "")
    kwargs = {"revision": revision, **({"dtype": dtype} if dtype is not None else {})}
    if kind == MERT_MODEL_TYPE:
        encoder = transformers.HubertModel.from_pretrained(name, config=mert_as_hubert_config(name, config), **kwargs)
    elif kind == "clap":
        encoder = transformers.ClapModel.from_pretrained(name, **kwargs).audio_model
    elif kind == "qwen2_audio":
        full = transformers.AutoConfig.from_pretrained(name, revision=revision)
        encoder = transformers.Qwen2AudioEncoder.from_pretrained(
            name, config=full.audio_config, key_mapping={r"^audio_tower\.": ""}, **kwargs)
    else:
        try:
            encoder = AutoModel.from_pretrained(name, trust_remote_code=trust_remote_code, **kwargs)
        except ValueError as e:
            first = str(e).splitlines()[0]
            if "trust_remote_code" in first:
                raise ValueError(f"encoder {name}: needs its own code (pass --trust-remote-code)") from None
            raise ValueError(f"encoder {name}: AutoModel cannot load model_type {kind!r} ({first[:200]})") from None
        if getattr(encoder.config, "is_encoder_decoder", False):
            encoder = encoder.get_encoder()
        elif getattr(encoder, "audio_tower", None) is not None:
            encoder = encoder.audio_tower
    if not isinstance(encoder, torch.nn.Module) or not hasattr(encoder, "config"):
        raise ValueError(f"encoder {name}: {type(encoder).__name__} is not a transformers model")
    encoder.config._name_or_path = name
    extractor = load_feature_extractor(name, revision, trust_remote_code)
    return encoder.eval(), extractor


__all__ = ["load_encoder", "load_feature_extractor", "config_dict", "mert_as_hubert_config", "MERT_MODEL_TYPE"]
