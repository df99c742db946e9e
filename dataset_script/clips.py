"""One track → drop sections → clips, for the dataset builder, ``housex predict`` and the plots.

:func:`analyse_track` decodes a track (or takes a signal) to mono, takes its drop sections from
the release's drop file or the drop detector, and places the clips: k clips of 7.5 s (≈ 4 bars
at 128 BPM) at seeded uniform offsets per drop section, or one clip at each section's start.
A section shorter than a clip gives one clip from its start, flagged ``padded``: the clip runs
past the section and is zero-padded where it runs past the end of the track.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .audio import AudioError, load_audio, to_mono
from .drops import detect_drops

PLACEMENTS = ("random", "section_start")


@dataclass(frozen=True)
class ClipSpec:
    """One clip in track time (seconds): ``[start, end)``, ``end = start + clip_seconds``."""

    start: float
    end: float
    drop_index: int
    padded: bool


def track_seed(seed: int, track_id: str) -> int:
    """A per-track seed that is stable across processes and Python versions (unlike ``hash``)."""
    return zlib.crc32(f"{int(seed)}:{track_id}".encode("utf-8"))


def sample_clips(
    sections: Sequence[tuple[float, float]],
    duration: float,
    *,
    clips_per_section: int = 4,
    clip_seconds: float = 7.5,
    seed: int,
) -> list[ClipSpec]:
    """Clip positions for the drop ``sections`` of a track of ``duration`` seconds.

    Sections are clamped to ``[0, duration]`` (drop files may overshoot) and ones left empty are
    ignored; ``drop_index`` is the section's index in ``sections``.  Starts are drawn from
    ``U(section_start, section_end - clip_seconds)`` and sorted within a section.
    """
    if clips_per_section < 1:
        raise ValueError(f"clips_per_section must be ≥ 1, got {clips_per_section}")
    if clip_seconds <= 0:
        raise ValueError(f"clip_seconds must be > 0, got {clip_seconds}")
    rng = np.random.default_rng(seed)
    clips: list[ClipSpec] = []
    for index, (a, b) in enumerate(sections):
        a, b = max(0.0, float(a)), min(float(duration), float(b))
        if b <= a:
            continue
        if b - a < clip_seconds:
            clips.append(ClipSpec(a, a + clip_seconds, index, padded=True))
            continue
        starts = np.sort(rng.uniform(a, b - clip_seconds, size=clips_per_section))
        clips.extend(ClipSpec(float(s), float(s) + clip_seconds, index, padded=False) for s in starts)
    return clips


def cut_clip(y_mono: np.ndarray, sr: int, start: float, clip_seconds: float = 7.5) -> np.ndarray:
    """``round(clip_seconds * sr)`` samples of ``y_mono`` (samples,) from ``start`` s, zero-padded
    past the end of the track; float32."""
    n = int(round(clip_seconds * sr))
    i0 = max(0, int(round(start * sr)))
    out = np.zeros(n, dtype=np.float32)
    segment = np.asarray(y_mono)[i0 : i0 + n]
    out[: segment.size] = segment
    return out


class TrackTooShort(AudioError):
    """A track shorter than one clip (the builder skips it; ``housex predict`` pads one clip)."""


@dataclass(frozen=True)
class TrackDrops:
    """One track's drop sections, in seconds inside the track, and where they came from.

    ``fallback``: the detector found no section and gave its loudest window (or, with
    ``whole_track_fallback``, the whole track); ``reason`` says why sections are missing or a
    fallback; ``from_file``: the release's drop file listed the track; ``analysed_whole``: the
    track was too short for the detector's intro skip and was searched from its start.  Small: the
    builder caches it.
    """

    duration: float
    sample_rate: int
    channels: int
    sections: list[tuple[float, float]]
    fallback: bool = False
    reason: str = ""
    from_file: bool = False
    analysed_whole: bool = False

    @property
    def silent(self) -> bool:
        return not self.sections and self.reason.startswith("silent")


@dataclass(frozen=True)
class AnalysedTrack:
    """:func:`analyse_track`'s result: the mono signal, its drops and the clips placed in them."""

    mono: np.ndarray  # (samples,) float32 at drops.sample_rate
    drops: TrackDrops
    clips: list[ClipSpec]
    clip_seconds: float

    def clip_audio(self, clip: ClipSpec) -> np.ndarray:
        """The samples of ``clip`` (:func:`cut_clip`: zero-padded past the end of the track)."""
        return cut_clip(self.mono, self.drops.sample_rate, clip.start, self.clip_seconds)


def analyse_track(
    source: str | os.PathLike | np.ndarray,
    sampling_rate: int | None = None,
    *,
    file_sections: Sequence[tuple[float, float]] | None = None,
    drop_options: Mapping | None = None,
    clip_seconds: float = 7.5,
    clips_per_section: int = 4,
    seed: int = 0,
    placement: str = "random",
    whole_track_fallback: bool = False,
) -> AnalysedTrack:
    """Decode → mono → drop sections → clips, for one track.

    Args:
        source: an audio file (decoded at its own rate), or a (samples,) / (channels, samples)
            signal at ``sampling_rate``.
        file_sections: the track's sections from the release's drop file (clamped to the track;
            ones starting past its end are dropped); None: ``detect_drops(**drop_options)``.
        placement: ``"random"``: ``clips_per_section`` clips per section (:func:`sample_clips`
            with ``seed``); ``"section_start"``: one clip at the start of each section.
        whole_track_fallback: no section found (and not silent) → the whole track, flagged fallback.

    Raises :class:`AudioError` naming the file (:class:`TrackTooShort` when the track is shorter
    than one clip) and ValueError for a bad signal or option.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement: unknown {placement!r}; expected one of {', '.join(PLACEMENTS)}")
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        y, sr = load_audio(source)
    else:
        if sampling_rate is None:
            raise ValueError("sampling_rate is required for a signal")
        name, y, sr = "<array>", np.asarray(source), int(sampling_rate)
    mono = to_mono(y)
    channels = y.shape[0] if y.ndim == 2 else 1
    duration = mono.size / sr
    if duration < clip_seconds:
        raise TrackTooShort(f"{name}: shorter than one clip ({duration:.2f} s < {clip_seconds:g} s)")
    if file_sections is not None:
        inside = [(float(a), min(float(b), duration)) for a, b in file_sections if a < duration]
        drops = TrackDrops(duration, sr, channels, inside, fallback=False,
                           reason="" if inside else "the drop file lists no section inside the track", from_file=True)
    else:
        detection = detect_drops(mono, sr, **(drop_options or {}))
        drops = TrackDrops(duration, sr, channels, [(float(a), float(b)) for a, b in detection.sections],
                           fallback=detection.fallback, reason=detection.reason,
                           analysed_whole=detection.analysed_whole)
    if whole_track_fallback and not drops.sections and not drops.silent:
        drops = TrackDrops(duration, sr, channels, [(0.0, duration)], fallback=True, reason=drops.reason,
                           from_file=drops.from_file, analysed_whole=drops.analysed_whole)
    if placement == "random":
        clips = sample_clips(drops.sections, duration, clips_per_section=clips_per_section,
                             clip_seconds=clip_seconds, seed=seed)
    else:
        clips = [ClipSpec(a, a + clip_seconds, i, padded=b - a < clip_seconds) for i, (a, b) in enumerate(drops.sections)]
    return AnalysedTrack(mono, drops, clips, clip_seconds)
