"""The sound kinds of a track's parts: one table entry per kind, holding its note pattern, its voice
and its post-processing together.

A voice is ``voice(loop, hz, gate_samples) -> (m,) or (m, 2)``; a post-processing step is
``post(loop, stem) -> stem`` on the part's rendered (n_loop, 2) loop.  Voices draw on the loop's
shared random generator: the order of the draws is part of a track's bytes.  The organic kinds
(piano, electric piano, strings, guitar, brass, choir) are sampled instruments (:mod:`.sampled`);
the electronic ones are synthesised (:mod:`.dsp`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from . import dsp, sampled
from .loop import Loop
from .notes import (
    Note,
    arp_notes,
    bass_notes,
    bouncy_bass,
    chord_notes,
    growl_bass,
    half_bar_bass,
    held_bass,
    held_chords,
    kick_stab_notes,
    melody_notes,
    offbeat_bass,
    piano_chords,
    rolling_bass,
    slap_bass,
    stab_chords,
)

Voice = Callable[[Loop, float, int], np.ndarray]
Post = Callable[[Loop, np.ndarray], np.ndarray]
#: ``(loop, base midi, rhythm, gate) -> notes`` of a part
Pattern = Callable[[Loop, int, float, float], list[Note]]


def _dry(lp: Loop, y: np.ndarray) -> np.ndarray:
    return y


@dataclass(frozen=True)
class Sound:
    """One sound kind: what it plays, how it sounds, and what is done to its loop afterwards."""

    notes: Pattern
    voice: Voice
    post: Post = _dry
    octave: int = 0  # played this many octaves off the part's register (leads)
    crushed: bool = False  # always bit-crushed (leads; otherwise only at high distortion)
    gain: float = 1.0  # level in a layered part (organic)


def _sampled(kind: str, tail: float, position: float | None = None) -> Voice:
    """A General MIDI instrument of ``kind`` (the track's ``sample_variant`` picks which), each note
    held for its gate and released over ``tail`` seconds; ``position`` pans it as a mono source."""

    def voice(lp: Loop, f: float, gate: int) -> np.ndarray:
        programs = sampled.PROGRAMS[kind]
        midi = int(round(69 + 12 * np.log2(f / 440.0)))
        y = sampled.render_note(programs[lp.p["sample_variant"] % len(programs)], midi, gate, gate + int(tail * lp.sr), lp.sr)
        return y if position is None else dsp.pan(y.mean(axis=1), position)

    return voice


# --------------------------------------------------------------------------------------------
# note patterns of the parts


def _melody(lp: Loop, base: int, rhythm: float, gate: float) -> list[Note]:
    return melody_notes(lp.rng, lp.plan, base, rhythm, gate)


def _kick_stabs(lp: Loop, base: int, rhythm: float, gate: float) -> list[Note]:
    """Bass House: no real melody, stabs right after the kick.  A melody is still drawn (and
    dropped) first, so the random draws after it are those of every other lead."""
    melody_notes(lp.rng, lp.plan, base, 3.0, gate)
    return kick_stab_notes(lp.plan, base, rhythm)


def _bassline(bar) -> Pattern:
    return lambda lp, base, rhythm, gate: bass_notes(lp.rng, lp.plan, bar, base, rhythm)


def _chords(bar, size: int = 3) -> Pattern:
    return lambda lp, base, rhythm, gate: chord_notes(lp.rng, lp.plan, bar, base, rhythm, size)


def _arpeggio(octave: int, step: Callable[[float], float]) -> Pattern:
    return lambda lp, base, rhythm, gate: arp_notes(lp.rng, lp.plan, base + 12 * octave, step(rhythm))


# --------------------------------------------------------------------------------------------
# leads


def _supersaw_lead(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr = lp.sr
    n = gate + int(0.25 * sr)
    return dsp.supersaw(f, n, sr, lp.rng, voices=7, detune_cents=lp.p["detune_cents"])[:n] * dsp.adsr(n, sr, 0.005, 0.25, 0.7, 0.2, gate)[:, None]


def _chopped_square(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr = lp.sr
    n = gate + int(0.03 * sr)
    bend = f * (1 + 0.06 * dsp.exp_decay(n, sr, 0.015, attack=1e-5))  # the 'bouncy' pitch blip
    return (dsp.square(bend, n, sr, 0.5) + 0.3 * dsp.square(bend * 2, n, sr, 0.3)) * dsp.adsr(n, sr, 0.002, 0.08, 0.6, 0.02, gate)


def _stab_lead(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr = lp.sr
    n = min(gate, int(0.2 * sr)) + int(0.05 * sr)
    y = dsp.square(f, n, sr, 0.4) + dsp.saw(f * 1.005, n, sr) + 0.5 * dsp.sine(f / 2, n, sr)
    return y * dsp.adsr(n, sr, 0.002, 0.12, 0.2, 0.04, n - int(0.05 * sr), curve=2.0)


def _buzz(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr = lp.sr
    n = gate + int(0.02 * sr)
    duty = 0.12 + 0.08 * np.sin(2 * np.pi * 3.0 * np.arange(n) / sr)
    y = dsp.square(f, n, sr, float(duty.mean())) * (1 + 0.3 * duty) + 0.5 * dsp.saw(f * 2.01, n, sr)
    return y * dsp.adsr(n, sr, 0.003, 0.05, 0.8, 0.02, gate)


def _lead_filter(lp: Loop, y: np.ndarray) -> np.ndarray:
    """The track's resonant synth filter (18 dB/octave)."""
    return dsp.synth_filter(y, lp.sr, lp.p["lead_cutoff"], resonance=lp.p["lead_resonance"], poles=3)


def _sample_filter(lp: Loop, y: np.ndarray) -> np.ndarray:
    """Sampled leads: a gentle low-pass at the track's cutoff (no resonance)."""
    return dsp.synth_filter(y, lp.sr, lp.p["lead_cutoff"] * 1.5, poles=1)


def _chopped(lp: Loop, y: np.ndarray) -> np.ndarray:
    """16th trance gate after the lead filter."""
    y = _lead_filter(lp, y)
    chop = (((np.arange(lp.n) / (lp.beat / 4)).astype(int) % 4) != 3).astype(float)
    return y * dsp.lowpass(chop, 300, lp.sr)[:, None]


LEADS: dict[str, Sound] = {
    "supersaw": Sound(_melody, _supersaw_lead, _lead_filter),
    "chopped_square": Sound(_melody, _chopped_square, _chopped),
    "stab": Sound(_kick_stabs, _stab_lead, _lead_filter),
    "epiano": Sound(_melody, _sampled("epiano", tail=0.5), _sample_filter),
    "horn": Sound(_melody, _sampled("brass", tail=0.2), _sample_filter, octave=-1),
    "buzz": Sound(_melody, _buzz, _lead_filter, crushed=True),
    "vocal": Sound(_melody, _sampled("choir", tail=0.3), _sample_filter),
    "piano": Sound(_melody, _sampled("piano", tail=0.6), _sample_filter),
}

# --------------------------------------------------------------------------------------------
# basses (Bigroom has none: its pitched kick is the bass)


def _offbeat_saw(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr = lp.sr
    n = gate + int(0.03 * sr)
    y = 0.7 * dsp.saw(f, n, sr) + dsp.sine(f, n, sr)
    return y * dsp.adsr(n, sr, 0.003, 0.12, 0.5, 0.03, gate)


def _bouncy(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr = lp.sr
    n = gate + int(0.02 * sr)
    bend = f * (1 + 0.5 * dsp.exp_decay(n, sr, 0.01, attack=1e-5))
    return (dsp.square(bend, n, sr, 0.5) * 0.6 + dsp.sine(f, n, sr)) * dsp.adsr(n, sr, 0.002, 0.1, 0.4, 0.02, gate)


def _growl(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr, rng = lp.sr, lp.rng
    n = gate + int(0.02 * sr)
    t = np.arange(n) / sr
    lfo = 0.5 * (1 - np.cos(2 * np.pi * t * (sr / lp.beat) * rng.choice([1, 2])))  # 1 or 2 wobbles per beat
    y = dsp.fm(f, n, sr, ratio=float(rng.choice([0.5, 1.0, 1.5, 2.0])), index=1.0 + 5.0 * lfo)
    return dsp.waveshape(y + 0.5 * dsp.saw(f, n, sr), 3.0) * dsp.adsr(n, sr, 0.002, 0.05, 0.8, 0.02, gate)


def _rolling(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr = lp.sr
    n = gate + int(0.02 * sr)
    return (dsp.sine(f, n, sr) + 0.25 * dsp.saw(f, n, sr)) * dsp.adsr(n, sr, 0.002, 0.09, 0.2, 0.02, gate, curve=1.5)


def _reese(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr = lp.sr
    n = gate + int(0.05 * sr)
    y = np.stack([dsp.saw(f * 2 ** (12 / 1200), n, sr) + dsp.saw(f * 2 ** (-9 / 1200), n, sr),
                  dsp.saw(f * 2 ** (-12 / 1200), n, sr) + dsp.saw(f * 2 ** (8 / 1200), n, sr)], axis=1)
    return (0.5 * y + dsp.sine(f, n, sr)[:, None]) * dsp.adsr(n, sr, 0.02, 0.2, 0.9, 0.05, gate)[:, None]


def _wave(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr = lp.sr
    n = gate + int(0.05 * sr)
    t = np.arange(n) / sr
    wob = np.sin(2 * np.pi * t * sr / lp.beat * lp.rng.choice([1.0, 2.0]))
    y = dsp.saw(f * (1 + 0.02 * wob), n, sr) * (0.65 + 0.35 * wob) + dsp.sine(f, n, sr)
    return y * dsp.adsr(n, sr, 0.01, 0.2, 0.9, 0.05, gate)


def _slap(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr, rng = lp.sr, lp.rng
    n = gate + int(0.02 * sr)
    bend = f * 2 ** (dsp.exp_decay(n, sr, 0.012, attack=1e-5))  # octave pop into the note
    y = dsp.saw(bend, n, sr) + 0.6 * dsp.square(bend, n, sr, 0.3) + 0.8 * dsp.sine(f, n, sr)
    click = dsp.highpass(rng.standard_normal(n), 1500, sr) * dsp.exp_decay(n, sr, 0.004)
    return (y + 0.4 * click) * dsp.adsr(n, sr, 0.001, 0.15, 0.35, 0.02, gate, curve=1.5)


def _bass_filter(brightness: float) -> Post:
    """Resonant synth low-pass at the track's bass cutoff times ``brightness``."""
    return lambda lp, y: dsp.synth_filter(y, lp.sr, lp.p["bass_cutoff"] * brightness, resonance=0.1)


def _slapped(lp: Loop, y: np.ndarray) -> np.ndarray:
    b = _bass_filter(3.0)(lp, y)
    return b + 0.8 * dsp.bandpass(b, 400, 2000, lp.sr)  # the slapped mids


BASSES: dict[str, Sound] = {
    "offbeat_saw": Sound(_bassline(offbeat_bass), _offbeat_saw, _bass_filter(1.0)),
    "bouncy": Sound(_bassline(bouncy_bass), _bouncy, _bass_filter(3.0)),
    "growl": Sound(_bassline(growl_bass), _growl, _bass_filter(3.0)),
    "rolling": Sound(_bassline(rolling_bass), _rolling, _bass_filter(1.0)),
    "reese": Sound(_bassline(held_bass), _reese, _bass_filter(1.0)),
    "wave": Sound(_bassline(half_bar_bass), _wave, _bass_filter(1.0)),
    "slap": Sound(_bassline(slap_bass), _slap, _slapped),
}

# --------------------------------------------------------------------------------------------
# chords and organic layers


def _supersaw_pad(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr = lp.sr
    n = gate + int(0.2 * sr)
    return dsp.supersaw(f, n, sr, lp.rng, voices=5, detune_cents=lp.p["detune_cents"]) * dsp.adsr(n, sr, 0.01, 0.3, 0.8, 0.2, gate)[:, None]


def _pad(detune_cents: float, attack: float) -> Voice:
    """A slow three-voice supersaw with vibrato (7th-chord pads, strings)."""

    def voice(lp: Loop, f: float, gate: int) -> np.ndarray:
        sr, rng = lp.sr, lp.rng
        n = gate + int(0.4 * sr)
        vib = f * (1 + 0.003 * np.sin(2 * np.pi * 5.0 * np.arange(n) / sr + rng.random() * 6))
        y = dsp.supersaw(vib, n, sr, rng, voices=3, detune_cents=detune_cents)
        return y * dsp.adsr(n, sr, attack, 0.3, 0.9, 0.35, gate)[:, None]

    return voice


def _stab_chord(lp: Loop, f: float, gate: int) -> np.ndarray:
    sr = lp.sr
    n = min(gate, int(0.15 * sr)) + int(0.03 * sr)
    y = dsp.square(f, n, sr, 0.5) + 0.6 * dsp.saw(f * 2, n, sr)
    return y * dsp.adsr(n, sr, 0.002, 0.1, 0.1, 0.03, n - int(0.03 * sr), curve=2.0)


def _chord_filter(lp: Loop, y: np.ndarray) -> np.ndarray:
    return dsp.synth_filter(y, lp.sr, lp.p["lead_cutoff"] * 0.8)


def _dark_filter(lp: Loop, y: np.ndarray) -> np.ndarray:
    return dsp.synth_filter(y, lp.sr, 1800)


CHORDS: dict[str, Sound] = {
    "supersaw_pad": Sound(_chords(held_chords), _supersaw_pad, _chord_filter),
    "pad7": Sound(_chords(held_chords, size=4), _pad(detune_cents=8, attack=0.25), _dark_filter),
    "strings": Sound(_chords(held_chords), _sampled("strings", tail=0.4), _chord_filter),
    "stab": Sound(_chords(stab_chords), _stab_chord, _chord_filter),
    "piano": Sound(_chords(piano_chords), _sampled("piano", tail=0.8), _chord_filter),
}


#: layers added by the track's organicity, in this order: piano arpeggio, strings, guitar (all sampled)
ORGANIC: dict[str, Sound] = {
    "piano": Sound(_arpeggio(1, lambda rhythm: 0.5), _sampled("piano", tail=0.5, position=-0.3)),
    "strings": replace(CHORDS["strings"], post=_dry, gain=0.7),
    "guitar": Sound(_arpeggio(0, lambda rhythm: 0.25 if rhythm > 2.5 else 0.5), _sampled("guitar", tail=0.3, position=0.35)),
}

# --------------------------------------------------------------------------------------------
# drums (one-shot samples)


def _kick(length, f_start, f_end, pitch_tau, amp_tau, click, drive) -> Callable[[Loop, float], np.ndarray]:
    """A kick kind; ``f_start``, ``f_end`` and ``amp_tau`` are (low, high) ranges drawn per track
    (``f_end`` None: the bass root), ``drive`` a range or a number."""

    def make(lp: Loop, root_hz: float) -> np.ndarray:
        rng = lp.rng
        return dsp.kick(lp.sr, length, f_start=rng.uniform(*f_start),
                        f_end=root_hz if f_end is None else rng.uniform(*f_end), pitch_tau=pitch_tau,
                        amp_tau=rng.uniform(*amp_tau), click=click,
                        drive=rng.uniform(*drive) if isinstance(drive, tuple) else drive, rng=rng)

    return make


def _bigroom_kick(lp: Loop, root_hz: float) -> np.ndarray:
    """A long kick tuned to the bass root, with a bright top."""
    k = _kick(0.5, (250, 400), None, 0.04, (0.25, 0.45), 0.6, (3, 6))(lp, root_hz)
    return k + 0.4 * dsp.highpass(k, 300, lp.sr)


KICKS: dict[str, Callable[[Loop, float], np.ndarray]] = {
    "bigroom": _bigroom_kick,
    "tight": _kick(0.25, (160, 230), (48, 60), 0.02, (0.06, 0.1), 0.5, 2.0),
    "deep": _kick(0.35, (110, 150), (42, 52), 0.03, (0.12, 0.2), 0.1, 1.2),
    "punchy": _kick(0.35, (150, 220), (45, 58), 0.03, (0.1, 0.18), 0.3, 1.6),
}

CLAPS: dict[str, Callable[[Loop], np.ndarray]] = {
    "clap": lambda lp: dsp.clap(lp.sr, lp.rng, tone_hz=lp.rng.uniform(900, 1600)),
    "snare": lambda lp: dsp.snare(lp.sr, lp.rng, tone_hz=lp.rng.uniform(170, 230)),
}

T = TypeVar("T")


def sound(table: Mapping[str, T], part: str, kind: str) -> T:
    """``table[kind]``, or a one-line error naming the part and the known kinds."""
    try:
        return table[kind]
    except KeyError:
        raise ValueError(f"unknown {part} kind {kind!r} (known: {', '.join(table)})") from None
