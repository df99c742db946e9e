"""Any pretrained audio encoder as an 8-genre classifier, and the per-layer states it is probed with.

[`HouseXEncoderClassifierForAudioClassification`]: the encoder (any class transformers builds from
``config.encoder_config``: wav2vec2, HuBERT, WavLM, Data2VecAudio, AST, Whisper's encoder, CLAP's audio
tower, the Qwen2-Audio encoder, the HouseX model...) -> every hidden state pooled over real frames
(masked mean or masked attention) -> a softmax-weighted sum of the layers (or one chosen layer) ->
dropout -> Linear(hidden, 8), trained with the HouseX soft-label loss.  It covers encoders that have no
``ForAudioClassification`` class at all.

:func:`layer_states` and :func:`pooled_layers` are the one definition of "the time-pooled hidden states
of every layer" that ``housex embed`` caches and the probes read: a frozen encoder's embeddings and
this model's forward agree by construction.

- The states are the encoder's ``hidden_states`` (the embeddings' output, then each layer's).  For
  wav2vec2-family encoders with ``do_stable_layer_norm`` (pre-LN: HuBERT/wav2vec2 large, MERT-330M) the
  last one is the final LayerNorm's output, as transformers 4.x returned it (5.x returns the last
  layer before that norm); every other state is as the model returns it.
- A missing ``hidden_states`` or a count other than the encoder's layers + 1 raises a ``ValueError``
  naming the encoder: never a silent probe of one layer.  (In training, LayerDrop makes transformers 5
  skip a dropped layer's state: the trainer turns ``layerdrop`` off for this model.)
- Frame masks: wav2vec2-style encoders map the sample mask to frames with their own conv arithmetic;
  Whisper-style encoders (Whisper, Qwen2-Audio: 30 s of padded mel frames) take the extractor's frame
  mask strided to each state's length; AST's patch tokens whose time span lies wholly in the padded
  frames (constant rows, as its extractor pads) are masked; CLAP's extractor repeats short clips
  instead of padding (all frames real).  States of different widths (CLAP's Swin stages) are
  zero-padded to the widest.

Self-contained: imports only torch, transformers and its sibling files (Hub custom code).
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_encoder_classifier import HouseXEncoderClassifierConfig
from .configuration_housex import HouseXConfig
from .modeling_housex import HouseXModel, patch_mask_from_frames, soft_label_cross_entropy

# model_type -> (module, class) that holds only the audio encoder (where AutoModel would build more, or nothing)
ENCODER_CLASSES = {"whisper": ("transformers.models.whisper.modeling_whisper", "WhisperEncoder"),
                   "clap_audio_model": ("transformers.models.clap.modeling_clap", "ClapAudioModel")}
AST_MODEL_TYPE = "audio-spectrogram-transformer"


def build_encoder(encoder_config) -> PreTrainedModel:
    """A randomly initialised encoder of ``encoder_config`` (see :data:`ENCODER_CLASSES`)."""
    kind = encoder_config.model_type
    if kind == HouseXConfig.model_type:  # a sibling class (by name: Hub custom code may hold another copy of it)
        return HouseXModel(encoder_config)
    if kind in ENCODER_CLASSES:
        module, name = ENCODER_CLASSES[kind]
        return getattr(importlib.import_module(module), name)(encoder_config)
    return AutoModel.from_config(encoder_config)


def num_states(encoder_config) -> int:
    """Hidden states an encoder returns: its layers (or Swin stages) + 1 for the embeddings."""
    if getattr(encoder_config, "depths", None):
        return len(encoder_config.depths) + 1
    layers = getattr(encoder_config, "encoder_layers", None) or encoder_config.num_hidden_layers
    return int(layers) + 1


def encoder_name(encoder: PreTrainedModel) -> str:
    return getattr(encoder.config, "_name_or_path", "") or encoder.config.model_type


def encoder_inputs(encoder: PreTrainedModel, inputs: dict) -> tuple[dict, torch.Tensor | None]:
    """``(forward kwargs, mask over input samples/frames or None)`` from a feature extractor's output.

    The mask goes to the forward of ``input_values`` encoders (wav2vec2 family: padded frames are then
    left out of attention, as MERT's own code does); Whisper-style encoders get their fixed-length
    padded input without it (their layers do not read it) and the mask serves the pooling only.
    """
    name = encoder.main_input_name
    if name not in inputs or inputs[name] is None:
        raise ValueError(f"encoder {encoder_name(encoder)}: expects {name!r} from its feature extractor, "
                         f"got {sorted(k for k, v in inputs.items() if v is not None)}")
    kwargs = {name: inputs[name]}
    mask = inputs.get("attention_mask")
    if name == "input_values" and mask is not None and encoder.config.model_type != AST_MODEL_TYPE:
        kwargs["attention_mask"] = mask
    if inputs.get("is_longer") is not None:  # CLAP's fusion flag
        kwargs["is_longer"] = inputs["is_longer"]
    return kwargs, mask


def _ast_token_mask(encoder: PreTrainedModel, input_values: torch.Tensor, length: int) -> torch.Tensor:
    """(B, tokens) mask of AST: [cls, distillation] then the patch grid (frequency-major); a patch whose
    frames all lie in the padding (rows the extractor filled with one constant) is masked."""
    cfg = encoder.config
    real = (input_values.amax(-1) - input_values.amin(-1)) > 0  # (B, T): a padded frame is one constant
    frames = torch.arange(real.shape[1], device=real.device)
    n_real = torch.where(real.any(1), (real * (frames + 1)).amax(1), torch.ones_like(frames[:1]))  # last real + 1
    f_dim, t_dim = encoder.embeddings.get_shape(cfg)
    starts = torch.arange(t_dim, device=real.device) * cfg.time_stride
    patch_ok = starts[None, :] < n_real[:, None]  # (B, t_dim)
    grid = patch_ok[:, None, :].expand(-1, f_dim, -1).reshape(real.shape[0], f_dim * t_dim)
    mask = torch.cat([grid.new_ones(real.shape[0], length - f_dim * t_dim), grid], dim=1)
    return mask


def state_mask(encoder: PreTrainedModel, length: int, kwargs: dict, input_mask: torch.Tensor | None,
               batch: int, device) -> torch.Tensor:
    """(B, length) bool: which positions of a hidden state of ``length`` come from real audio."""
    if encoder.config.model_type == AST_MODEL_TYPE:
        return _ast_token_mask(encoder, kwargs["input_values"], length)
    if isinstance(encoder, HouseXModel):  # patches of frames (+ the cls token in front)
        cfg = encoder.config
        if input_mask is None:
            return torch.ones(batch, length, dtype=torch.bool, device=device)
        patches = patch_mask_from_frames(input_mask.to(device), cfg.patch_size, cfg.patch_hop).bool()
        return torch.cat([patches.new_ones(batch, length - patches.shape[1]), patches], dim=1)
    if input_mask is not None:
        input_mask = input_mask.to(device)
        if hasattr(encoder, "_get_feature_vector_attention_mask") and encoder.main_input_name == "input_values":
            return encoder._get_feature_vector_attention_mask(length, input_mask).bool()
        if input_mask.shape[1] % length == 0:
            return input_mask[:, :: input_mask.shape[1] // length].bool()
    return torch.ones(batch, length, dtype=torch.bool, device=device)


def layer_states(encoder: PreTrainedModel, inputs: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Every hidden state (B, T_l, D_l) of ``encoder`` on a feature extractor's output, with its (B, T_l)
    real-frame mask.  Raises a ``ValueError`` naming the encoder when the states are missing or miscounted."""
    kwargs, input_mask = encoder_inputs(encoder, inputs)
    out = encoder(**kwargs, output_hidden_states=True, return_dict=True)
    states = getattr(out, "hidden_states", None)
    want = num_states(encoder.config)
    if states is None:
        raise ValueError(f"encoder {encoder_name(encoder)} ({type(encoder).__name__}) returned no hidden_states: "
                         "its forward does not collect per-layer outputs")
    if len(states) != want:
        raise ValueError(f"encoder {encoder_name(encoder)} ({type(encoder).__name__}) returned {len(states)} "
                         f"hidden states, expected {want} (layers + 1)")
    states = list(states)
    if getattr(encoder.config, "do_stable_layer_norm", False):
        states[-1] = out.last_hidden_state  # transformers 4.x: the final LayerNorm's output
    states = [s.flatten(2).transpose(1, 2) if s.ndim == 4 else s for s in states]  # Swin stages (B, C, H, W)
    batch, device = states[0].shape[0], states[0].device
    masks = [state_mask(encoder, s.shape[1], kwargs, input_mask, batch, device) for s in states]
    return states, masks


def pad_width(x: torch.Tensor, width: int) -> torch.Tensor:
    return x if x.shape[-1] == width else F.pad(x, (0, width - x.shape[-1]))


def masked_mean(state: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B, T) -> (B, D): the mean over the frames where ``mask`` is true."""
    keep = mask.to(state.dtype).unsqueeze(-1)
    return (state * keep).sum(1) / keep.sum(1).clamp_min(1.0)


def pooled_layers(states: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
    """(B, layers + 1, D_max): each state's masked time mean, narrower states zero-padded."""
    width = max(s.shape[-1] for s in states)
    return torch.stack([pad_width(masked_mean(s, m), width) for s, m in zip(states, masks)], dim=1)


class HouseXEncoderClassifierPreTrainedModel(PreTrainedModel):
    config_class = HouseXEncoderClassifierConfig
    base_model_prefix = "encoder_classifier"
    main_input_name = "input_values"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def _init_weights(self, module):
        # the encoder's own modules are initialised by the encoder's _init_weights (transformers' smart_apply)
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, HouseXEncoderClassifierForAudioClassification):
            init.zeros_(module.layer_weights)
            if module.attention_query is not None:
                init.normal_(module.attention_query, mean=0.0, std=0.02)


