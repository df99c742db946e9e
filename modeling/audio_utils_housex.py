"""Torch ports of the librosa pieces the HouseX feature extractor needs, batched and device-agnostic.

Frame counts and masks, the dB planes, librosa's Slaney mel filterbank (banded for speed), and for
the chroma planes: ``estimate_tuning`` (librosa's piptrack + pitch-residual histogram),
``vqt_plan`` (librosa.vqt's multi-rate filter plan, precomputed), ``RatePyramid`` (successive
halvings of the signal by FFT truncation and their STFTs) and ``torch_vqt_magnitude``.  Stateless
functions over tensors; ``feature_extraction_housex.py`` composes them.

Self-contained (Hub custom code, copied by ``save_pretrained`` through the extractor's relative
import): imports only numpy, torch and librosa.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import librosa
import numpy as np
import torch
import torch.nn.functional as F

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
