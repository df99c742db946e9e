"""Synthetic HouseX: a procedural house-music generator that writes a real-format release folder.

``generate_release(out_dir, n_tracks, seed)`` writes, like one folder of the real HouseX-v2 release:

- ``<hash>-Synth_<index>.flac`` (or ``.ogg``): 44.1 kHz stereo, peak-normalised tracks;
- ``synthetic-partition.json``: a Label-Studio export in the real export's shape (one number
  result per genre, 'Techno' for Tech House), readable by :func:`labelstudio.parse_export`;
- ``generator-truth.json``: the generator's own truth per track (genre weights, which genre each
  part was drawn from, bpm, key, sections and drop sections in seconds, sampled parameters).
  Its name deliberately contains no ``detect``: it is not a drop-detection file.

How a track is made (all choices from ``numpy.random.default_rng([seed, index, ...])``, so a
track's bytes do not depend on which worker renders it):

1. a soft label with the real export's statistics (:func:`sample_label`);
2. a plan (:func:`plan_track`): each part group (tempo, drums, bass, lead, chords, groove, rhythm,
   distortion, organicity, space) is drawn from ONE genre of the label, in proportion to the
   weights (:func:`part_sources`: a 0.75/0.25 track takes 7 or 8 of its 10 groups, and always its
   signature bass and lead, from its primary genre; a one-genre track's (bass, lead) pair is one
   no other genre has, :func:`signature_pairs`), so the audio is what the label says; timbre, mix
   levels, EQ tilt, swing, noise floor and loudness contrast are random per track and shared by
   all genres, so no single statistic gives the genre away;
3. an arrangement intro → build-up → drop 1 → breakdown → build-up → drop 2 → outro in bars, drops
   16–32 bars and several dB louder than the rest (a few tracks get drops shorter than the drop
   detector's 15 s minimum, so it has to use its fallback);
4. rendering (:func:`render_track`): every part is synthesised once as a 4-bar loop (one chord per
   bar) and tiled into the sections — vectorised numpy/scipy, no per-sample Python loops.

Genre character follows the paper's Table 1 (see ``GENRE_PROFILES``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import dsp
from .genres import GENRES, NUM_GENRES, genre_id, soft_label_pattern
from .labelstudio import make_task
from .release import EXPORT_NAME, TRUTH_NAME, read_truth, write_export, write_truth

SAMPLE_RATE = 44100
FORMATS = ("flac", "ogg")

# --------------------------------------------------------------------------------------------
# labels

#: Share of each soft-label pattern in the real export partition-1-5 (355 tracks): 246/66/29/14.
LABEL_PATTERNS: dict[tuple[float, ...], float] = {
    (1.0,): 0.69,
    (0.75, 0.25): 0.19,
    (0.5, 0.5): 0.08,
    (0.5, 0.25, 0.25): 0.04,
}

#: Default genre frequencies (primary genre).  The paper's Table 2 could not be consulted offline,
#: so these are the primary-genre shares of the real export partition-1-5 (counts out of 355 tracks
#: after sharpening: 88, 81, 56, 50, 42, 9, 16, 13).  Pass ``genre_frequencies`` to change them.
DEFAULT_GENRE_FREQUENCIES: dict[str, float] = dict(zip(GENRES, (88, 81, 56, 50, 42, 9, 16, 13)))

#: How often two genres are mixed in one label, from the pair counts of the real exports
#: (commonest: Progressive↔Future, Future↔Bass, Future↔Tech, Deep↔Tech, Tech↔Bass).
#: Pairs not listed get ``_PAIR_FLOOR``.
PAIR_AFFINITY: dict[tuple[str, str], float] = {
    ("Progressive House", "Future House"): 26,
    ("Future House", "Bass House"): 19,
    ("Future House", "Tech House"): 15,
    ("Deep House", "Tech House"): 13,
    ("Tech House", "Bass House"): 12,
    ("Future House", "Deep House"): 7,
    ("Progressive House", "Deep House"): 3,
    ("Future House", "Slap House"): 4,
    ("Deep House", "Slap House"): 3,
    ("Tech House", "Slap House"): 3,
    ("Future House", "Future Rave"): 2,
    ("Bass House", "Future Rave"): 2,
    ("Bigroom", "Future Rave"): 2,
    ("Deep House", "Future Rave"): 2,
    ("Progressive House", "Tech House"): 2,
    ("Progressive House", "Future Rave"): 1,
    ("Progressive House", "Bigroom"): 1,
    ("Future House", "Bigroom"): 1,
    ("Bass House", "Slap House"): 1,
    ("Tech House", "Future Rave"): 1,
}
_PAIR_FLOOR = 0.25


def _affinity_matrix() -> np.ndarray:
    a = np.full((NUM_GENRES, NUM_GENRES), _PAIR_FLOOR)
    for (g1, g2), w in PAIR_AFFINITY.items():
        i, j = genre_id(g1), genre_id(g2)
        a[i, j] = a[j, i] = w
    np.fill_diagonal(a, 0.0)
    return a


_AFFINITY = _affinity_matrix()


def genre_frequency_vector(genre_frequencies: Mapping[str, float] | Sequence[float] | None) -> np.ndarray:
    """Normalised (8,) primary-genre probabilities from a ``{genre: weight}`` mapping (missing → 0),
    a sequence of 8 weights in canonical order, or ``None`` (the default)."""
    if genre_frequencies is None:
        genre_frequencies = DEFAULT_GENRE_FREQUENCIES
    if isinstance(genre_frequencies, Mapping):
        v = np.zeros(NUM_GENRES)
        for name, w in genre_frequencies.items():
            v[genre_id(name, where="genre_frequencies")] += float(w)
    else:
        v = np.asarray(genre_frequencies, dtype=np.float64)
        if v.shape != (NUM_GENRES,):
            raise ValueError(f"genre_frequencies: expected {NUM_GENRES} weights, got shape {v.shape}")
    if not np.all(np.isfinite(v)) or np.any(v < 0) or v.sum() <= 0:
        raise ValueError(f"genre_frequencies: weights must be finite, >= 0 and not all zero, got {v.tolist()}")
    return v / v.sum()


def sample_label(rng: np.random.Generator, genre_frequencies: np.ndarray) -> np.ndarray:
    """One soft label (8,) with the real export's pattern shares and genre-pair affinities."""
    patterns = list(LABEL_PATTERNS)
    pattern = patterns[rng.choice(len(patterns), p=np.array(list(LABEL_PATTERNS.values())) / sum(LABEL_PATTERNS.values()))]
    label = np.zeros(NUM_GENRES)
    chosen = [int(rng.choice(NUM_GENRES, p=genre_frequencies))]
    while len(chosen) < len(pattern):
        # partners follow the real mixes, and are more likely for frequent genres
        aff = _AFFINITY[chosen].sum(axis=0) * np.sqrt(genre_frequencies + 1e-3)
        aff[chosen] = 0.0
        chosen.append(int(rng.choice(NUM_GENRES, p=aff / aff.sum())))
    for g, w in zip(chosen, pattern):
        label[g] = w
    return label