class HouseXEncoderClassifierForAudioClassification(HouseXEncoderClassifierPreTrainedModel):
    """Encoder -> per-layer pooled states -> layer mix -> dropout -> Linear(hidden, num_labels)."""

    def __init__(self, config: HouseXEncoderClassifierConfig, encoder: PreTrainedModel | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else build_encoder(config.encoder_config)
        self.main_input_name = self.encoder.main_input_name
        count = num_states(config.encoder_config)
        if isinstance(config.layer, int) and config.layer >= count:
            raise ValueError(f"layer={config.layer}: the encoder has {count} hidden states (0..{count - 1})")
        width = self.hidden_width(config.encoder_config)
        self.layer_weights = nn.Parameter(torch.zeros(count))
        self.attention_query = nn.Parameter(torch.zeros(width)) if config.time_pooling == "attention" else None
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    @staticmethod
    def hidden_width(encoder_config) -> int:
        """The widest hidden state (CLAP's last Swin stage is the widest)."""
        if getattr(encoder_config, "depths", None):
            return int(encoder_config.patch_embeds_hidden_size * 2 ** (len(encoder_config.depths) - 1))
        return int(getattr(encoder_config, "d_model", None) or encoder_config.hidden_size)

    # ------------------------------------------------------------------ options that train less
    def freeze_encoder(self) -> None:
        """No gradient for any encoder parameter (a probe of the frozen encoder, trained end to end)."""
        self.encoder.requires_grad_(False)

    def freeze_feature_encoder(self) -> None:
        """Freeze the convolutional waveform front end (wav2vec2 family)."""
        if not hasattr(self.encoder, "freeze_feature_encoder"):
            raise ValueError(f"encoder {encoder_name(self.encoder)} ({type(self.encoder).__name__}) has no "
                             "feature encoder to freeze")
        self.encoder.freeze_feature_encoder()

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        if not self.encoder.supports_gradient_checkpointing:
            raise ValueError(f"encoder {encoder_name(self.encoder)} ({type(self.encoder).__name__}) does not "
                             "support gradient checkpointing")
        self.encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)

    def gradient_checkpointing_disable(self):
        self.encoder.gradient_checkpointing_disable()

    # ------------------------------------------------------------------ forward
    def mix_layers(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, layers + 1, D) -> (B, D) by ``config.layer``."""
        layer = self.config.layer
        if layer == "weighted":
            return (torch.softmax(self.layer_weights, 0).to(pooled.dtype)[None, :, None] * pooled).sum(1)
        return pooled[:, -1] if layer == "last" else pooled[:, layer]

    def pool(self, states: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
        """(B, layers + 1, D): masked mean, or masked attention with one learned query."""
        if self.attention_query is None:
            return pooled_layers(states, masks)
        width = self.attention_query.shape[0]
        out = []
        for state, mask in zip(states, masks):
            state = pad_width(state, width)
            scores = (state @ self.attention_query.to(state.dtype)).masked_fill(~mask, torch.finfo(state.dtype).min)
            out.append((torch.softmax(scores.float(), dim=1).to(state.dtype).unsqueeze(-1) * state).sum(1))
        return torch.stack(out, dim=1)

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        is_longer: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        r"""
        input_values / input_features: the encoder's input as its feature extractor returns it (waveforms
            (B, samples) for wav2vec2-style encoders, (B, frames, mels) for AST, (B, mels, frames) for
            Whisper-style ones, (B, 1, frames, mels) for CLAP, (B, 3, mels, frames) for HouseX).
        attention_mask (`torch.LongTensor`, *optional*): the extractor's mask over samples or frames.
        labels (`torch.Tensor` of shape `(batch,)` or `(batch, num_labels)`, *optional*): class ids or soft labels.
        Returns `loss`, `logits` (B, num_labels).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        inputs = {"input_values": input_values, "input_features": input_features, "attention_mask": attention_mask,
                  "is_longer": is_longer}
        states, masks = layer_states(self.encoder, inputs)
        logits = self.classifier(self.dropout(self.mix_layers(self.pool(states, masks))))
        loss = None
        if labels is not None:
            loss = soft_label_cross_entropy(logits, labels, num_labels=self.config.num_labels,
                                            class_weights=self.config.class_weights)
        output = SequenceClassifierOutput(loss=loss, logits=logits)
        return output if return_dict else output.to_tuple()


__all__ = [
    "HouseXEncoderClassifierPreTrainedModel",
    "HouseXEncoderClassifierForAudioClassification",
    "build_encoder",
    "layer_states",
    "pooled_layers",
    "masked_mean",
    "num_states",
]
