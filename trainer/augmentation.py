"""Seeded training-time augmentation: waveforms (audiomentations) and features (shift, tilt, masks).

Every draw depends only on (seed, epoch, clip key), never on call order, so a resumed run, a run
with prefetching data loaders and each DDP process augment a given clip in a given epoch
identically.  :class:`AugmentEpochCallback` tells an augmenter which epoch is starting.
"""

from __future__ import annotations

import random
import zlib

import audiomentations as am
import numpy as np
import torch
from transformers import TrainerCallback


def clip_seed(seed: int, epoch: int, key) -> int:
    """The seed of one clip's augmentation in one epoch: depends on nothing else (not on call order)."""
    return zlib.crc32(f"{seed}/{epoch}/{key}".encode())


def clip_keys(batch, audio_column: str) -> list[str]:
    """Stable per-clip keys: track id + clip start when the columns exist, else the audio path."""
    if "track_id" in batch and "clip_start" in batch:
        return [f"{t}@{float(s):.4f}" for t, s in zip(batch["track_id"], batch["clip_start"])]
    return [str((a or {}).get("path") if isinstance(a, dict) else i) for i, a in enumerate(batch[audio_column])]


class SeededAugmenter:
    """audiomentations chain whose draws depend only on (seed, epoch, clip key).

    audiomentations draws from the global ``random`` and ``numpy.random`` streams: they are seeded
    per clip and restored afterwards, so nothing else sees a change.  Gain, Gaussian noise, pitch
    shift of at most 1 semitone and a 7-band EQ; no time-stretch, because tempo (BPM) is a genre cue.
    """

    def __init__(self, p: float, seed: int):
        self.seed = int(seed)
        self.epoch = 0  # set by AugmentEpochCallback at the start of each epoch
        self.compose = am.Compose(
            [
                am.Gain(min_gain_db=-6.0, max_gain_db=6.0, p=p),
                am.AddGaussianSNR(min_snr_db=20.0, max_snr_db=40.0, p=p),
                am.PitchShift(min_semitones=-1.0, max_semitones=1.0, p=p),
                am.SevenBandParametricEQ(min_gain_db=-6.0, max_gain_db=6.0, p=p),
            ]
        )

    def __call__(self, samples: np.ndarray, sample_rate: int, key: str) -> np.ndarray:
        """(samples,) float32 -> (samples,) float32, deterministic in (seed, epoch, key)."""
        seed = clip_seed(self.seed, self.epoch, key)
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            random.seed(seed)
            np.random.seed(seed)
            return self.compose(samples=samples, sample_rate=sample_rate).astype(np.float32)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class AugmentEpochCallback(TrainerCallback):
    """Tells an augmenter (anything with an ``epoch``) which epoch is starting (resume-safe)."""

    def __init__(self, augmenter):
        self.augmenter = augmenter

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.augmenter.epoch = int(state.epoch or 0)


def augment_features(features, generator, *, tilt_planes: int, max_tilt_db: float = 4.0,
                     mask_fraction: float = 0.125, roll: bool = True):
    """One clip's features (C, n_mels, T), scaled as the extractor's (0 = loudest bin, 1 = 80 dB
    below) -> a new tensor of the same shape, drawn from ``generator``:

    - a circular time shift (skipped with ``roll=False``, e.g. for padded clips): the drops are
      loop-based, so a rotated clip is still a plausible clip;
    - a spectral tilt that moves the lowest and the highest band by up to +-``max_tilt_db`` in
      opposite directions, on the first ``tilt_planes`` planes (the dB planes; chroma planes are not
      levels), clamped to [0, 1];
    - one frequency mask and one time mask of up to ``mask_fraction`` of the bands / frames, filled
      with the clip's mean (SpecAugment).
    """
    x = torch.as_tensor(features, dtype=torch.float32)
    _, n_bands, n_frames = x.shape

    def draw(high: int) -> int:  # uniform integer in [0, high)
        return int(torch.randint(0, max(1, high), (), generator=generator))

    # one copy either way: torch.roll returns a new tensor
    x = torch.roll(x, shifts=draw(n_frames), dims=-1) if roll else x.clone()
    tilt = (2 * float(torch.rand((), generator=generator)) - 1) * max_tilt_db / 80.0
    ramp = torch.linspace(-1.0, 1.0, n_bands)[:, None] * tilt
    x[:tilt_planes] = (x[:tilt_planes] + ramp).clamp(0.0, 1.0)
    fill = x.mean()
    width = draw(int(mask_fraction * n_bands) + 1)
    start = draw(n_bands - width + 1)
    x[:, start:start + width, :] = fill
    width = draw(int(mask_fraction * n_frames) + 1)
    start = draw(n_frames - width + 1)
    x[:, :, start:start + width] = fill
    return x


class FeatureAugmentCollator:
    """Wraps the Trainer's collator: rows that carry an ``augment_key`` (training rows, when
    ``feature_augment`` is on) get :func:`augment_features` with a generator seeded by (seed,
    epoch, key); the key is dropped before collating.  Evaluation rows have no key and pass as
    they are.  The epoch comes from :class:`AugmentEpochCallback`.
    """

    def __init__(self, collate, seed: int, tilt_planes: int):
        self.collate = collate
        self.seed = int(seed)
        self.tilt_planes = int(tilt_planes)
        self.epoch = 0

    def __call__(self, rows: list[dict]):
        out = []
        for row in rows:
            row = dict(row)
            key = row.pop("augment_key", None)
            if key is not None:
                generator = torch.Generator().manual_seed(clip_seed(self.seed, self.epoch, int(key)))
                mask = row.get("attention_mask")
                padded = mask is not None and not bool(torch.as_tensor(mask).all())
                row["input_features"] = augment_features(row["input_features"], generator,
                                                         tilt_planes=self.tilt_planes, roll=not padded)
            out.append(row)
        return self.collate(out)
