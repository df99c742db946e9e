"""The plan of one track: everything random about it (tempo, key, part kinds, arrangement, mix
parameters), decided before any audio is made."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..genres import NUM_GENRES, genre_id
from .labels import genre_frequency_vector, sample_label, track_rng
from .profiles import GENRE_PROFILES, one_alternate, part_sources

MINOR = (0, 2, 3, 5, 7, 8, 10)
MAJOR = (0, 2, 4, 5, 7, 9, 11)
_PROGRESSIONS = ((0, 5, 2, 6), (0, 6, 5, 6), (5, 6, 0, 0), (0, 3, 5, 4), (3, 4, 0, 0), (0, 5, 3, 4), (5, 3, 0, 4), (0, 4, 5, 3))
#: Loudness (LUFS) of the drops a track is mastered to: commercial mainstage drops (the more
#: distorted genres at the loud end).
DROP_LUFS_RANGE = (-7.5, -4.5)
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass
class TrackPlan:
    """Everything random about one track, decided before any audio is made (JSON-serialisable)."""

    index: int
    seed: int
    label: list[float]
    sources: dict[str, str]  # part group -> genre it was drawn from
    bpm: float
    key: str
    root: int  # pitch class of the tonic
    minor: bool
    progression: list[int]
    duration: float
    sections: list[tuple[str, int, int]]  # (name, start bar, bars)
    drop_style: str  # "normal" or "short" (shorter than the detector's minimum: fallback expected)
    params: dict = field(default_factory=dict)

    @property
    def scale(self) -> tuple[int, ...]:
        """Semitones of the key's seven degrees above the tonic."""
        return MINOR if self.minor else MAJOR

    @property
    def bar_seconds(self) -> float:
        return 4 * 60.0 / self.bpm

    def section_times(self) -> list[tuple[str, float, float]]:
        out = []
        for name, start, bars in self.sections:
            a = start * self.bar_seconds
            out.append((name, round(a, 4), round(min(self.duration, a + bars * self.bar_seconds), 4)))
        return out

    def drop_sections(self) -> list[tuple[float, float]]:
        return [(a, b) for name, a, b in self.section_times() if name.startswith("drop")]


def _uniform(rng, lo_hi) -> float:
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi))


def _choice(rng, options):
    return options[int(rng.integers(len(options)))]


