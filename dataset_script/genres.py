"""The eight HouseX-v2 sub-genres, their aliases, and the label modes of the paper.

Class ids follow the canonical order of the paper (index = class id).  A track's label is a
weight per genre; ``soft`` keeps the renormalised distribution, ``sharpen`` turns it into the
one-hot of its maximum (a tie goes to the LAST tied genre in canonical order, as the authors'
code does), and ``clean`` keeps only tracks that have one genre at weight exactly 1.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

GENRES: tuple[str, ...] = (
    "Progressive House",
    "Future House",
    "Bass House",
    "Tech House",
    "Deep House",
    "Bigroom",
    "Future Rave",
    "Slap House",
)
NUM_GENRES = len(GENRES)
ID2LABEL: dict[int, str] = dict(enumerate(GENRES))
LABEL2ID: dict[str, int] = {name: i for i, name in ID2LABEL.items()}
LABEL_MODES = ("soft", "sharpen", "clean")

# Short descriptions from the paper's Table 1, used by the dataset and model cards.
GENRE_DESCRIPTIONS: dict[str, str] = {
    "Progressive House": "euphoric supersaw/piano melody, chords, strong side-chain groove, organic timbres",
    "Future House": "bouncy, chopped, square-ish lead, fragmented rhythm, moderate distortion",
    "Bass House": "no real melody: growls and stabs after the kick, heavy distortion",
    "Tech House": "minimal and percussive, hi-hat-heavy, no lead, slightly slower",
    "Deep House": "reverb-heavy and smooth, Reese bass, slower (118-122 BPM)",
    "Bigroom": "huge pitched kick that doubles as bass, horn-like lead, very loud",
    "Future Rave": "wave-like bass, buzzing electronic lead, heavily side-chained",
    "Slap House": "bouncy slapped bass carrying the mids, often vocal-pop",
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_ALIASES: dict[str, int] = {_key(g): i for i, g in enumerate(GENRES)}
_ALIASES.update(
    {
        _key("Techno"): LABEL2ID["Tech House"],  # the authors' Label-Studio project calls it Techno
        _key("Tech"): LABEL2ID["Tech House"],
        _key("Big Room"): LABEL2ID["Bigroom"],
        _key("Big Room House"): LABEL2ID["Bigroom"],
        _key("Progressive"): LABEL2ID["Progressive House"],
        _key("Deep"): LABEL2ID["Deep House"],
        _key("Slap"): LABEL2ID["Slap House"],
        _key("Future Bounce"): LABEL2ID["Future House"],  # names the MLLM prompt of the authors used
        _key("Brazilian Bass"): LABEL2ID["Slap House"],
    }
)


class LabelError(ValueError):
    """A label that cannot be used: unknown genre, negative/NaN/all-zero weights."""


def genre_id(name: str, *, where: str = "") -> int:
    """Class id of a genre name; case, spaces, dashes and known aliases are accepted.

    >>> genre_id("Techno"), genre_id("big room"), genre_id("FUTURE-HOUSE")
    (3, 5, 1)
    """
    try:
        return _ALIASES[_key(str(name))]
    except KeyError:
        prefix = f"{where}: " if where else ""
        raise LabelError(
            f"{prefix}unknown genre name {name!r}; expected one of {', '.join(GENRES)} (or 'Techno')"
        ) from None


def weights_to_vector(
    weights: Mapping[str, float] | Iterable[tuple[str, float]], *, where: str = ""
) -> np.ndarray:
    """Map ``{genre name: weight}`` (or ``(name, weight)`` pairs) to a length-8 vector in canonical
    order (not normalised).

    Several names that map to one genre add up; an unknown name with weight 0 is ignored.
    Raises :class:`LabelError` naming ``where`` for unknown names with a weight, and for
    non-numeric (booleans and strings included), NaN, infinite, negative or overflowing weights.
    """
    vec = np.zeros(NUM_GENRES, dtype=np.float64)
    prefix = f"{where}: " if where else ""
    pairs = weights.items() if isinstance(weights, Mapping) else weights
    for name, w in pairs:
        gid = _ALIASES.get(_key(str(name)))
        w = _weight_value(name, w, prefix)
        if w == 0 and gid is None:
            continue  # an unknown name with weight 0 says nothing about the label
        if gid is None:
            genre_id(name, where=where)  # raises: unknown genre with a non-zero weight
        vec[gid] = vec[gid] + w if math.isfinite(vec[gid] + w) else math.inf
    if not np.all(np.isfinite(vec)):
        raise LabelError(f"{prefix}genre weights overflow: {vec.tolist()}")
    return vec


def _weight_value(name: str, w, prefix: str) -> float:
    """One weight as a float: JSON numbers only (``true`` and ``"0.5"`` are not weights)."""
    if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)):
        kind = "a boolean" if isinstance(w, bool) else f"a {type(w).__name__}"
        raise LabelError(f"{prefix}weight of {name!r} is {kind} ({w!r}), expected a number")
    w = float(w)
    if math.isnan(w) or math.isinf(w):
        raise LabelError(f"{prefix}weight of {name!r} is {w}")
    if w < 0:
        raise LabelError(f"{prefix}weight of {name!r} is negative ({w})")
    return w


def normalize(vec: Sequence[float] | np.ndarray, *, where: str = "", atol: float = 1e-6) -> np.ndarray:
    """Renormalise a weight vector to sum 1 (warning when it did not); reject all-zero/NaN/negative."""
    v = np.asarray(vec, dtype=np.float64)
    prefix = f"{where}: " if where else ""
    if v.shape != (NUM_GENRES,):
        raise LabelError(f"{prefix}expected {NUM_GENRES} genre weights, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise LabelError(f"{prefix}genre weights contain NaN or infinity: {v.tolist()}")
    if np.any(v < 0):
        raise LabelError(f"{prefix}genre weights contain a negative value: {v.tolist()}")
    try:
        total = math.fsum(v.tolist())
    except OverflowError:
        total = math.inf
    if not math.isfinite(total):
        raise LabelError(f"{prefix}genre weights sum to {total} (overflow): {v.tolist()}")
    if total <= 0:
        raise LabelError(f"{prefix}all genre weights are zero")
    if abs(total - 1.0) > atol:
        warnings.warn(f"{prefix}genre weights sum to {total:g}, renormalised to 1", stacklevel=2)
    out = v / total
    # Tiny sums (subnormal weights) can underflow on division: only a distribution is a label.
    if not (np.all(np.isfinite(out)) and abs(out.sum() - 1.0) <= 1e-6):
        raise LabelError(f"{prefix}genre weights {v.tolist()} do not normalise to a distribution")
    return out


def sharpen(probs: Sequence[float] | np.ndarray) -> np.ndarray:
    """One-hot of the maximum along the last axis; a tie goes to the LAST tied genre.

    Works on (8,) or (N, 8) arrays.  Ties are judged with a small tolerance so that 0.5/0.5
    computed in floating point still counts as a tie.
    """
    p = np.asarray(probs, dtype=np.float64)
    return np.eye(p.shape[-1])[sharpen_ids(p)]


def sharpen_ids(probs: Sequence[float] | np.ndarray, tol: float = 1e-9) -> np.ndarray | int:
    """Class id of the maximum along the last axis, ties → last tied index (paper's convention)."""
    p = np.asarray(probs, dtype=np.float64)
    is_max = p >= p.max(axis=-1, keepdims=True) - tol
    last = p.shape[-1] - 1 - np.argmax(is_max[..., ::-1], axis=-1)
    return int(last) if np.ndim(last) == 0 else last


def is_clean(probs: Sequence[float] | np.ndarray, tol: float = 1e-9) -> bool:
    """True when a single genre has weight (exactly, up to float noise) 1."""
    return bool(np.max(np.asarray(probs, dtype=np.float64)) >= 1.0 - tol)


def apply_label_mode(probs: Sequence[float] | np.ndarray, mode: str) -> np.ndarray | None:
    """Label of one track under a label mode; ``None`` means the track is dropped (``clean``)."""
    p = np.asarray(probs, dtype=np.float64)
    if mode == "soft":
        return p
    if mode == "sharpen":
        return sharpen(p)
    if mode == "clean":
        return sharpen(p) if is_clean(p) else None
    raise ValueError(f"unknown label mode {mode!r}; expected one of {', '.join(LABEL_MODES)}")


def soft_label_pattern(probs: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    """The sorted non-zero weights of a label, rounded, e.g. ``(0.75, 0.25)``; for statistics."""
    p = np.asarray(probs, dtype=np.float64)
    return tuple(sorted((round(float(x), 4) for x in p if x > 1e-9), reverse=True))
