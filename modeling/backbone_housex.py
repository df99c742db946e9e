"""The backbones of the HouseX patch embeddings and their gradient checkpointing.

``build_backbone(config)`` returns the torchvision classifier (or our compact `PatchCNN`) named by
``config.backbone`` with its head attached (``config.backbone_head``), ImageNet weights loaded when
asked for, and its checkpoint units marked; `HOUSEX_BACKBONES` says, per backbone family, how to
build it and which of its parts are checkpoint units.

Checkpointing here never changes the math: a recomputation in the backward pass leaves BatchNorm
running statistics as the forward left them (`checkpoint_once`), so they are updated once per step
as without checkpointing.  Swapping a block's class for a checkpointed one keeps the state dict.

Self-contained (Hub custom code, copied by ``save_pretrained`` through the model file's relative
import): imports only torch, torchvision and its sibling configuration file.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.utils.checkpoint
import torchvision
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .configuration_housex import HouseXConfig


# ----------------------------------------------------------------------------------------------
# checkpointing that leaves BatchNorm running statistics alone on recomputation


@contextlib.contextmanager
def running_stats_kept(module: nn.Module):
    """Restore every BatchNorm running statistic under ``module`` on exit (a recomputation's updates undone)."""
    buffers = [
        buf
        for m in module.modules()
        if isinstance(m, _BatchNorm)
        for buf in (m.running_mean, m.running_var, m.num_batches_tracked)
        if buf is not None
    ]
    saved = [buf.clone() for buf in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in zip(buffers, saved):
                buf.copy_(value)


def checkpoint_once(function: Callable, module: nn.Module, *args):
    """``torch.utils.checkpoint.checkpoint(function, *args)`` where every call of ``function`` after the
    first (the backward recomputation) keeps ``module``'s BatchNorm running statistics as the first call
    left them: they are updated once per step, as without checkpointing.

    Always the non-reentrant variant, whatever ``gradient_checkpointing_kwargs`` chose for the encoder
    layers: reentrant checkpointing gives no gradients to the parameters of a unit whose input needs
    none, as the first backbone block's input (the spectrogram patches)."""
    calls = 0

    def run(*inner_args):
        nonlocal calls
        calls += 1
        if calls == 1:
            return function(*inner_args)
        with running_stats_kept(module):
            return function(*inner_args)

    return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=False)


class CheckpointedBlock:
    """Mixin put in front of a backbone block's class (``checkpointed_class``): its forward becomes one
    checkpoint unit.  ``gradient_checkpointing`` is switched by transformers'
    ``gradient_checkpointing_enable`` like on any checkpointable module; the state dict is unchanged
    (no wrapper module)."""

    gradient_checkpointing = False

    def forward(self, *args, **kwargs):
        function = functools.partial(super().forward, **kwargs)
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint_once(function, self, *args)
        return function(*args)


@functools.cache
def checkpointed_class(cls: type, mixin: type = CheckpointedBlock) -> type:
    """``cls`` with ``mixin`` (`CheckpointedBlock` by default) in front (one class per pair)."""
    return type(f"Checkpointed{cls.__name__}", (mixin, cls), {"__module__": __name__})


class CheckpointedSequential(nn.Sequential):
    """An ``nn.Sequential`` of conv layers (VGG's and PatchCNN's ``features``) whose checkpoint units are
    its segments ending at each max-pool; without checkpointing it runs exactly as ``nn.Sequential``."""

    gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.gradient_checkpointing and self.training and torch.is_grad_enabled()):
            return super().forward(x)
        ends = [i + 1 for i, m in enumerate(self) if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
        if not ends or ends[-1] != len(self):
            ends.append(len(self))
        start = 0
        for end in ends:
            segment = self[start:end]
            x = checkpoint_once(segment, segment, x)
            start = end
        return x


class CheckpointedResNetStem:
    """Mixin put in front of torchvision's ``ResNet`` class: with checkpointing on, its stem (conv1 ->
    bn1 -> ReLU -> max-pool) is one more checkpoint unit.  The stem holds the largest activations of
    the net (64 channels at half the patch size: ~40 % of a resnet18 step's saved tensors); the
    blocks of layer1..4 are units of their own (`CheckpointedBlock`).  Without checkpointing, and in
    eval, torchvision's own forward runs."""

    gradient_checkpointing = False

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.gradient_checkpointing and self.training and torch.is_grad_enabled()):
            return super().forward(x)
        x = checkpoint_once(self.stem, self.bn1, x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------------------------
# backbones: one table


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
        self.features = CheckpointedSequential(*layers)  # one checkpoint unit per block
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last activations: oneDNN's convolutions on them take ~20% less CPU time for
        # these narrow layers (the weights keep their layout, so checkpoints are unchanged)
        x = x.contiguous(memory_format=torch.channels_last)
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def _torchvision_model(config: HouseXConfig, **kwargs) -> nn.Module:
    try:
        return torchvision.models.get_model(config.backbone, weights=None, **kwargs)
    except (ValueError, KeyError) as e:
        raise ValueError(f"HouseXConfig.backbone={config.backbone!r} is not a torchvision model: {e}") from e


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone family and which of its parts are checkpoint units.

    ``build(config, **kwargs)`` returns the classifier; ``default_kwargs(config)`` are merged under
    ``config.backbone_kwargs``; ``blocks`` are class names checkpointed one by one (each gets
    `CheckpointedBlock`), ``segmented`` names ``nn.Sequential`` attributes checkpointed segment by
    segment; ``model_mixin`` (if set) is put in front of the backbone's own class, for checkpoint units
    that are no submodule (the ResNet stem: `CheckpointedResNetStem`); ``imagenet`` says whether
    torchvision ImageNet weights exist for it.
    """

    build: Callable[..., nn.Module] = _torchvision_model
    default_kwargs: Callable[[HouseXConfig], dict] = lambda config: {}
    blocks: tuple[str, ...] = ()
    segmented: tuple[str, ...] = ()
    model_mixin: type | None = None
    imagenet: bool = True


#: Backbones by name (ours) or by torchvision module (a family: resnet18...152 are "resnet"), in the
#: way of ``torchvision.models.get_model``'s registry.  Any other torchvision classifier builds with
#: the default spec (its encoder layers are still checkpointed, its backbone runs unchanged).
HOUSEX_BACKBONES: dict[str, BackboneSpec] = {
    "patch_cnn": BackboneSpec(
        build=lambda config, **kw: PatchCNN(in_channels=config.num_channels, **kw), imagenet=False
    ),
    "patch_cnn_small": BackboneSpec(
        build=lambda config, **kw: PatchCNN(widths=(16, 32, 64, 64), in_channels=config.num_channels, **kw),
        imagenet=False,
    ),
    "resnet": BackboneSpec(blocks=("BasicBlock", "Bottleneck"), model_mixin=CheckpointedResNetStem),
    "densenet": BackboneSpec(blocks=("_DenseBlock", "_Transition")),  # not _DenseLayer: its input list grows
    "vgg": BackboneSpec(segmented=("features",)),
    "efficientnet": BackboneSpec(blocks=("MBConv", "FusedMBConv")),
    "mobilenetv2": BackboneSpec(blocks=("InvertedResidual",)),
    "mobilenetv3": BackboneSpec(blocks=("InvertedResidual",)),
    "convnext": BackboneSpec(blocks=("CNBlock",)),
    # ViTs fix their input size at construction
    "vision_transformer": BackboneSpec(
        default_kwargs=lambda config: {"image_size": config.patch_size}, blocks=("EncoderBlock",)
    ),
}


def backbone_spec(name: str) -> BackboneSpec:
    """The `HOUSEX_BACKBONES` entry of backbone ``name``: by name, else by its torchvision module."""
    if name in HOUSEX_BACKBONES:
        return HOUSEX_BACKBONES[name]
    try:
        family = torchvision.models.get_model_builder(name).__module__.rsplit(".", 1)[-1]
    except ValueError as e:
        raise ValueError(f"HouseXConfig.backbone={name!r} is not a torchvision model: {e}") from e
    return HOUSEX_BACKBONES.get(family, BackboneSpec())


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


class BackboneWeightsUnavailable(OSError):
    """``backbone_pretrained`` asked for ImageNet weights that could not be fetched (offline, a bad
    download).  ``backbone``, ``url`` and ``reason`` let a command line say it in its own terms."""

    def __init__(self, backbone: str, url: str, reason: str):
        self.backbone, self.url, self.reason = backbone, url, reason
        super().__init__(
            f"HouseXConfig.backbone_pretrained=True: could not fetch the ImageNet weights of {backbone!r} from {url} "
            f"({reason}). Download that file where there is internet and pass "
            f"HouseXConfig(backbone_weights_path='/path/to/{Path(url).name}') (a .pth or .safetensors state dict), "
            f"or set backbone_pretrained=False."
        )


def _imagenet_state_dict(config: HouseXConfig) -> dict[str, torch.Tensor]:
    if config.backbone_weights_path:
        return load_backbone_state_dict(config.backbone_weights_path)
    weights = torchvision.models.get_model_weights(config.backbone).DEFAULT
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # offline: URLError, socket errors, hash mismatch…
        reason = getattr(e, "reason", None) or e  # URLError: the socket error, without "<urlopen error ...>"
        raise BackboneWeightsUnavailable(config.backbone, weights.url, f"{type(e).__name__}: {reason}") from e


def build_backbone(config: HouseXConfig) -> tuple[nn.Module, int]:
    """The backbone named by ``config.backbone`` (see `HOUSEX_BACKBONES`) with its head attached,
    its checkpoint units marked, and its output width.

    ImageNet weights are loaded when ``backbone_pretrained``/``backbone_weights_path`` ask for them,
    except while transformers builds the model on the meta device (from_pretrained brings weights).
    """
    spec = backbone_spec(config.backbone)
    wants_weights = config.backbone_pretrained or config.backbone_weights_path
    if wants_weights and not spec.imagenet:
        raise ValueError(f"HouseXConfig.backbone={config.backbone!r} has no ImageNet weights: "
                         f"set backbone_pretrained=False and no backbone_weights_path")
    backbone = spec.build(config, **{**spec.default_kwargs(config), **config.backbone_kwargs})
    on_meta = any(p.device.type == "meta" for p in backbone.parameters())
    if wants_weights and not on_meta:
        state_dict = _imagenet_state_dict(config)
        try:
            backbone.load_state_dict(state_dict)
        except RuntimeError as e:
            source = config.backbone_weights_path or "torchvision ImageNet weights"
            raise ValueError(f"backbone weights {source!r} do not fit {config.backbone!r}: {e}") from e
    for module in backbone.modules():
        if type(module).__name__ in spec.blocks:
            module.__class__ = checkpointed_class(type(module))
    for name in spec.segmented:
        backbone.get_submodule(name).__class__ = CheckpointedSequential
    if spec.model_mixin is not None:
        backbone.__class__ = checkpointed_class(type(backbone), spec.model_mixin)
    return _attach_head(backbone, config)


def _attach_head(backbone: nn.Module, config: HouseXConfig) -> tuple[nn.Module, int]:
    head_name, head = find_classifier_head(backbone)
    if config.backbone_head == "replace":
        backbone.set_submodule(head_name, nn.Linear(head.in_features, config.d_model))
        return backbone, config.d_model
    return backbone, head.out_features


__all__ = [
    "BackboneSpec",
    "BackboneWeightsUnavailable",
    "HOUSEX_BACKBONES",
    "PatchCNN",
    "backbone_spec",
    "build_backbone",
    "find_classifier_head",
    "load_backbone_state_dict",
]
