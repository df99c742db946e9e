"""HouseX patch-CNN + transformer classifier (the model of the HouseX-v2 paper).

``input_features`` (B, C, F, T) with ``F == config.patch_size`` is cut into M square patches
(B, M, C, F, F) along time (hop ``config.patch_hop``).  All B*M patches go through the torchvision
backbone in ONE call (in eval mode optionally in chunks of ``config.backbone_chunk_size``), never
one patch at a time; each patch becomes a ``d_model`` vector (ReLU -> Linear -> Tanh on the
ImageNet logits, as the paper).  Positions are added (``config.position_embedding``), torch's
``nn.TransformerEncoderLayer`` layers mix the M patches (fully padded patches are masked out of
attention), and the pooled vector is classified.

Options that save memory never change the math: in training a BatchNorm backbone always sees
the whole batch (chunking would change its batch statistics), and gradient checkpointing
recomputes backbone blocks (and a ResNet's stem) and encoder layers without updating BatchNorm running statistics a
second time.  The forward has no data-dependent Python branch, so ``torch.export`` and
``torch.compile(fullgraph=True)`` work with and without an attention mask.

The backbones and their checkpoint units are in the sibling ``backbone_housex.py``; the loss is
`soft_label_cross_entropy`, a plain function that the HouseX trainer also applies to other
transformers audio classifiers.

Self-contained: imports only torch, transformers and its sibling configuration and backbone files
(relative imports), so ``save_pretrained`` can ship it as Hub custom code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput
from transformers.utils import logging

from .backbone_housex import build_backbone
from .configuration_housex import HouseXConfig

logger = logging.get_logger(__name__)


# ----------------------------------------------------------------------------------------------
# patches, positions, loss


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
    batch, channels, bands, num_frames = input_features.shape
    num_patches = (num_frames - patch_size) // patch_hop + 1
    # One gather straight into a contiguous (B, M, C, F, P) tensor (the copy that flattening unfold's
    # overlapping view made anyway): no stride reasoning left for torch.export with dynamic B and T.
    device = input_features.device
    frames = torch.arange(num_patches, device=device)[:, None] * patch_hop + torch.arange(patch_size, device=device)
    return input_features[
        torch.arange(batch, device=device)[:, None, None, None, None],
        torch.arange(channels, device=device)[:, None, None],
        torch.arange(bands, device=device)[:, None],
        frames[:, None, None, :],
    ]


def patch_mask_from_frames(attention_mask: torch.Tensor, patch_size: int, patch_hop: int) -> torch.Tensor:
    """Frame mask (B, T) (1 = real audio) -> patch mask (B, M) bool: a patch is kept if any frame is real.

    Patch 0 is always kept so that no clip is left with nothing to attend to.
    """
    mask = attention_mask.unfold(-1, patch_size, patch_hop).amax(-1) > 0
    mask[:, 0] = True
    return mask


def soft_label_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, *, num_labels: int, class_weights: list[float] | None = None
) -> torch.Tensor:
    """Cross-entropy of (B, num_labels) logits with probability targets: `labels` (B,) class ids or
    (B, num_labels) distributions.

    Hard ids are turned into one-hot rows, so a hard label and its one-hot soft label give the same
    loss.  ``class_weights`` (if given) weight each class's term; the mean is over the batch.  The loss
    of [`HouseXForAudioClassification`], and of any audio classifier the HouseX trainer trains.
    """
    if labels.ndim == 1 and not labels.is_floating_point():
        if not torch.compiler.is_compiling() and labels.numel() and (labels.min() < 0 or labels.max() >= num_labels):
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
    if class_weights is not None:
        weight = torch.tensor(class_weights, dtype=torch.float32, device=logits.device)
    return F.cross_entropy(logits.float(), targets.to(logits.device), weight=weight)


def _mark_initialized(module: nn.Module) -> None:
    """Flag tensors that their constructor initialised (torchvision's and torch's own init rules) so that
    ``post_init`` leaves them as they are: a fresh model keeps the numbers it always had (only the cls
    token and learned positions are drawn by ``_init_weights``).  On the meta device (``from_pretrained``)
    nothing is flagged and ``_init_weights`` initialises whatever a checkpoint lacks."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.device.type != "meta":
            tensor._is_hf_initialized = True


@dataclass
class HouseXModelOutput(BaseModelOutputWithPooling):
    """`BaseModelOutputWithPooling` plus the patch mask (B, M), a LongTensor like transformers' attention
    masks (1 = the patch holds real audio and is attended to), when an ``attention_mask`` was given.

    With ``return_dict=False`` the model returns ``to_tuple()`` of this: (last_hidden_state,
    pooler_output, hidden_states?, patch_mask?), the entries that are None left out.
    """

    patch_mask: torch.LongTensor | None = None


