"""HouseX model configuration.

The model of the HouseX-v2 paper: a square window (``patch_size`` x ``patch_size``) slides along
the time axis of a 3-plane spectrogram with a hop of ``patch_hop`` frames; every patch goes through
a torchvision image classifier (the *backbone*), ReLU, a Linear to ``d_model`` and Tanh; positions
are added (``position_embedding``) and a small transformer encoder (torch's
``nn.TransformerEncoderLayer``) mixes the patches; one pooled vector is classified into the 8
sub-genres.

Every size is a config field.  Three documented presets exist (``HouseXConfig.from_preset``):

- ``"paper"``: 224 mels, hop 16, ResNet152, d_model 768, 1 layer, 6 heads (the paper's best,
  sinusoidal positions added as the paper's text says);
- ``"authors"``: the same model exactly as the authors' ``model.py`` runs it: no positions (their
  code builds a sinusoidal encoding but never applies it), torch's TransformerEncoder defaults,
  output at position 0, ImageNet head -> ReLU -> Linear(1000, 768) -> Tanh;
- ``"cpu-small"``: 64 mels, hop 32, ResNet18, d_model 128, 1 layer, 4 heads: trains in minutes
  on a 2-core CPU.

This file must stay self-contained (it is copied next to saved models as Hub custom code).
"""

from __future__ import annotations

from transformers import PretrainedConfig

# Own copy of the canonical genre order (index = class id); tests check that it equals
# housex.dataset_script.genres.GENRES, which this file cannot import (Hub custom code).
HOUSEX_GENRES: tuple[str, ...] = (
    "Progressive House",
    "Future House",
    "Bass House",
    "Tech House",
    "Deep House",
    "Bigroom",
    "Future Rave",
    "Slap House",
)

POOLING_MODES = ("first", "cls", "mean")
BACKBONE_HEADS = ("imagenet", "replace")
POSITION_EMBEDDINGS = ("sinusoidal", "none", "learned")

HOUSEX_PRESETS: dict[str, dict] = {
    "paper": dict(
        backbone="resnet152",
        patch_size=224,
        patch_hop=16,
        d_model=768,
        num_hidden_layers=1,
        num_attention_heads=6,
        intermediate_size=2048,
    ),
    "authors": dict(
        backbone="resnet152",
        backbone_head="imagenet",
        patch_size=224,
        patch_hop=16,
        d_model=768,
        num_hidden_layers=1,
        num_attention_heads=6,
        intermediate_size=2048,  # nn.TransformerEncoderLayer's defaults: dim_feedforward 2048,
        hidden_dropout_prob=0.1,  # dropout 0.1, ReLU, post-norm, layer_norm_eps 1e-5
        classifier_dropout=0.0,
        pooling="first",
        position_embedding="none",
    ),
    "cpu-small": dict(
        backbone="resnet18",
        patch_size=64,
        patch_hop=32,
        d_model=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=256,
    ),
}


