"""The paper's forward pass written the authors' way: one backbone call per patch in a Python loop.

Used as the reference for ``HouseXForAudioClassification`` (same weights, same outputs < 1e-4) in
``tests/test_modeling.py`` and for the batched-vs-loop speed ratio in ``bench/bench_model.py``.
Deliberately plain: no unfold, no batching of patches, positions from the textbook formula.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def textbook_positions(num_positions: int, dim: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/dim)), PE[pos, 2i+1] = cos(pos / 10000^(2i/dim))."""
    pe = torch.zeros(num_positions, dim)
    for pos in range(num_positions):
        for i in range(0, dim, 2):
            angle = pos / (10000 ** (i / dim))
            pe[pos, i] = math.sin(angle)
            if i + 1 < dim:
                pe[pos, i + 1] = math.cos(angle)
    return pe


@torch.no_grad()
def loop_forward(model, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (B, num_labels) of a `HouseXForAudioClassification`, one patch at a time.

    input_features: (B, C, P, T); attention_mask: (B, T) frame mask or None.
    """
    cfg = model.config
    emb = model.housex.embeddings
    size, hop = cfg.patch_size, cfg.patch_hop
    batch, _, _, frames = input_features.shape
    starts = list(range(0, frames - size + 1, hop))
    sequences, keep = [], []
    for b in range(batch):
        vectors, valid = [], []
        for start in starts:
            patch = input_features[b : b + 1, :, :, start : start + size]
            x = emb.backbone(patch)
            if emb.projection is not None:  # paper: ReLU -> Linear(1000, d) on the ImageNet logits
                x = emb.projection(F.relu(x))
            vectors.append(torch.tanh(x)[0])
            real = attention_mask is None or bool(attention_mask[b, start : start + size].any())
            valid.append(real or start == 0)
        sequences.append(torch.stack(vectors))
        keep.append(valid)
    device = input_features.device
    hidden = torch.stack(sequences)
    if cfg.position_embedding == "sinusoidal":
        hidden = hidden + textbook_positions(len(starts), cfg.d_model).to(device, input_features.dtype)
    elif cfg.position_embedding == "learned":
        hidden = hidden + model.housex.position_embeddings.weight[: len(starts)]
    keep = torch.tensor(keep, device=device)
    if cfg.pooling == "cls":
        hidden = torch.cat([model.housex.cls_token.expand(batch, -1, -1), hidden], dim=1)
        keep = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=device), keep], dim=1)
    mask = None if bool(keep.all()) else ~keep
    hidden = model.housex.encoder(hidden, src_key_padding_mask=mask)
    if cfg.pooling == "mean":
        pooled = torch.stack([hidden[b][keep[b]].mean(0) for b in range(batch)])
    else:
        pooled = hidden[:, 0]
    return model.classifier(F.relu(pooled))