@dataclass
class HouseXAudioClassifierOutput(SequenceClassifierOutput):
    """`SequenceClassifierOutput` plus the pooled embedding (B, d_model) and the patch mask (B, M), a
    LongTensor like transformers' attention masks (1 = the patch holds real audio and is attended to).

    With ``return_dict=False`` the model returns ``to_tuple()`` of this: (loss?, logits,
    hidden_states?, pooler_output, patch_mask?), the entries that are None left out.
    """

    pooler_output: torch.FloatTensor | None = None
    patch_mask: torch.LongTensor | None = None


class HouseXPatchEmbeddings(nn.Module):
    """(B, C, F, T) spectrogram planes -> (B, M, d_model) patch embeddings (backbone called once)."""

    def __init__(self, config: HouseXConfig):
        super().__init__()
        self.config = config
        self.backbone, backbone_width = build_backbone(config)
        # "imagenet": ReLU -> Linear(1000, d) on the logits (paper); "replace": the head already outputs d.
        self.projection = nn.Linear(backbone_width, config.d_model) if config.backbone_head == "imagenet" else None
        self.has_batchnorm = any(isinstance(m, _BatchNorm) for m in self.backbone.modules())

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
        flat = patches.flatten(0, 1)
        # Chunks bound inference memory; a training BatchNorm must see the whole batch (its statistics).
        chunk = None if self.training and self.has_batchnorm else cfg.backbone_chunk_size
        if chunk is None or chunk >= flat.shape[0]:
            out = self.embed_patches(flat)
        else:
            out = torch.cat([self.embed_patches(part) for part in flat.split(chunk)])
        return out.reshape(batch, num_patches, -1)


class HouseXEncoderLayer(GradientCheckpointingLayer, nn.TransformerEncoderLayer):
    """torch's ``nn.TransformerEncoderLayer`` (batch first, post-norm, ReLU: same math and state dict
    keys), checkpointed by transformers' ``gradient_checkpointing_enable`` like any transformers layer."""


class HouseXPreTrainedModel(PreTrainedModel):
    config_class = HouseXConfig
    base_model_prefix = "housex"
    main_input_name = "input_features"
    input_modalities = "audio"
    supports_gradient_checkpointing = True
    # Our loss is a per-batch mean that ignores `num_items_in_batch`: let the Trainer scale it for
    # gradient accumulation itself.
    accepts_loss_kwargs = False
    _no_split_modules = ["HouseXPatchEmbeddings", "HouseXEncoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module):
        """Every parameter and buffer kind of the model, for what a checkpoint does not bring.

        A fresh model keeps its layers' constructor init (`_mark_initialized`); these rules, used on the
        meta device for keys a checkpoint lacks, follow the same conventions: convs Kaiming-normal (fan_out, ReLU), norms weight 1 / bias 0,
        BatchNorm running mean 0 / var 1 / count 0, attention in-projection Xavier-uniform, Linears and
        embeddings normal(0, initializer_range) with zero bias, any other parameter normal, a ViT class
        token 0.
        """
        std = self.config.initializer_range
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, (_BatchNorm, nn.LayerNorm, nn.GroupNorm)):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.MultiheadAttention):
            if module.in_proj_weight is not None:
                init.xavier_uniform_(module.in_proj_weight)
            if module.in_proj_bias is not None:
                init.zeros_(module.in_proj_bias)
        else:  # parameters a module holds itself: ours (cls token), torchvision ViT's class token / positions
            for name, param in module.named_parameters(recurse=False):
                if name == "class_token":
                    init.zeros_(param)
                else:
                    init.normal_(param, mean=0.0, std=std)


