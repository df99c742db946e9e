"""The 4-bar loop a track's parts are rendered into, and the context its voices draw on."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from . import dsp
from .notes import Note
from .plan import TrackPlan


class Loop:
    """Rendering context of one track: its plan and parameters, tempo grid, 4-bar loop length and
    the random generator all its parts share (in a fixed order: the bytes depend on it)."""

    def __init__(self, plan: TrackPlan, sr: int, rng: np.random.Generator):
        self.plan, self.sr, self.rng = plan, sr, rng
        self.p = plan.params
        self.beat = 60.0 / plan.bpm * sr  # samples per beat (float)
        self.n = int(round(16 * self.beat))  # one 4-bar loop

    def place(self, notes: Sequence[Note], voice, swing: float = 0.0) -> np.ndarray:
        """Sum ``voice(midi, gate_samples) -> (m, 2)`` at every note; tails wrap around the loop.
        Identical (pitch, length) notes are synthesised once."""
        buf = np.zeros((self.n, 2), dtype=np.float32)
        cache: dict = {}
        for start, length, midi, vel in notes:
            if swing and abs((start % 0.5) - 0.25) < 1e-6:
                start += swing * 0.25
            gate = max(16, int(length * self.beat))
            key = (round(midi, 3), gate)
            if key not in cache:
                y = voice(midi, gate)
                cache[key] = y if y.ndim == 2 else np.repeat(y[:, None], 2, axis=1)
            _wrap_add(buf, int(round(start * self.beat)) % self.n, vel * cache[key])
        return buf

    def play(self, notes: Sequence[Note], voice: Callable[[Loop, float, int], np.ndarray], swing: float = 0.0) -> np.ndarray:
        """:meth:`place` with a pitched voice ``voice(loop, hz, gate_samples)``."""
        return self.place(notes, lambda midi, gate: voice(self, float(dsp.midi_to_hz(midi)), gate), swing)


def _wrap_add(buf: np.ndarray, start: int, y: np.ndarray) -> None:
    n, pos, i = buf.shape[0], start, 0
    while i < y.shape[0]:
        k = min(n - pos, y.shape[0] - i)
        buf[pos:pos + k] += y[i:i + k]
        i += k
        pos = 0