def sample_labels(n: int, seed: int, genre_frequencies=None) -> np.ndarray:
    """The labels (n, 8) that ``generate_release(..., n, seed)`` gives its tracks, without rendering."""
    freqs = genre_frequency_vector(genre_frequencies)
    return np.stack([sample_label(_track_rng(seed, i, "label"), freqs) for i in range(n)]) if n else np.zeros((0, NUM_GENRES))


def _track_rng(seed: int, index: int, stream: str) -> np.random.Generator:
    """Independent generator per (seed, track, purpose): parallel workers give identical bytes."""
    tag = int.from_bytes(hashlib.sha256(stream.encode()).digest()[:4], "little")
    return np.random.default_rng([int(seed), int(index), tag])


# --------------------------------------------------------------------------------------------
# genre profiles (paper Table 1; 1–5 scales for groove, rhythm, distortion, organicity)

#: Each part group of a track is drawn from one genre's entry.  Ranges are (low, high) for a
#: uniform draw; tuples of names are choices (repeats weight a choice).
GENRE_PROFILES: dict[str, dict] = {
    # Each genre has a signature bass and lead (the FIRST entry of each; drawn most of the time) so
    # that a genre is audible in its parts; drums, tempo and effects overlap between genres as in
    # real music.  A one-genre track swaps at most one of the two for an alternate, so its
    # (bass, lead) pair is one no other genre's track can have (:func:`signature_pairs`).
    "Progressive House": dict(
        bpm=(124, 129), kick=("punchy", "punchy", "deep"), hats=("offbeat", "offbeat", "shuffle"),
        bass=("offbeat_saw", "offbeat_saw", "offbeat_saw", "rolling"), lead=("supersaw", "supersaw", "supersaw", "piano"),
        chords=("supersaw_pad", "supersaw_pad", "piano", "strings"), groove=(4, 5), rhythm=(1, 3),
        distortion=(1, 2), organicity=(3, 5), space=(0.3, 0.55),
    ),
    "Future House": dict(
        bpm=(123, 128), kick=("punchy", "tight"), hats=("offbeat", "busy"),
        bass=("bouncy", "bouncy", "bouncy", "growl"), lead=("chopped_square", "chopped_square", "chopped_square", "stab"),
        chords=("stab", None, None), groove=(3, 4), rhythm=(4, 5), distortion=(3, 4), organicity=(1, 3),
        space=(0.1, 0.3),
    ),
    "Bass House": dict(
        bpm=(123, 128), kick=("tight", "punchy"), hats=("busy", "offbeat"),
        bass=("growl", "growl", "growl", "reese"), lead=("stab", "stab", "stab", None), chords=(None,),
        groove=(2, 4), rhythm=(3, 4), distortion=(4, 5), organicity=(1, 2), space=(0.05, 0.25),
    ),
    "Tech House": dict(
        bpm=(119, 126), kick=("tight", "tight", "punchy"), hats=("busy", "busy", "shuffle"),
        bass=("rolling", "rolling", "rolling", "offbeat_saw"), lead=(None, None, None, "stab"), chords=(None, None, None, "stab"),
        groove=(3, 5), rhythm=(3, 4), distortion=(2, 4), organicity=(1, 3), space=(0.1, 0.3),
    ),
    "Deep House": dict(
        bpm=(117, 123), kick=("deep", "deep", "punchy"), hats=("shuffle", "shuffle", "offbeat"),
        bass=("reese", "reese", "reese", "rolling"), lead=("epiano", "epiano", "vocal"), chords=("pad7", "pad7", "piano"),
        groove=(2, 3), rhythm=(1, 2), distortion=(1, 2), organicity=(2, 4), space=(0.45, 0.75),
    ),
    "Bigroom": dict(
        bpm=(126, 131), kick=("bigroom", "bigroom", "bigroom", "punchy"), hats=("sparse", "offbeat"),
        bass=(None, None, None, "offbeat_saw"), lead=("horn", "horn", "horn", "supersaw"), chords=(None, None, "supersaw_pad"),
        groove=(1, 2), rhythm=(1, 3), distortion=(4, 5), organicity=(1, 2), space=(0.2, 0.45),
    ),
    "Future Rave": dict(
        bpm=(125, 129), kick=("punchy", "bigroom", "tight"), hats=("rolling", "rolling", "offbeat"),
        bass=("wave", "wave", "wave", "offbeat_saw"), lead=("buzz", "buzz", "buzz", "supersaw"), chords=(None, None, "supersaw_pad"),
        groove=(4, 5), rhythm=(3, 5), distortion=(2, 4), organicity=(1, 2), space=(0.2, 0.4),
    ),
    "Slap House": dict(
        bpm=(119, 125), kick=("punchy", "tight", "deep"), hats=("offbeat", "shuffle"),
        bass=("slap", "slap", "slap", "bouncy"), lead=("vocal", "vocal", "vocal", "chopped_square"), chords=(None, None, "piano"),
        groove=(3, 4), rhythm=(3, 5), distortion=(1, 3), organicity=(1, 2), space=(0.15, 0.4),
    ),
}

#: The part groups; each is drawn from one genre of the label.
PART_GROUPS = ("tempo", "drums", "bass", "lead", "chords", "groove", "rhythm", "distortion", "organicity", "space")
#: The groups that carry a genre's signature sound; they follow the label's top genre(s).
SIGNATURE_GROUPS = ("bass", "lead")


