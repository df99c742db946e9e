"""HouseX patch-CNN + transformer classifier (the model of the HouseX-v2 paper).

``input_features`` (B, C, F, T) with ``F == config.patch_size`` is cut into M square patches
(B, M, C, F, F) along time (hop ``config.patch_hop``).  All B*M patches go through the torchvision
backbone in ONE call (or in chunks of ``config.backbone_chunk_size``), never one patch at a time;
each patch becomes a ``d_model`` vector (ReLU -> Linear -> Tanh on the ImageNet logits, as the
paper).  Sinusoidal positions are added, an ``nn.TransformerEncoder`` mixes the M patches (fully
padded patches are masked out of attention), and the pooled vector is classified.

Self-contained: imports only torch, torchvision, transformers and its sibling configuration file,
so ``save_pretrained`` can ship it as Hub custom code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput
from transformers.utils import logging

from .configuration_housex import HouseXConfig

logger = logging.get_logger(__name__)

# Extra get_model kwargs per backbone-name prefix (ViTs fix their input size at construction).
_BACKBONE_KWARGS = {"vit_": lambda config: {"image_size": config.patch_size}}


class PatchCNN(nn.Module):
    """A compact VGG-style CNN for small spectrogram patches (the CPU configs' backbone).

    ImageNet backbones shrink their input 4x in the stem and 32x in all, which leaves a 32x32
    patch 1x1 after stage 4; this net keeps full resolution in its first block and halves it
    once per block.  ``len(widths)`` blocks of (3x3 conv -> BatchNorm -> ReLU) x 2 -> 2x2 max-pool,
    then global average pooling and ``fc`` (the head that ``backbone_head`` keeps or replaces).
    (N, in_channels, P, P) -> (N, num_classes).
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 128), in_channels: int = 3, num_classes: int = 1000):
        super().__init__()
        layers, width_in = [], in_channels
        for width in widths:
            for conv_in in (width_in, width):
                layers += [nn.Conv2d(conv_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            width_in = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


#: Backbones defined here, by name, besides every torchvision classification model.
HOUSEX_BACKBONES = {
    "patch_cnn": lambda config, **kw: PatchCNN(in_channels=config.num_channels, **kw),
    "patch_cnn_small": lambda config, **kw: PatchCNN(widths=(16, 32, 64, 64), in_channels=config.num_channels, **kw),
}


def sinusoidal_positions(num_positions: int, dim: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Vaswani et al. positions, (num_positions, dim): sin on even, cos on odd channels."""
    position = torch.arange(num_positions, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(num_positions, dim, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)[:, : dim // 2]
    return pe.to(dtype)


def unfold_patches(input_features: torch.Tensor, patch_size: int, patch_hop: int) -> torch.Tensor:
    """(B, C, F, T) -> (B, M, C, F, patch_size) windows along time, M = 1 + (T - patch_size) // hop."""
    if input_features.ndim != 4:
        raise ValueError(f"input_features must be (batch, channels, n_mels, frames), got shape {tuple(input_features.shape)}")
    if input_features.shape[-1] < patch_size:
        raise ValueError(
            f"input_features has {input_features.shape[-1]} frames, fewer than one patch (patch_size={patch_size})"
        )
    return input_features.unfold(-1, patch_size, patch_hop).permute(0, 3, 1, 2, 4)


def patch_mask_from_frames(attention_mask: torch.Tensor, patch_size: int, patch_hop: int) -> torch.Tensor:
    """Frame mask (B, T) (1 = real audio) -> patch mask (B, M) bool: a patch is kept if any frame is real.

    Patch 0 is always kept so that no clip is left with nothing to attend to.
    """
    mask = attention_mask.unfold(-1, patch_size, patch_hop).amax(-1) > 0
    mask[:, 0] = True
    return mask


def find_classifier_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """Name and module of the final ``nn.Linear`` of a torchvision classifier (fc, classifier[-1], heads.head…)."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"backbone {type(model).__name__} has no nn.Linear classification head to attach to")
    return linears[-1]


def load_backbone_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A torchvision state dict from a local ``.safetensors`` or ``.pth`` file (weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone_weights_path {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state_dict = load_file(str(path))
    else:
        state_dict = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"backbone_weights_path {str(path)!r} is not a state dict of tensors")
    return state_dict


def _imagenet_state_dict(config: HouseXConfig) -> dict[str, torch.Tensor]:
    if config.backbone_weights_path:
        return load_backbone_state_dict(config.backbone_weights_path)
    weights = torchvision.models.get_model_weights(config.backbone).DEFAULT
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # offline: URLError, socket errors, hash mismatch…
        raise OSError(
            f"HouseXConfig.backbone_pretrained=True: could not fetch the ImageNet weights of {config.backbone!r} "
            f"from {weights.url} ({type(e).__name__}: {e}). Download that file where there is internet and pass "
            f"HouseXConfig(backbone_weights_path='/path/to/{Path(weights.url).name}') (a .pth or .safetensors "
            f"state dict), or set backbone_pretrained=False."
        ) from e


def build_backbone(config: HouseXConfig) -> tuple[nn.Module, int]:
    """The backbone named by ``config.backbone`` (ours in ``HOUSEX_BACKBONES``, else torchvision's)
    and its output width.

    ImageNet weights are loaded when ``backbone_pretrained``/``backbone_weights_path`` ask for them,
    except while transformers builds the model on the meta device (from_pretrained brings weights).
    """
    if config.backbone in HOUSEX_BACKBONES:
        if config.backbone_pretrained or config.backbone_weights_path:
            raise ValueError(f"HouseXConfig.backbone={config.backbone!r} has no ImageNet weights: "
                             f"set backbone_pretrained=False and no backbone_weights_path")
        backbone = HOUSEX_BACKBONES[config.backbone](config, **config.backbone_kwargs)
        return _attach_head(backbone, config)
    kwargs = {}
    for prefix, make in _BACKBONE_KWARGS.items():
        if config.backbone.startswith(prefix):
            kwargs.update(make(config))
    kwargs.update(config.backbone_kwargs)
    try:
        backbone = torchvision.models.get_model(config.backbone, weights=None, **kwargs)
    except (ValueError, KeyError) as e:
        raise ValueError(f"HouseXConfig.backbone={config.backbone!r} is not a torchvision model: {e}") from e
    on_meta = any(p.device.type == "meta" for p in backbone.parameters())
    if (config.backbone_pretrained or config.backbone_weights_path) and not on_meta:
        state_dict = _imagenet_state_dict(config)
        try:
            backbone.load_state_dict(state_dict)
        except RuntimeError as e:
            source = config.backbone_weights_path or "torchvision ImageNet weights"
            raise ValueError(f"backbone weights {source!r} do not fit {config.backbone!r}: {e}") from e
    return _attach_head(backbone, config)


def _attach_head(backbone: nn.Module, config: HouseXConfig) -> tuple[nn.Module, int]:
    head_name, head = find_classifier_head(backbone)
    if config.backbone_head == "replace":
        backbone.set_submodule(head_name, nn.Linear(head.in_features, config.d_model))
        return backbone, config.d_model
    return backbone, head.out_features


@dataclass
class HouseXAudioClassifierOutput(SequenceClassifierOutput):
    """`SequenceClassifierOutput` plus the pooled embedding (B, d_model) and the patch mask (B, M)."""

    pooler_output: torch.FloatTensor | None = None
    patch_mask: torch.BoolTensor | None = None


class HouseXPatchEmbeddings(nn.Module):
    """(B, C, F, T) spectrogram planes -> (B, M, d_model) patch embeddings (backbone called once)."""

    def __init__(self, config: HouseXConfig):
        super().__init__()
        self.config = config
        self.backbone, backbone_width = build_backbone(config)
        # "imagenet": ReLU -> Linear(1000, d) on the logits (paper); "replace": the head already outputs d.
        self.projection = nn.Linear(backbone_width, config.d_model) if config.backbone_head == "imagenet" else None
        self.gradient_checkpointing = False

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, C, P, P) -> (N, d_model)."""
        x = self.backbone(patches)
        if self.projection is not None:
            x = self.projection(F.relu(x))
        return torch.tanh(x)

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if input_features.shape[1] != cfg.num_channels or input_features.shape[2] != cfg.patch_size:
            raise ValueError(
                f"input_features shape {tuple(input_features.shape)}: expected (batch, {cfg.num_channels}, "
                f"{cfg.patch_size}, frames) for this config (num_channels, patch_size = n_mels)"
            )
        patches = unfold_patches(input_features, cfg.patch_size, cfg.patch_hop)
        batch, num_patches = patches.shape[:2]
        flat = patches.reshape(batch * num_patches, *patches.shape[2:])
        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        chunk = cfg.backbone_chunk_size or (num_patches if checkpointing else None)
        if chunk is None or chunk >= flat.shape[0] and not checkpointing:
            out = self.embed_patches(flat)
        else:
            outs = []
            for part in flat.split(chunk):
                if checkpointing:
                    outs.append(self._gradient_checkpointing_func(self.embed_patches, part))
                else:
                    outs.append(self.embed_patches(part))
            out = torch.cat(outs)
        return out.reshape(batch, num_patches, -1)


class HouseXPreTrainedModel(PreTrainedModel):
    config_class = HouseXConfig
    base_model_prefix = "housex"
    main_input_name = "input_features"
    input_modalities = "audio"
    supports_gradient_checkpointing = True
    # Our loss is a per-batch mean that ignores `num_items_in_batch`: let the Trainer scale it for
    # gradient accumulation itself.
    accepts_loss_kwargs = False
    _no_split_modules = ["HouseXPatchEmbeddings", "TransformerEncoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module):
        # The torchvision backbone keeps its own init (or its ImageNet weights): only our layers here.
        std = self.config.initializer_range
        if isinstance(module, HouseXPatchEmbeddings):
            if module.projection is not None:
                init.normal_(module.projection.weight, mean=0.0, std=std)
                init.zeros_(module.projection.bias)
        elif isinstance(module, HouseXModel):
            if module.cls_token is not None:
                init.normal_(module.cls_token, mean=0.0, std=std)
        elif isinstance(module, HouseXForAudioClassification):
            init.normal_(module.classifier.weight, mean=0.0, std=std)
            init.zeros_(module.classifier.bias)


class HouseXModel(HouseXPreTrainedModel):
    """Patch embeddings + positions + transformer encoder + pooling; returns `BaseModelOutputWithPooling`."""

    def __init__(self, config: HouseXConfig):
        super().__init__(config)
        self.embeddings = HouseXPatchEmbeddings(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.d_model)) if config.pooling == "cls" else None
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.num_attention_heads,
            dim_feedforward=config.intermediate_size,
            dropout=config.hidden_dropout_prob,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.num_hidden_layers, enable_nested_tensor=False)
        self.post_init()

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        r"""
        input_features (`torch.FloatTensor` of shape `(batch, num_channels, patch_size, frames)`):
            Planes from [`HouseXFeatureExtractor`].
        attention_mask (`torch.LongTensor` of shape `(batch, frames)`, *optional*):
            1 for frames of real audio, 0 for padding; patches made only of padding are not attended to.
        Returns `last_hidden_state` (B, M[+1 with cls], d_model), `pooler_output` (B, d_model) and, with
        `output_hidden_states`, the encoder input and every layer's output.
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        cfg = self.config
        embeddings = self.embeddings(input_features)
        batch, num_patches, dim = embeddings.shape
        hidden = embeddings + sinusoidal_positions(num_patches, dim, device=embeddings.device, dtype=embeddings.dtype)
        patch_mask = None
        if attention_mask is not None:
            patch_mask = patch_mask_from_frames(attention_mask.to(hidden.device), cfg.patch_size, cfg.patch_hop)
        if self.cls_token is not None:
            hidden = torch.cat([self.cls_token.expand(batch, -1, -1).to(hidden.dtype), hidden], dim=1)
            if patch_mask is not None:
                patch_mask = torch.cat([patch_mask.new_ones(batch, 1), patch_mask], dim=1)
        padding_mask = None if patch_mask is None or bool(patch_mask.all()) else ~patch_mask
        all_hidden = [hidden] if output_hidden_states else None
        for layer in self.encoder.layers:
            hidden = layer(hidden, src_key_padding_mask=padding_mask)
            if output_hidden_states:
                all_hidden.append(hidden)
        if cfg.pooling == "mean":
            keep = torch.ones(hidden.shape[:2], dtype=hidden.dtype, device=hidden.device)
            if patch_mask is not None:
                keep = patch_mask.to(hidden.dtype)
            pooled = (hidden * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
        else:  # "first" (paper) and "cls" both read position 0
            pooled = hidden[:, 0]
        if not return_dict:
            return (hidden, pooled) + ((tuple(all_hidden),) if output_hidden_states else ())
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=pooled,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
        )


class HouseXForAudioClassification(HouseXPreTrainedModel):
    """[`HouseXModel`] -> ReLU -> dropout -> Linear(d_model, num_labels), soft- or hard-label loss."""

    def __init__(self, config: HouseXConfig):
        super().__init__(config)
        self.housex = HouseXModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        self.post_init()

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy with probability targets: `labels` (B,) class ids or (B, num_labels) distributions.

        Hard ids are turned into one-hot rows, so a hard label and its one-hot soft label give the same
        loss.  ``config.class_weights`` (if set) weight each class's term; the mean is over the batch.
        """
        num_labels = self.config.num_labels
        if labels.ndim == 1 and not labels.is_floating_point():
            if labels.numel() and (labels.min() < 0 or labels.max() >= num_labels):
                raise ValueError(f"labels: class ids must be in [0, {num_labels}), got {labels.tolist()}")
            targets = F.one_hot(labels.long(), num_labels).float()
        elif labels.ndim == 2 and labels.shape[-1] == num_labels:
            targets = labels.float()
        else:
            raise ValueError(
                f"labels: expected (batch,) class ids or (batch, {num_labels}) soft labels, "
                f"got shape {tuple(labels.shape)} dtype {labels.dtype}"
            )
        weight = None
        if self.config.class_weights is not None:
            weight = torch.tensor(self.config.class_weights, dtype=torch.float32, device=logits.device)
        return F.cross_entropy(logits.float(), targets.to(logits.device), weight=weight)

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> HouseXAudioClassifierOutput | tuple:
        r"""
        labels (`torch.Tensor` of shape `(batch,)` (class ids) or `(batch, num_labels)` (soft), *optional*):
            Targets of the cross-entropy loss.
        Returns `loss`, `logits` (B, num_labels), `pooler_output` (B, d_model), `patch_mask` (B, M) when
        `attention_mask` was given, and `hidden_states` on request.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.housex(
            input_features, attention_mask=attention_mask, output_hidden_states=output_hidden_states, return_dict=True
        )
        pooled = outputs.pooler_output
        logits = self.classifier(self.dropout(F.relu(pooled)))
        loss = self.compute_loss(logits, labels) if labels is not None else None
        patch_mask = None
        if attention_mask is not None:
            patch_mask = patch_mask_from_frames(
                attention_mask.to(logits.device), self.config.patch_size, self.config.patch_hop
            )
        if not return_dict:
            out = (logits, pooled) + ((outputs.hidden_states,) if outputs.hidden_states is not None else ())
            return ((loss,) + out) if loss is not None else out
        return HouseXAudioClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            pooler_output=pooled,
            patch_mask=patch_mask,
        )


__all__ = [
    "HouseXPreTrainedModel",
    "HouseXModel",
    "HouseXForAudioClassification",
    "HouseXAudioClassifierOutput",
    "HouseXPatchEmbeddings",
    "build_backbone",
    "HOUSEX_BACKBONES",
    "PatchCNN",
    "find_classifier_head",
    "sinusoidal_positions",
    "unfold_patches",
    "patch_mask_from_frames",
]
