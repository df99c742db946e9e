"""Soft labels with the real export's statistics: pattern shares, primary-genre frequencies and
genre-pair affinities; and the per-(seed, track, purpose) random streams of the generator."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from ..genres import GENRES, NUM_GENRES, genre_id
from ..labelstudio import LABEL_PATTERNS  # the shares of the real export


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
    return np.stack([sample_label(track_rng(seed, i, "label"), freqs) for i in range(n)]) if n else np.zeros((0, NUM_GENRES))


def track_rng(seed: int, index: int, stream: str) -> np.random.Generator:
    """Independent generator per (seed, track, purpose): parallel workers give identical bytes."""
    tag = int.from_bytes(hashlib.sha256(stream.encode()).digest()[:4], "little")
    return np.random.default_rng([int(seed), int(index), tag])