def plan_arrangement(total_bars: int, rng: np.random.Generator, short_drops: bool, lead_in_bars: int = 4) -> list[tuple[str, int, int]]:
    """Section list (name, start bar, bars) filling ``total_bars``: intro, build1, drop1, breakdown,
    build2, drop2, outro.  Drops are 16, 24 or 32 bars when the track is long enough (4–6 bars when
    ``short_drops``); intro + build1 last at least ``lead_in_bars`` (so drop 1 starts after the drop
    detector's skipped intro), every other section at least 2 bars; all lengths even."""
    names = ("intro", "build1", "breakdown", "build2", "outro")
    lead_in = max(4, lead_in_bars + lead_in_bars % 2)
    base = dict(zip(names, (lead_in - 2, 2, 2, 2, 2)))
    mins = sum(base.values())
    if short_drops:
        drops = [int(rng.choice([4, 6])), int(rng.choice([4, 6]))]
    else:
        budget = total_bars - max(mins, int(0.4 * total_bars))
        combos = [(a, b) for a in (16, 24, 32) for b in (16, 24, 32) if a + b <= budget]
        if combos:
            drops = list(combos[int(rng.integers(len(combos)))])
        else:  # short tracks: shrink both drops evenly
            d = max(2, ((total_bars - mins) // 2) // 2 * 2)
            drops = [d, d]
    rest = max(0, total_bars - sum(drops) - mins)
    extra = rng.multinomial(rest // 2, [0.25, 0.2, 0.3, 0.15, 0.1]) * 2
    lengths = {name: base[name] + int(e) for name, e in zip(names, extra)}
    order = [("intro", lengths["intro"]), ("build1", lengths["build1"]), ("drop1", drops[0]),
             ("breakdown", lengths["breakdown"]), ("build2", lengths["build2"]), ("drop2", drops[1]),
             ("outro", lengths["outro"] + (rest % 2))]
    out, start = [], 0
    for name, bars in order:
        out.append((name, start, int(bars)))
        start += int(bars)
    return out


def plan_track(seed: int, index: int, *, duration: tuple[float, float] = (90.0, 150.0), genre_frequencies=None,
               label: Sequence[float] | None = None, fallback_share: float = 0.05) -> TrackPlan:
    """Decide everything random about track ``index`` of a release made with ``seed`` (no audio)."""
    freqs = genre_frequency_vector(genre_frequencies)
    lab = np.asarray(label, dtype=np.float64) if label is not None else sample_label(track_rng(seed, index, "label"), freqs)
    lab = lab / lab.sum()
    rng = track_rng(seed, index, "plan")
    sources = part_sources(lab, rng)
    prof = {g: GENRE_PROFILES[src] for g, src in sources.items()}

    lo, hi = prof["tempo"]["bpm"]
    bpm = round(float(rng.uniform(lo - 1.5, hi + 1.5)), 2)  # overlapping tempo ranges
    root = int(rng.integers(12))
    minor = bool(rng.random() < 0.75)
    progression = list(_PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))])
    dur = float(rng.uniform(*duration)) if duration[1] > duration[0] else float(duration[0])
    bar_s = 240.0 / bpm
    total_bars = max(12, int(dur / bar_s))
    dur = max(dur, total_bars * bar_s)
    short = bool(rng.random() < fallback_share)
    # drop 1 after the 15 s the drop detector skips (when the track is long enough for it)
    lead_in = int(math.ceil(16.0 / bar_s)) if total_bars >= 40 else 4
    sections = plan_arrangement(total_bars, rng, short, lead_in)

    groove = _uniform(rng, prof["groove"]["groove"])
    rhythm = _uniform(rng, prof["rhythm"]["rhythm"])
    distortion = _uniform(rng, prof["distortion"]["distortion"])
    organicity = _uniform(rng, prof["organicity"]["organicity"])
    organic_p = 0.85 * (organicity - 1) / 4
    params = dict(
        kick=_choice(rng, prof["drums"]["kick"]),
        hats=_choice(rng, prof["drums"]["hats"]),
        clap=_choice(rng, ("clap", "clap", "snare")),
        bass=_choice(rng, prof["bass"]["bass"]),
        lead=_choice(rng, prof["lead"]["lead"]),
        chords=_choice(rng, prof["chords"]["chords"]),
        organic=[name for name in ("piano", "strings", "guitar") if rng.random() < organic_p],
        groove=round(groove, 3), rhythm=round(rhythm, 3), distortion=round(distortion, 3),
        organicity=round(organicity, 3), space=round(_uniform(rng, prof["space"]["space"]), 3),
        swing=round(float(rng.choice([0.0, 0.0, rng.uniform(0.05, 0.25)])), 3),
        # genre-independent per-track randomness: timbre, mix, EQ, noise floor, dynamics
        detune_cents=round(float(rng.uniform(10, 40)), 2),
        lead_cutoff=round(float(rng.uniform(2500, 11000)), 1),
        bass_cutoff=round(float(rng.uniform(300, 1500)), 1),
        lead_octave=int(rng.integers(-1, 2)),
        sample_variant=int(rng.integers(2)),  # which General MIDI program of each sampled instrument
        levels_db={k: round(float(rng.uniform(-4, 2)), 2) for k in ("kick", "clap", "hats", "perc", "bass", "lead", "chords", "organic")},
        tilt_low_db=round(float(rng.uniform(-2.5, 2.5)), 2), tilt_high_db=round(float(rng.uniform(-3, 3)), 2),
        noise_floor_db=round(float(rng.uniform(-70, -38)), 1),
        contrast_db=round(float(rng.uniform(4.5, 10.0)), 2),
        perc=bool(rng.random() < 0.5),
        melody_seed=int(rng.integers(2**31)),
        # production: synth filter, echo, reverb, and the master chain (genre-independent)
        lead_resonance=round(float(rng.uniform(0.0, 0.6)), 3),
        delay_mix=round(float(rng.choice([0.0, rng.uniform(0.1, 0.3)])), 3),
        reverb_damping=round(float(rng.uniform(0.2, 0.8)), 3),
        bus_threshold_db=round(float(rng.uniform(-20, -10)), 2), bus_ratio=round(float(rng.uniform(1.5, 4.0)), 2),
        bus_attack_ms=round(float(rng.uniform(5, 30)), 1), bus_release_ms=round(float(rng.uniform(80, 250)), 1),
        limiter_release_ms=round(float(rng.uniform(30, 150)), 1),
        drop_lufs=round(float(rng.uniform(DROP_LUFS_RANGE[0], DROP_LUFS_RANGE[1] - 1.0) + (distortion - 1) * 0.25), 2),
    )
    params["lead"] = one_alternate(params["bass"], params["lead"], sources["bass"], sources["lead"])
    key = f"{_NOTE_NAMES[root]} {'minor' if minor else 'major'}"
    return TrackPlan(index=index, seed=seed, label=[round(float(x), 6) for x in lab], sources=sources, bpm=bpm,
                     key=key, root=root, minor=minor, progression=progression, duration=round(dur, 4),
                     sections=sections, drop_style="short" if short else "normal", params=params)


def preview_plan(seed: int, genre: str, duration: float = 60.0) -> TrackPlan:
    """A single-genre plan for ``housex synth --preview`` (index offset keeps it apart from the release)."""
    label = np.zeros(NUM_GENRES)
    label[genre_id(genre)] = 1.0
    return plan_track(seed, 1_000_000 + genre_id(genre), duration=(duration, duration), label=label, fallback_share=0.0)
