"""HouseX feature extractor: raw audio -> ``input_features`` (B, 3, n_mels, T).

Per clip (DESIGN.md, "Features per clip"): mel power spectrogram (n_fft 2048, hop 512, ``n_mels``
bands, Slaney mel filters as librosa's) -> ``power_to_db(ref=max)`` (top_db 80) -> ``-S/80`` (0 =
the loudest bin, 1 = 80 dB below or quieter).  Without chroma that plane is repeated 3 times;
with ``use_chroma`` planes 2 and 3 are ``chroma_cqt`` and ``chroma_vqt(intervals="ji5")``
(12 x T each) resized bilinearly to n_mels x T.  7.5 s at 44.1 kHz -> 646 frames.

Two backends give the same planes:

- ``"librosa"``: the reference, one clip at a time with librosa;
- ``"torch"``: the whole batch at once with ``torch.stft`` and librosa's mel filterbank as a
  tensor, on any ``device``; chroma through a torch port of librosa's multi-rate CQT/VQT (same
  filters, FFT halving instead of soxr for the octave downsampling, tuning 0 instead of a
  per-clip tuning estimate), so chroma planes agree with librosa's to correlation >= 0.99.

Input conventions (as transformers' audio feature extractors): one clip is a 1-D array; a 2-D
array/tensor is a batch of mono clips (B, samples); a 3-D one is (B, channels, samples); a list
holds clips that are 1-D or 2-D (channels on the shorter axis).  Channels are averaged.
``sampling_rate`` is REQUIRED: audio at another rate is resampled to ``self.sampling_rate`` with
``librosa.resample`` (soxr_hq) and a warning (pass audio at the model's rate to skip that cost).
Clips are cropped (from the start) or zero-padded to ``clip_seconds``; ``attention_mask``
(B, T) marks frames whose centre lies in real audio.

Self-contained (Hub custom code): imports only numpy, torch, librosa, transformers and its sibling
``audio_utils_housex.py`` (the torch ports of librosa's internals), by relative import.
"""

from __future__ import annotations

from collections.abc import Sequence

import librosa
import numpy as np
import torch
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import logging

from .audio_utils_housex import (
    RatePyramid,
    chroma_map,
    db_planes,
    estimate_tuning,
    fit_frames,
    frame_count,
    frame_mask,
    inf_normalize,
    mel_bands,
    mel_project,
    resize_planes,
    torch_vqt_magnitude,
)

logger = logging.get_logger(__name__)

BACKENDS = ("torch", "librosa")


# ----------------------------------------------------------------------------------------------


