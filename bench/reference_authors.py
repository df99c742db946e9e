"""The authors' model.py forward, re-implemented plainly: the reference of the ``"authors"`` preset.

Their model (HouseX-v2 repository, ``HouseXModel``; read there, written here in our words): an
``extractor`` = Sequential(torchvision backbone, ReLU, Linear(1000, d_model), Tanh) applied to one
n_mels-wide patch at a time for ``i in range(0, frames - n_mels, hop)``; the patch vectors stacked
sequence-first (M, B, d); torch's ``TransformerEncoder(TransformerEncoderLayer(d_model, nhead),
num_layers)`` with every default (sequence first, dim_feedforward 2048, dropout 0.1, ReLU,
post-norm); the output at position 0 -> ReLU -> ``fc`` Linear(d_model, 8).  Their sinusoidal
``PositionalEncoding`` is built but never called, so no positions are added.

``AuthorsModel.from_housex(model)`` copies the weights of a ``HouseXForAudioClassification``
(``"authors"`` preset) into this structure; ``tests/test_modeling.py`` checks equal logits.
Their window loop stops before a window that would start exactly at ``frames - n_mels`` (``range``
excludes its end); ours keeps it, so the two agree whenever ``(frames - n_mels) % hop != 0``, as for
the paper's 646 frames (27 patches both).
"""

from __future__ import annotations

import torch
from torch import nn


class AuthorsModel(nn.Module):
    def __init__(self, backbone: nn.Module, n_mels: int, hop: int, d_model: int, nhead: int, num_layers: int,
                 num_labels: int = 8):
        super().__init__()
        self.n_mels, self.hop = n_mels, hop
        self.extractor = nn.Sequential(backbone, nn.ReLU(), nn.Linear(1000, d_model), nn.Tanh())
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model=d_model, nhead=nhead), num_layers=num_layers)
        self.fc = nn.Linear(d_model, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = x.shape[-1]
        vectors = [self.extractor(x[:, :, :, start : start + self.n_mels]) for start in range(0, width - self.n_mels, self.hop)]
        sequence = torch.stack(vectors)  # (M, B, d): sequence first, as torch's default
        first = self.encoder(sequence)[0]
        return self.fc(torch.relu(first))

    @classmethod
    def from_housex(cls, model) -> "AuthorsModel":
        """This structure holding the weights of a HouseX ``"authors"``-preset classifier."""
        cfg = model.config
        if cfg.position_embedding != "none" or cfg.pooling != "first" or cfg.backbone_head != "imagenet":
            raise ValueError("AuthorsModel.from_housex: expected the 'authors' preset (no positions, first-token output, ImageNet head)")
        emb = model.housex.embeddings
        ref = cls(emb.backbone, cfg.patch_size, cfg.patch_hop, cfg.d_model, cfg.num_attention_heads,
                  cfg.num_hidden_layers, cfg.num_labels)
        ref.extractor[2].load_state_dict(emb.projection.state_dict())
        ref.encoder.layers.load_state_dict(model.housex.encoder.layers.state_dict())
        ref.fc.load_state_dict(model.classifier.state_dict())
        return ref.to(next(model.parameters()).device).train(model.training)