class HouseXModel(HouseXPreTrainedModel):
    """Patch embeddings + positions + transformer encoder + pooling; returns `HouseXModelOutput`."""

    def __init__(self, config: HouseXConfig):
        super().__init__(config)
        self.embeddings = HouseXPatchEmbeddings(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.d_model)) if config.pooling == "cls" else None
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, config.d_model)
            if config.position_embedding == "learned"
            else None
        )
        layer = HouseXEncoderLayer(
            d_model=config.d_model,
            nhead=config.num_attention_heads,
            dim_feedforward=config.intermediate_size,
            dropout=config.hidden_dropout_prob,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.num_hidden_layers, enable_nested_tensor=False)
        _mark_initialized(self.embeddings)
        _mark_initialized(self.encoder)
        self.post_init()

    def add_positions(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, M, d) patch embeddings + ``config.position_embedding`` positions."""
        num_patches, dim = embeddings.shape[1:]
        kind = self.config.position_embedding
        if kind == "sinusoidal":
            return embeddings + sinusoidal_positions(num_patches, dim, device=embeddings.device, dtype=embeddings.dtype)
        if kind == "learned":
            torch._check(
                num_patches <= self.config.max_position_embeddings,
                lambda: f"{num_patches} patches, more than HouseXConfig.max_position_embeddings="
                f"{self.config.max_position_embeddings}",
            )
            return embeddings + self.position_embeddings.weight[:num_patches].to(embeddings.dtype)
        return embeddings  # "none": the authors' code

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
    ) -> HouseXModelOutput | tuple:
        r"""
        input_features (`torch.FloatTensor` of shape `(batch, num_channels, patch_size, frames)`):
            Planes from [`HouseXFeatureExtractor`].
        attention_mask (`torch.LongTensor` of shape `(batch, frames)`, *optional*):
            1 for frames of real audio, 0 for padding; patches made only of padding are not attended to.
        output_attentions (`bool`, *optional*):
            Only `False`/`None`: torch's fused encoder layer does not return attention weights, so `True`
            raises a `ValueError` rather than returning nothing.
        Returns `last_hidden_state` (B, M[+1 with cls], d_model), `pooler_output` (B, d_model), `patch_mask`
        (B, M) when `attention_mask` was given and, with `output_hidden_states`, the encoder input and
        every layer's output; with `return_dict=False` the `to_tuple()` of that.
        """
        _no_attentions(output_attentions or self.config.output_attentions)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        cfg = self.config
        embeddings = self.embeddings(input_features)
        batch = embeddings.shape[0]
        hidden = self.add_positions(embeddings)
        patch_mask = patch_output = None
        if attention_mask is not None:
            patch_mask = patch_mask_from_frames(attention_mask.to(hidden.device), cfg.patch_size, cfg.patch_hop)
            patch_output = patch_mask.long()
        if self.cls_token is not None:
            hidden = torch.cat([self.cls_token.expand(batch, -1, -1).to(hidden.dtype), hidden], dim=1)
            if patch_mask is not None:
                patch_mask = torch.cat([patch_mask.new_ones(batch, 1), patch_mask], dim=1)
        padding_mask = None if patch_mask is None else ~patch_mask
        if padding_mask is not None and not torch.compiler.is_compiling() and not bool(padding_mask.any()):
            # Eager only: nothing is padded, so attend without a mask (torch's faster kernels, and the exact
            # numbers of earlier releases).  Traced graphs (export, compile) keep the all-False mask: no
            # data-dependent branch, same result to float rounding.
            padding_mask = None
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
        output = HouseXModelOutput(
            last_hidden_state=hidden,
            pooler_output=pooled,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            patch_mask=patch_output,
        )
        return output if return_dict else output.to_tuple()


def _no_attentions(output_attentions: bool | None) -> None:
    if output_attentions:
        raise ValueError(
            "HouseX: output_attentions=True is not supported: the encoder is torch's nn.TransformerEncoderLayer "
            "(fused attention), which does not return attention weights"
        )


class HouseXForAudioClassification(HouseXPreTrainedModel):
    """[`HouseXModel`] -> ReLU -> dropout -> Linear(d_model, num_labels), soft- or hard-label loss."""

    def __init__(self, config: HouseXConfig):
        super().__init__(config)
        self.housex = HouseXModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        _mark_initialized(self.classifier)
        self.post_init()

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
    ) -> HouseXAudioClassifierOutput | tuple:
        r"""
        labels (`torch.Tensor` of shape `(batch,)` (class ids) or `(batch, num_labels)` (soft), *optional*):
            Targets of the cross-entropy loss.
        Returns `loss`, `logits` (B, num_labels), `pooler_output` (B, d_model), `patch_mask` (B, M) when
        `attention_mask` was given, and `hidden_states` on request; with `return_dict=False` the
        `to_tuple()` of that.  `output_attentions` as in [`HouseXModel`].
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.housex(
            input_features,
            attention_mask=attention_mask,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            output_attentions=output_attentions,
        )
        pooled = outputs.pooler_output
        logits = self.classifier(self.dropout(F.relu(pooled)))
        loss = None
        if labels is not None:
            loss = soft_label_cross_entropy(
                logits, labels, num_labels=self.config.num_labels, class_weights=self.config.class_weights
            )
        output = HouseXAudioClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            pooler_output=pooled,
            patch_mask=outputs.patch_mask,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "HouseXPreTrainedModel",
    "HouseXModel",
    "HouseXForAudioClassification",
    "HouseXModelOutput",
    "HouseXAudioClassifierOutput",
    "HouseXPatchEmbeddings",
    "HouseXEncoderLayer",
    "sinusoidal_positions",
    "unfold_patches",
    "patch_mask_from_frames",
    "soft_label_cross_entropy",
]
