"""Mastering: the per-track master chain (tilt EQ, bus compressor, drive into a limiter that
hard-clips at full scale, then the ceiling) and the loudness it is driven to.

The chain is pedalboard's.  A track's drive is found on its drop loop: the limiter's input gain
that brings the mastered drop to the plan's ``drop_lufs`` (ITU-R BS.1770 loudness, pyloudnorm);
a mainstage master is judged by how loud its drops are, and the drop loop is 4 bars, so the search
costs a few milliseconds instead of a pass over the whole track.
"""

from __future__ import annotations

import numpy as np
import pedalboard
import pyloudnorm

from . import dsp

#: Peak ceiling of every mastered track (dBFS): the brick-wall limiter's, nothing goes over it.
CEILING_DB = -0.5
#: The most the limiter is driven: past ~9 dB JUCE's limiter only clips harder.
MAX_DRIVE_DB = 12.0
_LOOP_TAIL_SECONDS = 0.5  # longer than any compressor/limiter release in the plans


def loudness(x: np.ndarray, sr: int) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770-4) of (n, channels) audio."""
    return float(pyloudnorm.Meter(sr).integrated_loudness(np.asarray(x, dtype=np.float64)))


def bus_plugins(p: dict) -> list:
    """The gain-independent front of the chain: tilt EQ, then the bus compressor."""
    return dsp.shelf_plugins(p["tilt_low_db"], p["tilt_high_db"]) + [
        pedalboard.Compressor(threshold_db=p["bus_threshold_db"], ratio=p["bus_ratio"],
                              attack_ms=p["bus_attack_ms"], release_ms=p["bus_release_ms"])]


def limiter_plugins(p: dict, drive_db: float) -> list:
    """JUCE's loudness-maximising limiter driven ``drive_db`` into its threshold (it adds the same
    make-up gain and hard-clips at 0 dBFS), then the ceiling."""
    return [pedalboard.Limiter(threshold_db=-float(drive_db), release_ms=p["limiter_release_ms"]), pedalboard.Gain(CEILING_DB)]


def process(x: np.ndarray, sr: int, plugins: list, loop: bool) -> np.ndarray:
    """``plugins`` over a piece of the track; a loop is processed in its steady state."""
    if loop:
        return dsp.loop_effects(x, sr, plugins, _LOOP_TAIL_SECONDS)
    return dsp.effects(x, sr, plugins)


def find_drive(drop: np.ndarray, sr: int, p: dict, target_lufs: float, tolerance: float = 0.3, steps: int = 4) -> float:
    """Limiter drive (dB) that brings the bussed drop loop to ``target_lufs``: secant steps from a
    first guess (JUCE's limiter adds ~2 LU of its own make-up on these mixes; loudness then grows
    ~0.8 LU per dB of drive, ever slower as the limiter works harder)."""
    def mastered(d: float) -> float:
        return loudness(process(drop, sr, limiter_plugins(p, d), loop=True), sr)

    d = float(np.clip(target_lufs - loudness(drop, sr) - 2.0, 0.0, MAX_DRIVE_DB))
    level, slope = mastered(d), 0.8
    for _ in range(steps):
        if abs(level - target_lufs) <= tolerance:
            break
        new = float(np.clip(d + (target_lufs - level) / slope, 0.0, MAX_DRIVE_DB))
        if new == d:
            break
        new_level = mastered(new)
        slope = max((new_level - level) / (new - d), 0.1)
        d, level = new, new_level
    return d