def part_sources(label: np.ndarray, rng: np.random.Generator) -> dict[str, str]:
    """Which genre each part group is drawn from, so that the audio is what the label says.

    Genre ``g`` supplies ``weight_g * len(PART_GROUPS)`` groups, rounded by largest remainder with
    random tie-breaks (a 0.75/0.25 label gives 8/2 or 7/3 groups: three quarters on average).  The
    signature groups (bass, lead) come from the top genre; when two genres tie for the top, one
    signature group each, so a 0.5/0.5 track really sounds half one and half the other.
    """
    genres = [int(g) for g in np.flatnonzero(label > 0)]
    # order by weight, ties in random order
    genres.sort(key=lambda g: (-label[g], float(rng.random())))
    exact = np.array([label[g] * len(PART_GROUPS) for g in genres])
    counts = np.floor(exact + 1e-9).astype(int)
    remainder = exact - counts
    order = sorted(range(len(genres)), key=lambda i: (-round(remainder[i], 9), float(rng.random())))
    for i in order[: len(PART_GROUPS) - int(counts.sum())]:
        counts[i] += 1
    top = [g for g in genres if np.isclose(label[g], label[genres[0]])]
    signature_owners = top[: len(SIGNATURE_GROUPS)] if len(top) > 1 else [genres[0]] * len(SIGNATURE_GROUPS)
    sources: dict[str, int] = dict(zip(SIGNATURE_GROUPS, signature_owners))
    left = {g: int(c) for g, c in zip(genres, counts)}
    for g in signature_owners:
        left[g] -= 1
    rest = [g for g in PART_GROUPS if g not in sources]
    pool = [g for g, c in left.items() for _ in range(max(c, 0))]
    pool += [genres[0]] * (len(rest) - len(pool))  # only if a genre got fewer groups than signature parts
    pool = pool[: len(rest)]
    for group, i in zip(rest, rng.permutation(len(rest))):
        sources[group] = pool[int(i)]
    return {group: GENRES[sources[group]] for group in PART_GROUPS}


def signature_pairs(genre: str) -> set[tuple[str | None, str | None]]:
    """Every (bass, lead) pair a one-genre ``genre`` track can have: the genre's signature bass and
    lead with at most one of them swapped for an alternate of its profile.

    The pairs of two genres never meet (a test checks), so a one-genre track's label can be heard in
    its signature parts.  Two alternates at once could (Tech House with Bass House's growl and no
    lead, Future House with a growl and stabs): those tracks sounded like another genre."""
    prof = GENRE_PROFILES[genre]
    bass, lead = prof["bass"][0], prof["lead"][0]
    return {(b, lead) for b in prof["bass"]} | {(bass, m) for m in prof["lead"]}


def _one_alternate(bass: str | None, lead: str | None, bass_genre: str, lead_genre: str) -> str | None:
    """The lead to use: the signature lead when the bass and lead come from one genre and their
    pair is not one of its :func:`signature_pairs` (both draws were alternates); otherwise ``lead``."""
    if bass_genre != lead_genre or (bass, lead) in signature_pairs(bass_genre):
        return lead
    return GENRE_PROFILES[bass_genre]["lead"][0]


_MINOR = (0, 2, 3, 5, 7, 8, 10)
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_PROGRESSIONS = ((0, 5, 2, 6), (0, 6, 5, 6), (5, 6, 0, 0), (0, 3, 5, 4), (3, 4, 0, 0), (0, 5, 3, 4), (5, 3, 0, 4), (0, 4, 5, 3))
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_VOWELS = {"a": (800, 1150, 2900), "e": (400, 1600, 2700), "o": (450, 800, 2830), "i": (300, 2200, 3000)}


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
    lab = np.asarray(label, dtype=np.float64) if label is not None else sample_label(_track_rng(seed, index, "label"), freqs)
    lab = lab / lab.sum()
    rng = _track_rng(seed, index, "plan")
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
        vowel=_choice(rng, tuple(_VOWELS)),
        levels_db={k: round(float(rng.uniform(-4, 2)), 2) for k in ("kick", "clap", "hats", "perc", "bass", "lead", "chords", "organic")},
        tilt_low_db=round(float(rng.uniform(-2.5, 2.5)), 2), tilt_high_db=round(float(rng.uniform(-3, 3)), 2),
        noise_floor_db=round(float(rng.uniform(-70, -38)), 1),
        contrast_db=round(float(rng.uniform(4.5, 10.0)), 2),
        master_drive=round(float(rng.uniform(1.0, 2.5) + (distortion - 1) * 0.25), 3),
        perc=bool(rng.random() < 0.5),
        melody_seed=int(rng.integers(2**31)),
    )
    params["lead"] = _one_alternate(params["bass"], params["lead"], sources["bass"], sources["lead"])
    key = f"{_NOTE_NAMES[root]} {'minor' if minor else 'major'}"
    return TrackPlan(index=index, seed=seed, label=[round(float(x), 6) for x in lab], sources=sources, bpm=bpm,
                     key=key, root=root, minor=minor, progression=progression, duration=round(dur, 4),
                     sections=sections, drop_style="short" if short else "normal", params=params)


# --------------------------------------------------------------------------------------------
# note patterns (beats within a 4-bar loop; 16 beats)

Note = tuple[float, float, float, float]  # (start beat, length in beats, midi, velocity)


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
    scale = _MINOR if plan.minor else _MAJOR
    onsets = _onsets(rng, rhythm)
    alt = _onsets(rng, rhythm) if rng.random() < 0.5 else onsets
    motif = rng.choice([0, 2, 4, 7, 0, 2, 4, 1, 3, 5], size=max(len(onsets), len(alt)))
    notes = []
    for bar, degree in enumerate(plan.progression):
        ons = alt if bar % 2 else onsets
        for k, b in enumerate(ons):
            nxt = ons[k + 1] if k + 1 < len(ons) else 4.0
            notes.append((bar * 4 + b, max(0.1, (nxt - b) * gate), _deg_midi(base, scale, degree + int(motif[k])), 0.8 + 0.2 * rng.random()))
    return notes


def bass_notes(rng, plan: TrackPlan, kind: str, base: int, rhythm: float) -> list[Note]:
    scale = _MINOR if plan.minor else _MAJOR
    notes: list[Note] = []
    for bar, degree in enumerate(plan.progression):
        root = _deg_midi(base, scale, degree)
        t0 = bar * 4
        if kind == "offbeat_saw":
            notes += [(t0 + b + 0.5, 0.4, root, 1.0) for b in range(4)]
        elif kind == "bouncy":
            for b in range(4):
                notes += [(t0 + b + 0.5, 0.22, root, 1.0), (t0 + b + 0.75, 0.2, root + 12 * (b % 2), 0.8)]
        elif kind == "growl":
            step = 0.25 if rhythm >= 3.5 else 0.5
            for b in range(4):
                pos = np.arange(0.25, 1.0, step)
                notes += [(t0 + b + p, step * 0.9, root + (12 if rng.random() < 0.2 else 0), 1.0) for p in pos]
        elif kind == "rolling":
            for b in range(4):
                notes += [(t0 + b + p, 0.2, root + (7 if (b == 3 and p == 0.75) else 0), 0.9) for p in (0.25, 0.5, 0.75)]
        elif kind == "reese":
            notes.append((t0, 4.0, root, 1.0))
        elif kind == "wave":
            notes += [(t0, 2.0, root, 1.0), (t0 + 2, 2.0, root + (12 if rng.random() < 0.3 else 0), 1.0)]
        elif kind == "slap":
            for p, o in ((0.0, 0), (0.75, 12), (1.5, 0), (2.5, 12), (3.0, 0), (3.5, 7)):
                notes.append((t0 + p, 0.35, root + o, 1.0 if o == 0 else 0.85))
    return notes