class HouseXConfig(PretrainedConfig):
    r"""Configuration of [`HouseXModel`] / [`HouseXForAudioClassification`].

    Args:
        backbone (`str`, defaults to `"resnet18"`):
            Name of a torchvision classification model (`torchvision.models.get_model`), e.g.
            resnet18…152, densenet121/201, vgg11_bn, vit_b_16, efficientnet_b0, mobilenet_v3_small,
            or one of ours for small patches: `"patch_cnn"` (4 VGG-style blocks, widths
            32-64-128-128) and `"patch_cnn_small"`.  `HOUSEX_BACKBONES` in `backbone_housex.py` is the
            one table of backbone families (builder, default kwargs, checkpoint units).
        backbone_pretrained (`bool`, defaults to `False`):
            Start from torchvision's ImageNet weights.  They are fetched from the internet unless
            `backbone_weights_path` is given; offline this raises an `OSError` saying how to pass
            a local file.  Ignored when weights are loaded with `from_pretrained`.
        backbone_weights_path (`str`, *optional*):
            Local `.pth` (read with `torch.load(weights_only=True)`) or `.safetensors` state dict
            of the torchvision backbone with its ImageNet head.
        backbone_head (`str`, defaults to `"imagenet"`):
            `"imagenet"` keeps the backbone's 1000-way head and projects its logits (ReLU ->
            Linear(1000, d_model) -> Tanh) as the paper does; `"replace"` swaps the final Linear
            for Linear(in_features, d_model) (-> Tanh): fewer parameters.
        backbone_kwargs (`dict`, *optional*):
            Extra keyword arguments for the backbone's builder (ViTs get `image_size=patch_size` by default).
        backbone_chunk_size (`int`, *optional*):
            At most this many patches per backbone call, to bound inference memory; `None` = all
            patches of the batch at once.  A BatchNorm backbone in training always sees the whole
            batch (chunks would change its statistics): bound training memory with gradient
            checkpointing, which recomputes backbone blocks and encoder layers with the same math.
        num_channels (`int`, defaults to 3): planes of `input_features`.
        patch_size (`int`, defaults to 224): window height and width = number of mel bands.
        patch_hop (`int`, defaults to 16): window hop along time, in frames.
        d_model (`int`, defaults to 768): transformer width.
        num_hidden_layers (`int`, defaults to 1): transformer encoder layers.
        num_attention_heads (`int`, defaults to 6): attention heads (must divide `d_model`).
        intermediate_size (`int`, defaults to 2048): feed-forward width (torch's default).
        hidden_dropout_prob (`float`, defaults to 0.1): dropout inside the encoder layers.
        classifier_dropout (`float`, defaults to 0.0): dropout before the classifier.
        position_embedding (`str`, defaults to `"sinusoidal"`): what is added to the patch embeddings
            before the encoder: `"sinusoidal"` (Vaswani et al., the paper's text), `"none"` (the
            authors' code: the encoder then sees an unordered set of patches) or `"learned"` (an
            `nn.Embedding` of `max_position_embeddings` rows).
        max_position_embeddings (`int`, defaults to 512): most patches per clip with `"learned"`.
        pooling (`str`, defaults to `"first"`): `"first"` (output at position 0, the paper),
            `"cls"` (a learned token prepended) or `"mean"` (mean over unpadded patches).
        class_weights (`list[float]`, *optional*): per-class loss weights (length `num_labels`).
        initializer_range (`float`, defaults to 0.02): std of the normal init of Linears and embeddings.

    `hidden_size` is an alias of `d_model` (as in transformers' own configs): `HouseXConfig(hidden_size=64)`
    sets `d_model=64`.
    """

    model_type = "housex"
    attribute_map = {"hidden_size": "d_model"}

    def __init__(
        self,
        backbone: str = "resnet18",
        backbone_pretrained: bool = False,
        backbone_weights_path: str | None = None,
        backbone_head: str = "imagenet",
        backbone_kwargs: dict | None = None,
        backbone_chunk_size: int | None = None,
        num_channels: int = 3,
        patch_size: int = 224,
        patch_hop: int = 16,
        d_model: int = 768,
        num_hidden_layers: int = 1,
        num_attention_heads: int = 6,
        intermediate_size: int = 2048,
        hidden_dropout_prob: float = 0.1,
        classifier_dropout: float = 0.0,
        pooling: str = "first",
        position_embedding: str = "sinusoidal",
        max_position_embeddings: int = 512,
        class_weights: list[float] | None = None,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        if "hidden_size" in kwargs:  # the attribute_map alias (PretrainedConfig would set it, then lose it below)
            d_model = kwargs.pop("hidden_size")
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = dict(enumerate(HOUSEX_GENRES))
            kwargs["label2id"] = {name: i for i, name in enumerate(HOUSEX_GENRES)}
        super().__init__(**kwargs)
        if pooling not in POOLING_MODES:
            raise ValueError(f"HouseXConfig.pooling={pooling!r}: expected one of {POOLING_MODES}")
        if position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(
                f"HouseXConfig.position_embedding={position_embedding!r}: expected one of {POSITION_EMBEDDINGS}"
            )
        if max_position_embeddings < 1:
            raise ValueError(f"HouseXConfig.max_position_embeddings={max_position_embeddings} must be >= 1")
        if backbone_head not in BACKBONE_HEADS:
            raise ValueError(f"HouseXConfig.backbone_head={backbone_head!r}: expected one of {BACKBONE_HEADS}")
        if d_model % num_attention_heads:
            raise ValueError(
                f"HouseXConfig.d_model={d_model} is not divisible by num_attention_heads={num_attention_heads}"
            )
        if patch_size < 1 or patch_hop < 1:
            raise ValueError(f"HouseXConfig.patch_size={patch_size} and patch_hop={patch_hop} must be >= 1")
        if backbone_chunk_size is not None and backbone_chunk_size < 1:
            raise ValueError(f"HouseXConfig.backbone_chunk_size={backbone_chunk_size} must be >= 1 or None")
        if class_weights is not None:
            class_weights = [float(w) for w in class_weights]
            if len(class_weights) != self.num_labels:
                raise ValueError(
                    f"HouseXConfig.class_weights has {len(class_weights)} entries, expected num_labels={self.num_labels}"
                )
        self.backbone = backbone
        self.backbone_pretrained = bool(backbone_pretrained)
        self.backbone_weights_path = None if backbone_weights_path is None else str(backbone_weights_path)
        self.backbone_head = backbone_head
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.backbone_chunk_size = backbone_chunk_size
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.patch_hop = patch_hop
        self.d_model = d_model
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.classifier_dropout = classifier_dropout
        self.pooling = pooling
        self.position_embedding = position_embedding
        self.max_position_embeddings = max_position_embeddings
        self.class_weights = class_weights
        self.initializer_range = initializer_range

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "HouseXConfig":
        """A config from `HOUSEX_PRESETS[name]` (`"paper"`, `"authors"`, `"cpu-small"`) with `overrides` applied."""
        if name not in HOUSEX_PRESETS:
            raise ValueError(f"unknown HouseX preset {name!r}: expected one of {sorted(HOUSEX_PRESETS)}")
        return cls(**{**HOUSEX_PRESETS[name], **overrides})

    def num_patches(self, num_frames: int) -> int:
        """Patches per clip of `num_frames` frames: ``1 + (num_frames - patch_size) // patch_hop``."""
        if num_frames < self.patch_size:
            return 0
        return 1 + (num_frames - self.patch_size) // self.patch_hop


__all__ = ["HouseXConfig", "HOUSEX_GENRES", "HOUSEX_PRESETS"]
