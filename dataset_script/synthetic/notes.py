"""Note patterns of the 4-bar loop (16 beats): melodies, bass lines, chords, arpeggios, hi-hats.

A bar pattern makes the notes of one bar from its start beat ``t0`` and its chord's root (bass) or
chord tones (chords); :func:`bass_notes` and :func:`chord_notes` play one along the progression.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from .plan import TrackPlan

Note = tuple[float, float, float, float]  # (start beat, length in beats, midi, velocity)
#: ``(rng, t0, root, rhythm) -> notes`` of one bar of a bass line
BassBar = Callable[[np.random.Generator, int, int, float], list[Note]]
#: ``(rng, t0, chord, rhythm) -> notes`` of one bar of chords
ChordBar = Callable[[np.random.Generator, int, Sequence[int], float], list[Note]]


def _deg_midi(base: int, scale, degree: int) -> int:
    return base + 12 * (degree // 7) + scale[degree % 7]


def _chord(base: int, scale, degree: int, size: int = 3) -> list[int]:
    return [_deg_midi(base, scale, degree + 2 * k) for k in range(size)]


def _onsets(rng, rhythm: float, beats: int = 4) -> list[float]:
    """One bar of onsets (beats) whose subdivision follows the rhythm scale: 1 → quarters/eighths,
    3 → sixteenths, 5 → thirty-seconds."""
    sub = (1, 2, 2, 4, 8)[int(np.clip(round(rhythm), 1, 5)) - 1]
    density = 0.45 + 0.1 * (rhythm % 1.0) + (0.25 if sub <= 2 else 0.0)
    steps = beats * sub
    hit = rng.random(steps) < density
    hit[0] = True
    return [i / sub for i in np.nonzero(hit)[0]]


def melody_notes(rng, plan: TrackPlan, base: int, rhythm: float, gate: float) -> list[Note]:
    """A repeating motif: onsets from ``_onsets``, pitches chord tones (plus passing notes) that
    follow each bar's chord."""
    onsets = _onsets(rng, rhythm)
    alt = _onsets(rng, rhythm) if rng.random() < 0.5 else onsets
    motif = rng.choice([0, 2, 4, 7, 0, 2, 4, 1, 3, 5], size=max(len(onsets), len(alt)))
    notes = []
    for bar, degree in enumerate(plan.progression):
        ons = alt if bar % 2 else onsets
        for k, b in enumerate(ons):
            nxt = ons[k + 1] if k + 1 < len(ons) else 4.0
            notes.append((bar * 4 + b, max(0.1, (nxt - b) * gate), _deg_midi(base, plan.scale, degree + int(motif[k])), 0.8 + 0.2 * rng.random()))
    return notes


def kick_stab_notes(plan: TrackPlan, base: int, rhythm: float) -> list[Note]:
    """No melody: the tonic an octave under ``base`` right after every kick (two hits when ``rhythm`` >= 3.5)."""
    return [(bar * 4 + bt + off, 0.2, _deg_midi(base - 12, plan.scale, 0), 1.0)
            for bar in range(4) for bt in range(4) for off in ((0.25,) if rhythm < 3.5 else (0.25, 0.5))]


def bass_notes(rng, plan: TrackPlan, pattern: BassBar, base: int, rhythm: float) -> list[Note]:
    notes: list[Note] = []
    for bar, degree in enumerate(plan.progression):
        notes += pattern(rng, bar * 4, _deg_midi(base, plan.scale, degree), rhythm)
    return notes


def offbeat_bass(rng, t0: int, root: int, rhythm: float) -> list[Note]:
    return [(t0 + b + 0.5, 0.4, root, 1.0) for b in range(4)]


def bouncy_bass(rng, t0: int, root: int, rhythm: float) -> list[Note]:
    notes: list[Note] = []
    for b in range(4):
        notes += [(t0 + b + 0.5, 0.22, root, 1.0), (t0 + b + 0.75, 0.2, root + 12 * (b % 2), 0.8)]
    return notes


def growl_bass(rng, t0: int, root: int, rhythm: float) -> list[Note]:
    notes: list[Note] = []
    step = 0.25 if rhythm >= 3.5 else 0.5
    for b in range(4):
        pos = np.arange(0.25, 1.0, step)
        notes += [(t0 + b + p, step * 0.9, root + (12 if rng.random() < 0.2 else 0), 1.0) for p in pos]
    return notes