def chord_notes(rng, plan: TrackPlan, kind: str, base: int, rhythm: float) -> list[Note]:
    scale = _MINOR if plan.minor else _MAJOR
    notes: list[Note] = []
    size = 4 if kind == "pad7" else 3
    for bar, degree in enumerate(plan.progression):
        chord = _chord(base, scale, degree, size)
        t0 = bar * 4
        if kind in ("supersaw_pad", "pad7", "strings"):
            notes += [(t0, 4.0, m, 0.8) for m in chord]
        elif kind == "stab":
            for p in (0.5, 1.5, 2.25, 3.0, 3.5):
                notes += [(t0 + p, 0.2, m, 0.9) for m in chord]
        elif kind == "piano":
            pos = _onsets(rng, min(rhythm, 2.5))
            for k, p in enumerate(pos):
                notes += [(t0 + p, 1.0, m, 0.75 if k else 0.9) for m in chord]
    return notes


def arp_notes(rng, plan: TrackPlan, base: int, step: float) -> list[Note]:
    scale = _MINOR if plan.minor else _MAJOR
    notes: list[Note] = []
    order = rng.permutation(4)
    for bar, degree in enumerate(plan.progression):
        tones = _chord(base, scale, degree, 3) + [_deg_midi(base, scale, degree + 7)]
        for k, p in enumerate(np.arange(0, 4, step)):
            notes.append((bar * 4 + p, step * 1.5, tones[order[k % 4]], 0.7 + 0.3 * (k % 2 == 0)))
    return notes


# --------------------------------------------------------------------------------------------
# rendering


class _Loop:
    """Rendering context of one track: tempo grid, 4-bar loop length, shared random generator."""

    def __init__(self, plan: TrackPlan, sr: int, rng: np.random.Generator):
        self.plan, self.sr, self.rng = plan, sr, rng
        self.beat = 60.0 / plan.bpm * sr  # samples per beat (float)
        self.n = int(round(16 * self.beat))  # one 4-bar loop

    def place(self, notes: Sequence[Note], voice, swing: float = 0.0) -> np.ndarray:
        """Sum ``voice(midi, gate_samples) -> (m, 2)`` at every note; tails wrap around the loop.
        Identical (pitch, length) notes are synthesised once."""
        buf = np.zeros((self.n, 2))
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


def _wrap_add(buf: np.ndarray, start: int, y: np.ndarray) -> None:
    n, pos, i = buf.shape[0], start, 0
    while i < y.shape[0]:
        k = min(n - pos, y.shape[0] - i)
        buf[pos:pos + k] += y[i:i + k]
        i += k
        pos = 0


def _norm(x: np.ndarray, peak: float = 1.0) -> np.ndarray:
    m = np.max(np.abs(x))
    return x * (peak / m) if m > 0 else x


def _lead_voice(kind: str, sr: int, rng, p: dict):
    detune = p["detune_cents"]

    def voice(midi, gate):
        f = float(dsp.midi_to_hz(midi))
        if kind == "supersaw":
            n = gate + int(0.25 * sr)
            return dsp.supersaw(f, n, sr, rng, voices=7, detune_cents=detune)[:n] * dsp.adsr(n, sr, 0.005, 0.25, 0.7, 0.2, gate)[:, None]
        if kind == "chopped_square":
            n = gate + int(0.03 * sr)
            bend = f * (1 + 0.06 * dsp.exp_decay(n, sr, 0.015, attack=1e-5))  # the 'bouncy' pitch blip
            return (dsp.square(bend, n, sr, 0.5) + 0.3 * dsp.square(bend * 2, n, sr, 0.3)) * dsp.adsr(n, sr, 0.002, 0.08, 0.6, 0.02, gate)
        if kind == "stab":
            n = min(gate, int(0.2 * sr)) + int(0.05 * sr)
            y = dsp.square(f, n, sr, 0.4) + dsp.saw(f * 1.005, n, sr) + 0.5 * dsp.sine(f / 2, n, sr)
            return y * dsp.adsr(n, sr, 0.002, 0.12, 0.2, 0.04, n - int(0.05 * sr), curve=2.0)
        if kind == "epiano":
            n = gate + int(0.4 * sr)
            env = dsp.exp_decay(n, sr, 0.5, attack=0.003)
            return dsp.fm(f, n, sr, ratio=1.0, index=2.5 * dsp.exp_decay(n, sr, 0.15) + 0.3) * env * dsp.adsr(n, sr, 0.001, 0.0, 1.0, 0.3, gate)
        if kind == "horn":
            n = gate + int(0.15 * sr)
            env = dsp.adsr(n, sr, 0.04, 0.3, 0.75, 0.12, gate)
            k = np.arange(1, 16)[:, None]
            t = np.arange(n)[None, :] / sr
            detuned = f * (1 + 0.004 * rng.standard_normal((15, 1)))
            y = ((env[None, :] ** (1 + 0.35 * k)) / k * np.sin(2 * np.pi * k * detuned * t)).sum(axis=0)  # brass: brighter when louder
            return np.stack([y, np.roll(y, 30)], axis=1)
        if kind == "buzz":
            n = gate + int(0.02 * sr)
            duty = 0.12 + 0.08 * np.sin(2 * np.pi * 3.0 * np.arange(n) / sr)
            y = dsp.square(f, n, sr, float(duty.mean())) * (1 + 0.3 * duty) + 0.5 * dsp.saw(f * 2.01, n, sr)
            return y * dsp.adsr(n, sr, 0.003, 0.05, 0.8, 0.02, gate)
        if kind == "vocal":
            n = gate + int(0.08 * sr)
            vib = f * (1 + 0.006 * np.sin(2 * np.pi * 5.5 * np.arange(n) / sr))
            return (dsp.saw(vib, n, sr) + 0.4 * dsp.saw(vib * 1.003, n, sr)) * dsp.adsr(n, sr, 0.03, 0.1, 0.85, 0.07, gate)
        if kind == "piano":
            n = gate + int(0.6 * sr)
            return dsp.additive_piano(f, n, sr, decay=1.4)
        raise ValueError(f"unknown lead kind {kind!r}")

    return voice


