"""Drop clips: k clips of 7.5 s (≈ 4 bars at 128 BPM) at seeded uniform offsets per drop section.

A section shorter than a clip gives one clip from its start, flagged ``padded``: the clip runs
past the section and is zero-padded where it runs past the end of the track.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
            clips.append(ClipSpec(a, a + clip_seconds, index, True))
            continue
        starts = np.sort(rng.uniform(a, b - clip_seconds, size=clips_per_section))
        clips.extend(ClipSpec(float(s), float(s) + clip_seconds, index, False) for s in starts)
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
