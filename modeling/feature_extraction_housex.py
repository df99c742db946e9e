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

Self-contained (Hub custom code): imports only numpy, torch, librosa and transformers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import logging

logger = logging.get_logger(__name__)

BACKENDS = ("torch", "librosa")
AMIN = 1e-10  # librosa.power_to_db's floor


# ----------------------------------------------------------------------------------------------
# small pure helpers (shared by both backends)


def frame_count(num_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT: ``1 + num_samples // hop_length``."""
    return 1 + num_samples // hop_length


def frame_mask(valid_samples: int, num_frames: int, hop_length: int) -> np.ndarray:
    """(num_frames,) int32: 1 where the frame centre ``t * hop_length`` lies inside the real audio."""
    return (np.arange(num_frames) * hop_length < max(valid_samples, 1)).astype(np.int32)


def resize_planes(planes: torch.Tensor, n_rows: int, n_cols: int) -> torch.Tensor:
    """(B, R, C) -> (B, n_rows, n_cols), bilinear (align_corners=False), as an image resize."""
    return F.interpolate(planes[:, None].float(), size=(n_rows, n_cols), mode="bilinear", align_corners=False)[:, 0]


def db_planes(mel_power: torch.Tensor, top_db: float) -> torch.Tensor:
    """Mel power (B, n_mels, T) -> ``-power_to_db(S, ref=max, top_db) / top_db`` per clip, in [0, 1]."""
    log_spec = 10.0 * torch.log10(mel_power.clamp_min(AMIN))
    ref = mel_power.amax(dim=(-2, -1), keepdim=True).clamp_min(AMIN)
    log_spec = log_spec - 10.0 * torch.log10(ref)
    log_spec = torch.maximum(log_spec, log_spec.amax(dim=(-2, -1), keepdim=True) - top_db)
    return -log_spec / top_db


@functools.lru_cache(maxsize=16)
def mel_filterbank(sampling_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """librosa's Slaney mel filterbank, (n_mels, 1 + n_fft // 2) float32."""
    return librosa.filters.mel(sr=sampling_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


@functools.lru_cache(maxsize=16)
def mel_bands(sampling_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, group: int = 16) -> tuple:
    """The mel filterbank cut into groups of ``group`` adjacent bands, each with the FFT-bin span it
    touches: a tuple of ``(first band, last band + 1, first bin, last bin + 1, (bands, bins) float32
    weights)``.  Triangular filters are nonzero on a narrow bin range, so projecting group by group
    does <1/10 of a dense ``(n_mels, bins) @ power`` product's work (224 bands at 2048 points) with
    the same sums: only exact zeros are skipped."""
    fb = mel_filterbank(sampling_rate, n_fft, n_mels, fmin, fmax)
    out = []
    for a in range(0, n_mels, group):
        b = min(n_mels, a + group)
        cols = np.flatnonzero(fb[a:b].any(axis=0))
        lo, hi = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 0)
        out.append((a, b, lo, hi, np.ascontiguousarray(fb[a:b, lo:hi])))
    return tuple(out)


def mel_project(power: torch.Tensor, bands: tuple) -> torch.Tensor:
    """(..., bins, T) power spectrogram -> (..., n_mels, T) mel power, with ``mel_bands(...)``."""
    parts = []
    for a, b, lo, hi, weights in bands:
        if hi > lo:
            parts.append(torch.matmul(torch.from_numpy(weights).to(power.device, power.dtype), power[..., lo:hi, :]))
        else:  # bands with empty filters (more bands than the resolution allows), as librosa gives them
            parts.append(power.new_zeros(*power.shape[:-2], b - a, power.shape[-1]))
    return torch.cat(parts, dim=-2)


def _relative_bandwidth(freqs: np.ndarray) -> np.ndarray:
    # librosa.filters._relative_bandwidth (private there): local octave resolution -> alpha.
    logf = np.log2(freqs)
    bpo = np.empty_like(freqs)
    bpo[0] = 1 / (logf[1] - logf[0])
    bpo[-1] = 1 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
    return (2.0 ** (2 / bpo) - 1) / (2.0 ** (2 / bpo) + 1)


def estimate_tuning(
    magnitude: torch.Tensor,
    sampling_rate: float,
    n_fft: int,
    *,
    bins_per_octave: int = 12,
    resolution: float = 0.01,
    fmin: float = 150.0,
    fmax: float = 4000.0,
    threshold: float = 0.1,
) -> list[float]:
    """librosa.estimate_tuning (piptrack peaks -> histogram of pitch residuals), batched.

    magnitude: |STFT| (B, 1 + n_fft // 2, T) (hann window, centred, as piptrack computes it).
    Returns one tuning offset per clip, in fractions of a bin, from [-0.5, 0.5).
    """
    num_bins = magnitude.shape[-2]
    bin_hz = sampling_rate / n_fft
    # only bins inside [fmin, fmax) can be peaks: work on that band plus one neighbour each side
    first = max(int(np.ceil(max(fmin, 0.0) / bin_hz)) - 1, 0)
    last = min(int(np.ceil(min(fmax, sampling_rate / 2) / bin_hz)) + 1, num_bins)
    frame_max = magnitude.amax(dim=-2, keepdim=True)
    S = magnitude[:, first:last]
    # np.gradient along frequency: central differences, one-sided at the edges
    avg = torch.empty_like(S)
    avg[:, 1:-1] = (S[:, 2:] - S[:, :-2]) / 2
    avg[:, 0] = S[:, 1] - S[:, 0]
    avg[:, -1] = S[:, -1] - S[:, -2]
    # parabolic interpolation of the peak position; 0 where it would move more than a bin
    a = S[:, 2:] + S[:, :-2] - 2 * S[:, 1:-1]
    b = (S[:, 2:] - S[:, :-2]) / 2
    shift = torch.zeros_like(S)
    shift[:, 1:-1] = torch.where(b.abs() >= a.abs(), torch.zeros_like(a), -b / torch.where(a == 0, torch.ones_like(a), a))
    bin_index = torch.arange(first, last, device=S.device, dtype=torch.float64)
    freqs = bin_index * bin_hz
    freq_mask = ((freqs >= max(fmin, 0.0)) & (freqs < min(fmax, sampling_rate / 2)))[None, :, None]
    gated = S * (S > threshold * frame_max)
    local_max = torch.zeros_like(S, dtype=torch.bool)
    local_max[:, 1:-1] = (gated[:, 1:-1] > gated[:, :-2]) & (gated[:, 1:-1] >= gated[:, 2:])
    if last == num_bins:  # librosa's edge rule at the top bin
        local_max[:, -1] = gated[:, -1] > gated[:, -2]
    peaks = freq_mask & local_max
    bin_index = bin_index.to(S.dtype)[None, :, None]
    pitches = (bin_index + shift) * float(sampling_rate) / n_fft
    mags = S + 0.5 * avg * shift
    edges = torch.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1, dtype=torch.float64)
    tunings = []
    for clip in range(S.shape[0]):
        sel = peaks[clip] & (pitches[clip] > 0)
        if not bool(sel.any()):
            tunings.append(0.0)
            continue
        p, m = pitches[clip][sel], mags[clip][sel]
        f = p[m >= m.quantile(0.5)].double().cpu()  # np.median: mean of the middle pair
        f = f[f > 0]
        if f.numel() == 0:
            tunings.append(0.0)
            continue
        residual = torch.remainder(bins_per_octave * torch.log2(f / (440.0 / 16)), 1.0)
        residual[residual >= 0.5] -= 1.0
        idx = (torch.bucketize(residual, edges, right=True) - 1).clamp(0, len(edges) - 2)
        counts = torch.bincount(idx, minlength=len(edges) - 1)
        tunings.append(float(edges[int(torch.argmax(counts))]))
    return tunings


@functools.lru_cache(maxsize=256)
def vqt_plan(
    sampling_rate: float,
    hop_length: int,
    *,
    n_bins: int,
    bins_per_octave: int,
    intervals: str = "equal",
    fmin: float | None = None,
    tuning: float = 0.0,
    gamma: float = 0.0,
    sparsity: float = 0.01,
):
    """librosa.vqt's multi-rate plan, precomputed once per parameter set.

    Returns ``(octaves, inv_sqrt_lengths)``: per octave, top first, ``(level, n_fft, hop, lo, hi,
    fft_basis)`` where ``level`` is how many times the signal was halved, and ``fft_basis``
    (n_filters, hi - lo) complex64 holds librosa's (sparsified, rate-compensated) filter spectra
    restricted to the STFT bins ``lo:hi`` where any of them is non-zero.
    """
    fmin = librosa.note_to_hz("C1") if fmin is None else fmin
    fmin = fmin * 2.0 ** (tuning / bins_per_octave)
    n_octaves = int(math.ceil(n_bins / bins_per_octave))
    n_filters = min(bins_per_octave, n_bins)
    freqs = librosa.interval_frequencies(
        n_bins=n_bins, fmin=fmin, intervals=intervals, bins_per_octave=bins_per_octave, sort=True
    )
    alpha = _relative_bandwidth(freqs)
    _, filter_cutoff = librosa.filters.wavelet_lengths(freqs=freqs, sr=sampling_rate, gamma=gamma, alpha=alpha)
    nyquist = sampling_rate / 2.0
    if filter_cutoff > nyquist:
        raise ValueError(f"chroma: CQT bins reach {filter_cutoff:.0f} Hz, above Nyquist {nyquist:.0f} Hz")
    count1 = max(0, int(np.ceil(np.log2(nyquist / filter_cutoff)) - 1) - 1)
    twos = (hop_length & -hop_length).bit_length() - 1
    level = min(count1, max(0, twos - n_octaves + 1))  # librosa's early downsampling
    sr = sampling_rate / 2**level
    my_sr, my_hop = sr, hop_length // 2**level
    octaves = []
    for i in range(n_octaves):
        sl = slice(-n_filters, None) if i == 0 else slice(-n_filters * (i + 1), -n_filters * i)
        basis, lengths = librosa.filters.wavelet(
            freqs=freqs[sl], sr=my_sr, filter_scale=1, norm=1, pad_fft=True, window="hann", gamma=gamma, alpha=alpha[sl]
        )
        n_fft = basis.shape[1]
        basis = basis * (lengths[:, None] / float(n_fft))
        fft_basis = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
        fft_basis = librosa.util.sparsify_rows(fft_basis, quantile=sparsity, dtype=np.complex64).toarray()
        fft_basis *= np.sqrt(sr / my_sr)
        used = np.flatnonzero(np.abs(fft_basis).sum(axis=0) > 0)
        lo, hi = int(used[0]), int(used[-1]) + 1
        octaves.append((level, n_fft, my_hop, lo, hi, np.ascontiguousarray(fft_basis[:, lo:hi])))
        if my_hop % 2 == 0:
            my_hop //= 2
            my_sr /= 2.0
            level += 1
    lengths, _ = librosa.filters.wavelet_lengths(freqs=freqs, sr=sr, gamma=gamma, alpha=alpha)
    return tuple(octaves), (1.0 / np.sqrt(lengths)).astype(np.float32)


def fit_frames(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Crop or edge-pad the last axis to ``num_frames`` (CQT and STFT frame counts can differ by one)."""
    if x.shape[-1] >= num_frames:
        return x[..., :num_frames]
    return F.pad(x, (0, num_frames - x.shape[-1]), mode="replicate")


def halve_rate(y: torch.Tensor) -> torch.Tensor:
    """(B, N) -> (B, ceil(N / 2)): ideal low-pass by FFT truncation, energy-scaled like librosa (x sqrt 2)."""
    n = y.shape[-1]
    n_out = (n + 1) // 2
    spectrum = torch.fft.rfft(y, dim=-1)[..., : n_out // 2 + 1]
    return torch.fft.irfft(spectrum, n=n_out, dim=-1) * (math.sqrt(2.0) * n_out / n)


class RatePyramid:
    """A batch (B, N) and its successive halvings / STFTs, computed on demand and shared by CQT and VQT."""

    def __init__(self, y: torch.Tensor):
        self.levels = [y]
        self.stfts: dict[tuple[int, int, int], torch.Tensor] = {}

    def signal(self, level: int) -> torch.Tensor:
        while len(self.levels) <= level:
            self.levels.append(halve_rate(self.levels[-1]))
        return self.levels[level]

    def stft(self, level: int, n_fft: int, hop: int) -> torch.Tensor:
        key = (level, n_fft, hop)
        if key not in self.stfts:
            y = self.signal(level)
            window = torch.ones(n_fft, device=y.device, dtype=y.dtype)
            self.stfts[key] = torch.stft(y, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)
        return self.stfts[key]


def torch_vqt_magnitude(
    y: torch.Tensor | RatePyramid,
    sampling_rate: float,
    hop_length: int,
    *,
    tunings: Sequence[float] | None = None,
    **plan_kwargs,
) -> torch.Tensor:
    """|VQT| of a batch (B, N) -> (B, n_bins, T), following librosa.vqt's multi-rate algorithm.

    ``tunings``: one offset (fraction of a bin) per clip (default 0); ``plan_kwargs`` go to `vqt_plan`.
    """
    pyramid = y if isinstance(y, RatePyramid) else RatePyramid(y)
    batch = pyramid.levels[0].shape[0]
    tunings = list(tunings) if tunings is not None else [0.0] * batch
    groups: dict[float, list[int]] = {}
    for i, tuning in enumerate(tunings):
        groups.setdefault(float(tuning), []).append(i)
    out = None
    for tuning, rows in groups.items():
        octaves, inv_sqrt_len = vqt_plan(float(sampling_rate), hop_length, tuning=tuning, **plan_kwargs)
        responses = []
        for level, n_fft, hop, lo, hi, fft_basis in octaves:
            stft = pyramid.stft(level, n_fft, hop)[rows, lo:hi]
            responses.append(torch.matmul(torch.from_numpy(fft_basis).to(stft.device), stft))
        num_frames = min(r.shape[-1] for r in responses)
        # responses run top octave first; bins run lowest first
        mag = torch.cat([r[..., :num_frames] for r in reversed(responses)], dim=1)[:, -len(inv_sqrt_len) :].abs()
        mag = mag * torch.from_numpy(inv_sqrt_len).to(mag.device)[:, None]
        if out is None:
            out = mag.new_empty(batch, mag.shape[1], num_frames)
        elif out.shape[-1] != num_frames:  # n_fft differed between tunings: keep the shorter
            num_frames = min(num_frames, out.shape[-1])
            out, mag = out[..., :num_frames], mag[..., :num_frames]
        out[rows] = mag
    return out


@functools.lru_cache(maxsize=8)
def chroma_map(n_input: int, bins_per_octave: int, n_chroma: int) -> np.ndarray:
    """librosa.filters.cq_to_chroma(n_input, bins_per_octave, n_chroma) as float32."""
    return librosa.filters.cq_to_chroma(n_input, bins_per_octave=bins_per_octave, n_chroma=n_chroma).astype(np.float32)


def inf_normalize(chroma: torch.Tensor) -> torch.Tensor:
    """librosa.util.normalize(norm=inf, axis=-2): each column divided by its max (near-silent columns kept)."""
    length = chroma.abs().amax(dim=-2, keepdim=True)
    tiny = torch.finfo(chroma.dtype).tiny
    return chroma / torch.where(length < tiny, torch.ones_like(length), length)


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