def _bass_voice(kind: str, sr: int, rng, p: dict, beat: float):
    def voice(midi, gate):
        f = float(dsp.midi_to_hz(midi))
        if kind == "offbeat_saw":
            n = gate + int(0.03 * sr)
            y = 0.7 * dsp.saw(f, n, sr) + dsp.sine(f, n, sr)
            return y * dsp.adsr(n, sr, 0.003, 0.12, 0.5, 0.03, gate)
        if kind == "bouncy":
            n = gate + int(0.02 * sr)
            bend = f * (1 + 0.5 * dsp.exp_decay(n, sr, 0.01, attack=1e-5))
            return (dsp.square(bend, n, sr, 0.5) * 0.6 + dsp.sine(f, n, sr)) * dsp.adsr(n, sr, 0.002, 0.1, 0.4, 0.02, gate)
        if kind == "growl":
            n = gate + int(0.02 * sr)
            t = np.arange(n) / sr
            lfo = 0.5 * (1 - np.cos(2 * np.pi * t * (sr / beat) * rng.choice([1, 2])))  # 1 or 2 wobbles per beat
            y = dsp.fm(f, n, sr, ratio=float(rng.choice([0.5, 1.0, 1.5, 2.0])), index=1.0 + 5.0 * lfo)
            return dsp.waveshape(y + 0.5 * dsp.saw(f, n, sr), 3.0) * dsp.adsr(n, sr, 0.002, 0.05, 0.8, 0.02, gate)
        if kind == "rolling":
            n = gate + int(0.02 * sr)
            return (dsp.sine(f, n, sr) + 0.25 * dsp.saw(f, n, sr)) * dsp.adsr(n, sr, 0.002, 0.09, 0.2, 0.02, gate, curve=1.5)
        if kind == "reese":
            n = gate + int(0.05 * sr)
            y = np.stack([dsp.saw(f * 2 ** (12 / 1200), n, sr) + dsp.saw(f * 2 ** (-9 / 1200), n, sr),
                          dsp.saw(f * 2 ** (-12 / 1200), n, sr) + dsp.saw(f * 2 ** (8 / 1200), n, sr)], axis=1)
            return (0.5 * y + dsp.sine(f, n, sr)[:, None]) * dsp.adsr(n, sr, 0.02, 0.2, 0.9, 0.05, gate)[:, None]
        if kind == "wave":
            n = gate + int(0.05 * sr)
            t = np.arange(n) / sr
            wob = np.sin(2 * np.pi * t * sr / beat * rng.choice([1.0, 2.0]))
            y = dsp.saw(f * (1 + 0.02 * wob), n, sr) * (0.65 + 0.35 * wob) + dsp.sine(f, n, sr)
            return y * dsp.adsr(n, sr, 0.01, 0.2, 0.9, 0.05, gate)
        if kind == "slap":
            n = gate + int(0.02 * sr)
            bend = f * 2 ** (dsp.exp_decay(n, sr, 0.012, attack=1e-5))  # octave pop into the note
            y = dsp.saw(bend, n, sr) + 0.6 * dsp.square(bend, n, sr, 0.3) + 0.8 * dsp.sine(f, n, sr)
            click = dsp.highpass(rng.standard_normal(n), 1500, sr) * dsp.exp_decay(n, sr, 0.004)
            return (y + 0.4 * click) * dsp.adsr(n, sr, 0.001, 0.15, 0.35, 0.02, gate, curve=1.5)
        raise ValueError(f"unknown bass kind {kind!r}")

    return voice


def _chord_voice(kind: str, sr: int, rng, p: dict):
    def voice(midi, gate):
        f = float(dsp.midi_to_hz(midi))
        if kind == "supersaw_pad":
            n = gate + int(0.2 * sr)
            return dsp.supersaw(f, n, sr, rng, voices=5, detune_cents=p["detune_cents"]) * dsp.adsr(n, sr, 0.01, 0.3, 0.8, 0.2, gate)[:, None]
        if kind in ("pad7", "strings"):
            n = gate + int(0.4 * sr)
            vib = f * (1 + 0.003 * np.sin(2 * np.pi * 5.0 * np.arange(n) / sr + rng.random() * 6))
            y = dsp.supersaw(vib, n, sr, rng, voices=3, detune_cents=8 if kind == "pad7" else 15)
            return y * dsp.adsr(n, sr, 0.25 if kind == "pad7" else 0.4, 0.3, 0.9, 0.35, gate)[:, None]
        if kind == "stab":
            n = min(gate, int(0.15 * sr)) + int(0.03 * sr)
            y = dsp.square(f, n, sr, 0.5) + 0.6 * dsp.saw(f * 2, n, sr)
            return y * dsp.adsr(n, sr, 0.002, 0.1, 0.1, 0.03, n - int(0.03 * sr), curve=2.0)
        if kind == "piano":
            n = gate + int(0.8 * sr)
            return dsp.additive_piano(f, n, sr, decay=1.6)
        raise ValueError(f"unknown chord kind {kind!r}")

    return voice