def rolling_bass(rng, t0: int, root: int, rhythm: float) -> list[Note]:
    notes: list[Note] = []
    for b in range(4):
        notes += [(t0 + b + p, 0.2, root + (7 if (b == 3 and p == 0.75) else 0), 0.9) for p in (0.25, 0.5, 0.75)]
    return notes


def held_bass(rng, t0: int, root: int, rhythm: float) -> list[Note]:
    return [(t0, 4.0, root, 1.0)]


def half_bar_bass(rng, t0: int, root: int, rhythm: float) -> list[Note]:
    return [(t0, 2.0, root, 1.0), (t0 + 2, 2.0, root + (12 if rng.random() < 0.3 else 0), 1.0)]


def slap_bass(rng, t0: int, root: int, rhythm: float) -> list[Note]:
    return [(t0 + p, 0.35, root + o, 1.0 if o == 0 else 0.85)
            for p, o in ((0.0, 0), (0.75, 12), (1.5, 0), (2.5, 12), (3.0, 0), (3.5, 7))]


def chord_notes(rng, plan: TrackPlan, pattern: ChordBar, base: int, rhythm: float, size: int = 3) -> list[Note]:
    notes: list[Note] = []
    for bar, degree in enumerate(plan.progression):
        notes += pattern(rng, bar * 4, _chord(base, plan.scale, degree, size), rhythm)
    return notes


def held_chords(rng, t0: int, chord: Sequence[int], rhythm: float) -> list[Note]:
    return [(t0, 4.0, m, 0.8) for m in chord]


def stab_chords(rng, t0: int, chord: Sequence[int], rhythm: float) -> list[Note]:
    notes: list[Note] = []
    for p in (0.5, 1.5, 2.25, 3.0, 3.5):
        notes += [(t0 + p, 0.2, m, 0.9) for m in chord]
    return notes


def piano_chords(rng, t0: int, chord: Sequence[int], rhythm: float) -> list[Note]:
    notes: list[Note] = []
    pos = _onsets(rng, min(rhythm, 2.5))
    for k, p in enumerate(pos):
        notes += [(t0 + p, 1.0, m, 0.75 if k else 0.9) for m in chord]
    return notes


def arp_notes(rng, plan: TrackPlan, base: int, step: float) -> list[Note]:
    notes: list[Note] = []
    order = rng.permutation(4)
    for bar, degree in enumerate(plan.progression):
        tones = _chord(base, plan.scale, degree, 3) + [_deg_midi(base, plan.scale, degree + 7)]
        for k, p in enumerate(np.arange(0, 4, step)):
            notes.append((bar * 4 + p, step * 1.5, tones[order[k % 4]], 0.7 + 0.3 * (k % 2 == 0)))
    return notes


class HatPattern(NamedTuple):
    """The closed and open hi-hat notes of a loop (unpitched), and whether the percussion layer always joins."""

    closed: list[Note]
    open: list[Note]
    perc: bool = False


_OFFBEAT_OPEN = [(b + 0.5, 0.5, 1, 0.9) for b in range(16)]
HAT_PATTERNS: dict[str, HatPattern] = {
    "busy": HatPattern([(s / 4, 0.25, 0, 0.5 + 0.3 * (s % 2 == 0)) for s in range(64) if s % 4 != 2], _OFFBEAT_OPEN, perc=True),
    "rolling": HatPattern([(s / 4, 0.25, 0, 0.6 + 0.2 * (s % 2 == 0)) for s in range(64)], _OFFBEAT_OPEN),
    "shuffle": HatPattern([(s / 4, 0.25, 0, 0.35 + 0.3 * (s % 4 == 3)) for s in range(64) if s % 4 in (1, 3)], _OFFBEAT_OPEN),
    "sparse": HatPattern([], [(b + 0.5, 0.5, 1, 0.8) for b in range(16)]),
    "offbeat": HatPattern([(b + 0.75, 0.25, 0, 0.4) for b in range(16)], _OFFBEAT_OPEN),
}