class HouseXFeatureExtractor(SequenceFeatureExtractor):
    r"""Raw audio -> `input_features` (B, 3, n_mels, T) (+ `attention_mask` (B, T)) for HouseX models.

    Args:
        sampling_rate (`int`, defaults to 44100): rate the features are computed at.
        n_fft (`int`, defaults to 2048), hop_length (`int`, defaults to 512): STFT sizes.
        n_mels (`int`, defaults to 224): mel bands (= the model's `patch_size`).
        fmin (`float`, defaults to 0.0), fmax (`float`, *optional*): mel band limits (None = Nyquist).
        top_db (`float`, defaults to 80.0): dynamic range of the dB planes, also their divisor.
        clip_seconds (`float`, defaults to 7.5): inputs are cropped/zero-padded to this length.
        use_chroma (`bool`, defaults to `False`): planes 2-3 = chroma_cqt, chroma_vqt(ji5) instead of mel.
        backend (`str`, defaults to `"torch"`): `"torch"` (batched, any device) or `"librosa"` (reference).
    """

    model_input_names = ["input_features", "attention_mask"]

    def __init__(
        self,
        sampling_rate: int = 44100,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 224,
        fmin: float = 0.0,
        fmax: float | None = None,
        top_db: float = 80.0,
        clip_seconds: float = 7.5,
        use_chroma: bool = False,
        backend: str = "torch",
        padding_value: float = 0.0,
        return_attention_mask: bool = True,
        **kwargs,
    ):
        super().__init__(
            feature_size=n_mels,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        if backend not in BACKENDS:
            raise ValueError(f"HouseXFeatureExtractor.backend={backend!r}: expected one of {BACKENDS}")
        if clip_seconds <= 0:
            raise ValueError(f"HouseXFeatureExtractor.clip_seconds={clip_seconds} must be > 0")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = fmax
        self.top_db = top_db
        self.clip_seconds = clip_seconds
        self.use_chroma = use_chroma
        self.backend = backend

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def clip_samples(self) -> int:
        """Samples per clip: ``round(clip_seconds * sampling_rate)``."""
        return int(round(self.clip_seconds * self.sampling_rate))

    @property
    def num_frames(self) -> int:
        """Frames T per clip (646 for 7.5 s at 44.1 kHz, hop 512)."""
        return frame_count(self.clip_samples, self.hop_length)

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """Shape of one clip's ``input_features``: (3 planes, n_mels, num_frames)."""
        return (3, int(self.n_mels), self.num_frames)

    # -- input handling -------------------------------------------------------------------------
    def _as_clips(self, raw_audio) -> list[np.ndarray]:
        """Any accepted input -> list of mono float32 1-D arrays."""

        def to_np(x) -> np.ndarray:
            if isinstance(x, torch.Tensor):
                x = x.detach().to("cpu", torch.float32).numpy()
            return np.asarray(x, dtype=np.float32)

        def mono(x: np.ndarray) -> np.ndarray:
            if x.ndim == 1:
                return x
            if x.ndim == 2:  # multi-channel: channels on the shorter axis
                return x.mean(axis=0 if x.shape[0] <= x.shape[1] else 1)
            raise ValueError(f"raw_audio: a clip must be 1-D or 2-D (channels x samples), got shape {x.shape}")

        if isinstance(raw_audio, (np.ndarray, torch.Tensor)):
            arr = to_np(raw_audio)
            if arr.ndim == 1:
                clips = [arr]
            elif arr.ndim == 2:
                clips = list(arr)
            elif arr.ndim == 3:
                clips = [a.mean(axis=0) for a in arr]
            else:
                raise ValueError(f"raw_audio: expected 1-D, 2-D (batch) or 3-D (batch, channels) audio, got shape {arr.shape}")
        elif isinstance(raw_audio, Sequence) and not isinstance(raw_audio, (str, bytes)):
            if len(raw_audio) == 0:
                raise ValueError("raw_audio is an empty list")
            if all(np.isscalar(v) for v in raw_audio):
                clips = [to_np(raw_audio)]
            else:
                clips = [mono(to_np(x)) for x in raw_audio]
        else:
            raise TypeError(f"raw_audio: expected a numpy array, torch tensor or list of them, got {type(raw_audio).__name__}")
        for i, clip in enumerate(clips):
            if clip.size == 0:
                raise ValueError(f"raw_audio[{i}] is empty")
            if not np.isfinite(clip).all():
                raise ValueError(f"raw_audio[{i}] contains NaN or infinite samples")
        return [np.ascontiguousarray(c, dtype=np.float32) for c in clips]

    def _fit(self, clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Crop/pad to clip_samples -> (B, clip_samples) float32 audio and (B,) real sample counts."""
        n = self.clip_samples
        batch = np.full((len(clips), n), self.padding_value, dtype=np.float32)
        valid = np.empty(len(clips), dtype=np.int64)
        for i, clip in enumerate(clips):
            k = min(n, clip.shape[0])
            batch[i, :k] = clip[:k]
            valid[i] = k
        return batch, valid

    # -- backends -------------------------------------------------------------------------------
    def _librosa_features(self, audio: np.ndarray) -> torch.Tensor:
        sr = self.sampling_rate
        planes = []
        for y in audio:
            mel = librosa.feature.melspectrogram(
                y=y, sr=sr, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax
            )
            db = -librosa.power_to_db(mel, ref=np.max, top_db=self.top_db) / self.top_db
            clip = [db, db, db]
            if self.use_chroma:
                cqt = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=self.hop_length)
                vqt = librosa.feature.chroma_vqt(y=y, sr=sr, hop_length=self.hop_length, intervals="ji5")
                t = db.shape[-1]
                clip[1] = resize_planes(torch.from_numpy(cqt)[None], self.n_mels, t)[0].numpy()
                clip[2] = resize_planes(torch.from_numpy(vqt)[None], self.n_mels, t)[0].numpy()
            planes.append(np.stack(clip).astype(np.float32))
        return torch.from_numpy(np.stack(planes))

    def _torch_features(self, audio: np.ndarray, device) -> torch.Tensor:
        y = torch.from_numpy(audio).to(device)
        window = torch.hann_window(self.n_fft, periodic=True, device=y.device)
        bands = mel_bands(self.sampling_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)
        mel, powers = [], []
        for part in y.split(4):  # a few clips at a time: the spectra stay in cache (faster on CPU), bounded memory
            spec = torch.stft(part, self.n_fft, self.hop_length, window=window, center=True, pad_mode="constant", return_complex=True)
            power = spec.real.square() + spec.imag.square()
            mel.append(mel_project(power, bands))
            if self.use_chroma:
                powers.append(power)
        db = db_planes(torch.cat(mel), self.top_db)
        if not self.use_chroma:
            return db[:, None].expand(-1, 3, -1, -1).contiguous()
        t = db.shape[-1]
        sr, hop = self.sampling_rate, self.hop_length
        # chroma_cqt estimates each clip's tuning (librosa default): same here, then one CQT per tuning
        if (self.n_fft, hop) == (2048, 512):
            magnitude = torch.cat(powers).sqrt()
        else:
            magnitude = torch.stft(y, 2048, 512, window=torch.hann_window(2048, device=y.device), return_complex=True).abs()
        tunings = estimate_tuning(magnitude, sr, 2048, bins_per_octave=36)
        pyramid = RatePyramid(y)
        cqt = fit_frames(torch_vqt_magnitude(pyramid, sr, hop, tunings=tunings, n_bins=7 * 36, bins_per_octave=36), t)
        cqt_chroma = torch.matmul(torch.from_numpy(chroma_map(7 * 36, 36, 12)).to(y.device), cqt)
        vqt = torch_vqt_magnitude(pyramid, sr, hop, n_bins=7 * 12, bins_per_octave=12, intervals="ji5")
        vqt = fit_frames(vqt, t)
        vqt_chroma = torch.matmul(torch.from_numpy(chroma_map(7 * 12, 12, 12)).to(y.device), vqt)
        chroma = [resize_planes(inf_normalize(c.clamp_min(0.0)), self.n_mels, t) for c in (cqt_chroma, vqt_chroma)]
        return torch.stack([db, chroma[0], chroma[1]], dim=1)

    # -- main entry -----------------------------------------------------------------------------
    def __call__(
        self,
        raw_audio,
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = None,
        backend: str | None = None,
        device: str | torch.device | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Featurize one clip or a batch.

        Args:
            raw_audio: 1-D clip, 2-D (B, samples) batch, 3-D (B, channels, samples) batch, or a list of
                1-D / 2-D clips (numpy or torch).
            sampling_rate: rate of `raw_audio` (required; resampled with a warning if it differs).
            return_tensors: `"pt"`, `"np"` or None (numpy).
            backend: override `self.backend` for this call.
            device: torch backend only: where to compute (and leave `"pt"` outputs).

        Returns:
            `BatchFeature` with `input_features` (B, 3, n_mels, T) float32 and, unless disabled,
            `attention_mask` (B, T) int32 (1 = frame of real audio).
        """
        if sampling_rate is None:
            raise ValueError(
                f"HouseXFeatureExtractor: sampling_rate is required (this extractor works at {self.sampling_rate} Hz; "
                "pass the rate of your audio so it can be checked and resampled)"
            )
        if not isinstance(sampling_rate, (int, np.integer)) and not float(sampling_rate).is_integer() or sampling_rate <= 0:
            raise ValueError(f"HouseXFeatureExtractor: sampling_rate={sampling_rate!r} is not a positive integer")
        sampling_rate = int(sampling_rate)
        backend = backend or self.backend
        if backend not in BACKENDS:
            raise ValueError(f"HouseXFeatureExtractor: backend={backend!r}: expected one of {BACKENDS}")
        clips = self._as_clips(raw_audio)
        if sampling_rate != self.sampling_rate:
            logger.warning_once(
                f"HouseXFeatureExtractor: audio at {sampling_rate} Hz is resampled to {self.sampling_rate} Hz "
                "(librosa soxr_hq); pass audio at the extractor's rate to avoid this."
            )
            clips = [
                librosa.resample(c, orig_sr=sampling_rate, target_sr=self.sampling_rate, res_type="soxr_hq") for c in clips
            ]
        audio, valid = self._fit(clips)
        if backend == "librosa":
            features = self._librosa_features(audio)
        else:
            with torch.no_grad():
                features = self._torch_features(audio, device or "cpu")
        data = {"input_features": features}
        if return_attention_mask if return_attention_mask is not None else self.return_attention_mask:
            t = features.shape[-1]
            mask = np.stack([frame_mask(int(v), t, self.hop_length) for v in valid])
            data["attention_mask"] = torch.from_numpy(mask).to(features.device)
        if return_tensors != "pt":
            data = {k: v.cpu().numpy() for k, v in data.items()}
        return BatchFeature(data, tensor_type=return_tensors)

    def to_dict(self):
        output = super().to_dict()
        output.pop("feature_size", None)  # = n_mels; recomputed in __init__
        return output


__all__ = ["HouseXFeatureExtractor"]