def _render_parts(plan: TrackPlan, sr: int) -> tuple[_Loop, dict[str, np.ndarray]]:
    """All stems of a track as (n_loop, 2) loops: drums, bass, lead, chords, organic (dry),
    plus the groove's side-chain curve."""
    rng = np.random.default_rng([plan.seed, plan.index, plan.params["melody_seed"]])
    p = plan.params
    lp = _Loop(plan, sr, rng)
    n = lp.n
    swing = p["swing"]
    groove, rhythm, distortion = p["groove"], p["rhythm"], p["distortion"]
    gate = 0.35 + 0.13 * groove  # low groove: short, staccato notes
    stems: dict[str, np.ndarray] = {}

    # --- drums
    bass_root_hz = float(dsp.midi_to_hz(28 + (plan.root - 4) % 12))  # the tonic between E1 and D#2: 41–78 Hz
    kick_kind = p["kick"]
    if kick_kind == "bigroom":
        k = dsp.kick(sr, 0.5, f_start=rng.uniform(250, 400), f_end=bass_root_hz, pitch_tau=0.04,
                     amp_tau=rng.uniform(0.25, 0.45), click=0.6, drive=rng.uniform(3, 6), rng=rng)
        k = k + 0.4 * dsp.highpass(k, 300, sr)
    elif kick_kind == "tight":
        k = dsp.kick(sr, 0.25, f_start=rng.uniform(160, 230), f_end=rng.uniform(48, 60), pitch_tau=0.02,
                     amp_tau=rng.uniform(0.06, 0.1), click=0.5, drive=2.0, rng=rng)
    elif kick_kind == "deep":
        k = dsp.kick(sr, 0.35, f_start=rng.uniform(110, 150), f_end=rng.uniform(42, 52), pitch_tau=0.03,
                     amp_tau=rng.uniform(0.12, 0.2), click=0.1, drive=1.2, rng=rng)
    else:
        k = dsp.kick(sr, 0.35, f_start=rng.uniform(150, 220), f_end=rng.uniform(45, 58), pitch_tau=0.03,
                     amp_tau=rng.uniform(0.1, 0.18), click=0.3, drive=1.6, rng=rng)
    stems["kick"] = lp.place([(b, 0.5, 0, 1.0) for b in range(16)], lambda m, g: k)
    cl = dsp.clap(sr, rng, tone_hz=rng.uniform(900, 1600)) if p["clap"] == "clap" else dsp.snare(sr, rng, tone_hz=rng.uniform(170, 230))
    stems["clap"] = lp.place([(b, 0.5, 0, 1.0) for b in range(1, 16, 2)], lambda m, g: cl)
    closed = dsp.hat(sr, rng, 0.04, cutoff=rng.uniform(6000, 9000), metallic=rng.uniform(0.2, 0.8))
    opened = dsp.hat(sr, rng, 0.22, cutoff=rng.uniform(5000, 8000), metallic=rng.uniform(0.2, 0.8))
    hats = p["hats"]
    notes_o = [(b + 0.5, 0.5, 1, 0.9) for b in range(16)]
    if hats == "busy":
        notes_c = [(s / 4, 0.25, 0, 0.5 + 0.3 * (s % 2 == 0)) for s in range(64) if s % 4 != 2]
    elif hats == "rolling":
        notes_c = [(s / 4, 0.25, 0, 0.6 + 0.2 * (s % 2 == 0)) for s in range(64)]
    elif hats == "shuffle":
        notes_c = [(s / 4, 0.25, 0, 0.35 + 0.3 * (s % 4 == 3)) for s in range(64) if s % 4 in (1, 3)]
    elif hats == "sparse":
        notes_c, notes_o = [], [(b + 0.5, 0.5, 1, 0.8) for b in range(16)]
    else:  # offbeat
        notes_c = [(b + 0.75, 0.25, 0, 0.4) for b in range(16)]
    hat_l = lp.place(notes_c, lambda m, g: dsp.pan(closed, 0.25)) + lp.place(notes_o, lambda m, g: dsp.pan(opened, -0.15))
    stems["hats"] = hat_l
    if p["perc"] or hats == "busy":
        rim = dsp.bandpass(dsp.exp_decay(int(0.06 * sr), sr, 0.01) * rng.standard_normal(int(0.06 * sr)), 600, 2500, sr)
        tom = dsp.sine(rng.uniform(180, 320), int(0.15 * sr), sr) * dsp.exp_decay(int(0.15 * sr), sr, 0.05)
        pos = rng.choice(64, size=int(rng.integers(4, 10)), replace=False)
        notes = [(s / 4, 0.25, s % 2, 0.7) for s in pos]
        stems["perc"] = lp.place(notes, lambda m, g: dsp.pan(_norm(rim if m else tom), rng.uniform(-0.6, 0.6)), swing)

    # --- bass (Bigroom: none; its pitched kick is the bass)
    if p["bass"]:
        base = 36 + plan.root - (12 if plan.root > 7 else 0)
        b = lp.place(bass_notes(rng, plan, p["bass"], base, rhythm), _bass_voice(p["bass"], sr, rng, p, lp.beat), swing)
        cutoff = p["bass_cutoff"] * (3.0 if p["bass"] in ("slap", "growl", "bouncy") else 1.0)
        b = dsp.lowpass(b, cutoff, sr)
        if p["bass"] == "slap":
            b = b + 0.8 * dsp.bandpass(b, 400, 2000, sr)  # the slapped mids
        stems["bass"] = _norm(dsp.waveshape(b / (np.max(np.abs(b)) + 1e-9), 1 + 0.6 * (distortion - 1)))

    # --- lead
    if p["lead"]:
        base = 60 + plan.root + 12 * p["lead_octave"] - (12 if p["lead"] in ("horn", "vocal") else 0)
        lead_rhythm = rhythm if p["lead"] not in ("stab",) else 3.0
        notes = melody_notes(rng, plan, base, lead_rhythm, gate)
        if p["lead"] == "stab":  # Bass House: no real melody, stabs right after the kick
            scale = _MINOR if plan.minor else _MAJOR
            notes = [(bar * 4 + bt + off, 0.2, _deg_midi(base - 12, scale, 0), 1.0)
                     for bar in range(4) for bt in range(4) for off in ((0.25,) if rhythm < 3.5 else (0.25, 0.5))]
        y = lp.place(notes, _lead_voice(p["lead"], sr, rng, p), swing)
        if p["lead"] == "vocal":
            y = dsp.formant_filter(y, sr, _VOWELS[p["vowel"]], q=6.0) * 3.0
        y = dsp.lowpass(y, p["lead_cutoff"], sr)
        if p["lead"] == "chopped_square":  # chopped: 16th trance gate
            chop = (((np.arange(n) / (lp.beat / 4)).astype(int) % 4) != 3).astype(float)
            y = y * dsp.lowpass(chop, 300, sr)[:, None]
        stems["lead"] = y

    # --- chords
    if p["chords"]:
        base = 60 + plan.root - (12 if plan.root > 5 else 0)
        y = lp.place(chord_notes(rng, plan, p["chords"], base, rhythm), _chord_voice(p["chords"], sr, rng, p))
        stems["chords"] = dsp.lowpass(y, 1800 if p["chords"] == "pad7" else p["lead_cutoff"] * 0.8, sr)

    # --- organic layers: piano arpeggio, strings, plucked guitar (Karplus-Strong)
    org = np.zeros((n, 2))
    base = 60 + plan.root - (12 if plan.root > 5 else 0)
    if "piano" in p["organic"]:
        org += lp.place(arp_notes(rng, plan, base + 12, 0.5), lambda m, g: dsp.pan(dsp.additive_piano(float(dsp.midi_to_hz(m)), g + int(0.5 * sr), sr), -0.3))
    if "strings" in p["organic"]:
        org += 0.7 * lp.place(chord_notes(rng, plan, "strings", base, 1.0), _chord_voice("strings", sr, rng, p))
    if "guitar" in p["organic"]:
        org += lp.place(arp_notes(rng, plan, base, 0.25 if rhythm > 2.5 else 0.5),
                        lambda m, g: dsp.pan(dsp.karplus_strong(float(dsp.midi_to_hz(m)), g + int(0.3 * sr), sr, rng, 0.995, 0.6), 0.35))
    if p["organic"]:
        stems["organic"] = org

    # --- distortion: drive, bit-crush, flanger on lead (and chords for harsh settings)
    if "lead" in stems:
        y = _norm(stems["lead"])
        if distortion >= 3.0:
            y = dsp.waveshape(y, 1 + (distortion - 2.5) * 1.5)
        if p["lead"] == "buzz" or (distortion >= 4.0 and rng.random() < 0.5):
            y = dsp.bitcrush(y, bits=float(rng.uniform(5, 9)), downsample=int(rng.integers(2, 5)))
        if distortion >= 3.0 and rng.random() < 0.5:
            y = dsp.flanger(y, sr, depth_ms=rng.uniform(1, 4), rate_hz=rng.uniform(0.1, 0.5), mix=0.7)
        stems["lead"] = y

    # --- space: reverb send on melodic parts (circular: the loop's steady state)
    ir = dsp.reverb_ir(sr, 0.8 + 3.5 * p["space"], rng, damping_hz=rng.uniform(3000, 9000))
    for name in ("lead", "chords", "organic"):
        if name in stems:
            dry = _norm(stems[name])
            stems[name] = dry + p["space"] * 1.5 * _norm(dsp.circular_convolve(dry, ir))

    # --- per-track EQ tilt and mix levels (genre-independent)
    for name in list(stems):
        y = dsp.tilt_eq(_norm(stems[name]), sr, p["tilt_low_db"], p["tilt_high_db"])
        stems[name] = _norm(y) * 10 ** ((p["levels_db"][name] + _BASE_LEVEL_DB[name]) / 20)
    stems["sidechain"] = dsp.sidechain_envelope(n, sr, lp.beat, depth=0.12 + 0.19 * (groove - 1),
                                                release=(0.25 + 0.12 * groove) * lp.beat / sr, shape=1 + groove / 2)[:, None]
    return lp, stems


_BASE_LEVEL_DB = {"kick": 0.0, "clap": -8.0, "hats": -12.0, "perc": -14.0, "bass": -4.0, "lead": -5.0, "chords": -8.0, "organic": -9.0}

#: which stems play in which section; ``"~"`` = low-passed (filtered) version, ``"|"`` = not side-chained
_SECTION_STEMS = {
    "intro": ("kick", "hats", "perc", "~bass", "~chords"),
    "build": ("|~chords", "|~lead", "|organic", "hats"),
    "drop": ("kick", "clap", "hats", "perc", "bass", "lead", "chords", "organic"),
    "breakdown": ("|chords", "|organic", "|~lead"),
    "outro": ("kick", "hats", "perc", "~bass"),
}


def _section_loop(kind: str, stems: dict[str, np.ndarray], filtered: dict[str, np.ndarray], sr: int) -> np.ndarray:
    """The mix of one section kind as a loop (n, 2): its stems, filtered/side-chained as listed."""
    side = stems["sidechain"]
    mix = np.zeros_like(stems["kick"])
    recipe = _SECTION_STEMS[kind]
    if kind == "breakdown" and not any(s in stems for s in ("chords", "organic", "lead")):
        recipe = ("hats", "perc", "|~bass")  # minimal tracks (no melodic part) keep a groove
    for spec in recipe:
        plain, low = spec.startswith("|"), "~" in spec
        stem = spec.strip("|~")
        if stem not in stems:
            continue
        loop = stems[stem]
        if low:
            if stem not in filtered:
                filtered[stem] = dsp.lowpass(loop, 700.0 if stem != "chords" else 1200.0, sr)
            loop = filtered[stem]
        mix += loop if plain or stem not in ("bass", "lead", "chords", "organic") else loop * side
    return mix


def _tile_into(out: np.ndarray, a: int, b: int, loop: np.ndarray) -> None:
    """out[a:b] = the loop repeated from track time 0 (so loops stay on the bar grid)."""
    n, pos = loop.shape[0], a
    while pos < b:
        off = pos % n
        k = min(n - off, b - pos)
        out[pos:pos + k] = loop[off:off + k]
        pos += k


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) + 1e-12


def render_track(plan: TrackPlan, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The track of ``plan`` as float32 (samples, 2), peak-normalised to -0.3 dBFS.

    Sections other than build-ups are periodic in the 4-bar loop, so they are mixed, levelled and
    driven at loop length and only copied (tiled) into the track."""
    lp, stems = _render_parts(plan, sr)
    rng = np.random.default_rng([plan.seed, plan.index, 7])
    p = plan.params
    total = int(round(plan.duration * sr))
    bar = lp.n / 4
    filtered: dict[str, np.ndarray] = {}
    mixes = {kind: _section_loop(kind, stems, filtered, sr) for kind in _SECTION_STEMS}
    drop_rms = _rms(mixes["drop"])
    # loudness contrast: every other section sits ``contrast_db`` (or more) under the drops
    target = drop_rms * 10 ** (-p["contrast_db"] / 20)
    noise = rng.standard_normal((lp.n, 2)) * drop_rms * 10 ** (p["noise_floor_db"] / 20)
    pieces = []  # (a, b, signal, is_loop)
    for name, start, bars in plan.sections:
        a = int(round(start * bar))
        b = total if name == "outro" else min(total, int(round((start + bars) * bar)))
        if b <= a:
            continue
        kind = name.rstrip("12")
        if kind == "build":
            seg = np.empty((b - a, 2))
            _tile_into(seg, 0, b - a, mixes["build"] + 0.0)
            seg *= np.linspace(0.3, 1.0, b - a)[:, None]  # crescendo into the drop
            seg += _build_fx(b - a, lp, sr, rng, p)
            seg *= min(1.0, target / _rms(seg[-(b - a) // 4:]))
            seg += np.resize(noise, seg.shape)
            pieces.append((a, b, seg, False))
        else:
            gain = 1.0 if kind == "drop" else min(1.0, target / _rms(mixes[kind]))
            pieces.append((a, b, mixes[kind] * gain + noise, True))
    peak = max(float(np.max(np.abs(x))) for _, _, x, _ in pieces) + 1e-12
    out = np.zeros((total, 2), dtype=np.float32)
    driven: dict[int, np.ndarray] = {}
    for a, b, x, is_loop in pieces:
        key = id(x)
        if key not in driven:
            driven[key] = dsp.waveshape(x / peak, p["master_drive"]).astype(np.float32)
        if is_loop:
            _tile_into(out, a, b, driven[key])
        else:
            out[a:b] = driven[key]
    fade_in, fade_out = int(0.05 * sr), min(total // 4, int(2.0 * sr))
    out[:fade_in] *= np.linspace(0, 1, fade_in, dtype=np.float32)[:, None]
    out[total - fade_out:] *= np.linspace(1, 0, fade_out, dtype=np.float32)[:, None]
    return out * np.float32(10 ** (-0.3 / 20) / (np.max(np.abs(out)) + 1e-12))


def _build_fx(m: int, lp: _Loop, sr: int, rng, p: dict) -> np.ndarray:
    """Riser plus an accelerating snare roll (1/4 → 1/8 → 1/16 → 1/32) over a build-up of m samples."""
    y = 0.5 * dsp.riser(m, sr, rng, start_hz=rng.uniform(200, 600), end_hz=rng.uniform(6000, 12000))
    hit = dsp.snare(sr, rng, length=0.12, tone_hz=rng.uniform(180, 240))
    beats = m / lp.beat
    times, t = [], 0.0
    while t < beats:
        frac = t / beats
        times.append(t)
        t += 1.0 if frac < 0.25 else 0.5 if frac < 0.5 else 0.25 if frac < 0.8 else 0.125
    roll = np.zeros(m)
    for t in times:
        s = int(t * lp.beat)
        k = min(len(hit), m - s)
        roll[s:s + k] += hit[:k] * (0.3 + 0.7 * t / beats)
    return y + 0.35 * roll[:, None]


# --------------------------------------------------------------------------------------------
# release folder


def audio_file_name(seed: int, index: int, fmt: str) -> str:
    """Release-style name ``<8 hex>-Synth_<seed>_<index>.<fmt>`` (like Label-Studio's upload names)."""
    h = hashlib.sha1(f"{seed}:{index}".encode()).hexdigest()[:8]
    return f"{h}-Synth_{seed}_{index:05d}.{fmt}"


def write_audio(path: Path, y: np.ndarray, sr: int, fmt: str, block: int = 65536) -> None:
    """Write (samples, channels) float audio as 16-bit FLAC (soundfile) or Vorbis OGG (the ``ffmpeg``
    binary, quality 5, bit-exact muxing).

    OGG does not go through soundfile: libsndfile picks a random Ogg stream serial number (so the
    bytes differ run to run) and its Vorbis encoder crashes when minutes arrive in one write."""
    import shutil
    import subprocess

    import soundfile as sf

    if fmt == "flac":
        with sf.SoundFile(path, "w", samplerate=sr, channels=y.shape[1], format="FLAC", subtype="PCM_16") as f:
            for i in range(0, y.shape[0], block):
                f.write(y[i:i + block])
        return
    if fmt != "ogg":
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError(f"{path}: writing OGG needs the ffmpeg binary (e.g. 'apt-get install ffmpeg'); use --format flac")
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "f32le", "-ar", str(sr), "-ac", str(y.shape[1]),
           "-i", "pipe:0", "-c:a", "libvorbis", "-q:a", "5", "-fflags", "+bitexact", "-flags:a", "+bitexact",
           "-map_metadata", "-1", str(path)]
    proc = subprocess.run(cmd, input=np.ascontiguousarray(y, dtype="<f4").tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{path}: ffmpeg failed to encode OGG: {proc.stderr.decode(errors='replace').strip()[-500:]}")


def _render_to_file(job: tuple) -> dict:
    out_dir, plan_dict, fmt, sr = job
    plan = TrackPlan(**plan_dict)
    plan.sections = [tuple(s) for s in plan.sections]
    name = audio_file_name(plan.seed, plan.index, fmt)
    y = render_track(plan, sr)
    write_audio(Path(out_dir) / name, y, sr, fmt)
    return track_record(plan, name)


def track_record(plan: TrackPlan, audio_name: str) -> dict:
    """The generator-truth entry of one track."""
    label = np.asarray(plan.label)
    return {
        "audio": audio_name,
        "index": plan.index,
        "task_id": plan.index + 1,
        "label": {g: float(w) for g, w in zip(GENRES, label) if w > 0},
        "pattern": list(soft_label_pattern(label)),
        "sources": plan.sources,
        "bpm": plan.bpm,
        "key": plan.key,
        "progression": plan.progression,
        "duration": plan.duration,
        "sections": [list(s) for s in plan.section_times()],
        "drop_sections": [list(s) for s in plan.drop_sections()],
        "drop_style": plan.drop_style,
        "expects_fallback": plan.drop_style == "short",
        "params": plan.params,
    }


def generate_release(out_dir, n_tracks: int, seed: int, *, duration: tuple[float, float] = (90.0, 150.0),
                     fmt: str = "flac", workers: int = 1, progress: bool = True, genre_frequencies=None,
                     fallback_share: float = 0.05, sr: int = SAMPLE_RATE) -> list[dict]:
    """Write a synthetic release folder (audio + ``synthetic-partition.json`` + ``generator-truth.json``).

    Returns the per-track truth records (as in ``generator-truth.json``).  Same ``seed`` → identical
    files, whatever ``workers`` is.
    """
    if n_tracks < 1:
        raise ValueError(f"n_tracks must be >= 1, got {n_tracks}")
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    lo, hi = (float(x) for x in duration)
    if not (math.isfinite(lo) and math.isfinite(hi) and 10.0 <= lo <= hi):
        raise ValueError(f"duration: expected 10 <= MIN <= MAX seconds, got {duration}")
    if not 0.0 <= fallback_share <= 1.0:
        raise ValueError(f"fallback_share must be in [0, 1], got {fallback_share}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plans = [plan_track(seed, i, duration=(lo, hi), genre_frequencies=genre_frequencies, fallback_share=fallback_share)
             for i in range(n_tracks)]
    jobs = [(str(out), asdict(p), fmt, sr) for p in plans]
    records: list[dict]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_tracks, desc="synth", unit="track")
    try:
        if workers > 1 and n_tracks > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(min(workers, n_tracks)) as pool:
                records = []
                for r in pool.imap(_render_to_file, jobs):
                    records.append(r)
                    if bar:
                        bar.update()
        else:
            records = []
            for j in jobs:
                records.append(_render_to_file(j))
                if bar:
                    bar.update()
    finally:
        if bar:
            bar.close()
    write_export(out / EXPORT_NAME, (make_task(r["task_id"], r["audio"], p.label) for r, p in zip(records, plans)))
    write_truth(out, {"generator": "housex.dataset_script.synthetic", "seed": seed, "sample_rate": sr, "format": fmt,
                      "duration": [lo, hi]}, records)
    return records


def preview_plan(seed: int, genre: str, duration: float = 60.0) -> TrackPlan:
    """A single-genre plan for ``housex synth --preview`` (index offset keeps it apart from the release)."""
    label = np.zeros(NUM_GENRES)
    label[genre_id(genre)] = 1.0
    return plan_track(seed, 1_000_000 + genre_id(genre), duration=(duration, duration), label=label, fallback_share=0.0)


__all__ = [
    "DEFAULT_GENRE_FREQUENCIES", "EXPORT_NAME", "GENRE_PROFILES", "LABEL_PATTERNS", "PAIR_AFFINITY", "PART_GROUPS",
    "SAMPLE_RATE", "SIGNATURE_GROUPS", "TRUTH_NAME", "TrackPlan", "audio_file_name", "generate_release",
    "genre_frequency_vector", "part_sources", "plan_arrangement", "plan_track", "preview_plan", "read_truth",
    "render_track", "sample_label", "sample_labels", "signature_pairs",
    "track_record", "write_audio",
]
