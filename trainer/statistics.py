"""How sure a number is: a cluster bootstrap over tracks, paired comparisons and Holm's correction.

The clips of a track share one label and one sound (up to 4 clips per drop, several drops), so they
are not independent draws: the unit of resampling is the track.  A resample draws the validation
tracks with replacement, every clip of a drawn track coming along; an interval is the percentile
interval of a figure over the resamples.  Two runs on the same clips are compared on the *same*
resamples (paired): the interval of the difference, and a two-sided p-value
``min(1, 2 * min(P*(d <= 0), P*(d >= 0)))`` with the +1 correction of Davison & Hinkley, the
inversion of the percentile interval (a difference whose interval excludes 0 has p < 1 - level).

Fast because every figure is a function of additive per-track sums: the confusion counts (from
which accuracy and precision / recall / F1, weighted and macro, follow), the sums of per-clip terms
(KL, JS, top-2 hits, ...) and the ECE's per-bin sums.  A resample is then one row of a (resamples
x tracks) matrix of draw counts, and all resamples of all figures are one matrix product per row
of the table: no scikit-learn call per resample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

CONFUSION_FIGURES = ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "precision_macro",
                     "recall_macro", "f1_macro")
LOWER_IS_BETTER = frozenset({"kl_divergence", "js_distance", "ece", "unparsed_rate"})


@dataclass(frozen=True)
class Bootstrap:
    """Settings of every interval: confidence ``level``, number of ``resamples``, ``seed`` (same seed and
    same tracks -> the same resamples, so the same interval)."""

    level: float = 0.95
    resamples: int = 2000
    seed: int = 0

    def __post_init__(self):
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"bootstrap level must lie in (0, 1), got {self.level}")
        if int(self.resamples) != self.resamples or self.resamples < 10:
            raise ValueError(f"bootstrap resamples must be an integer >= 10, got {self.resamples}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"bootstrap seed must be an integer >= 0, got {self.seed}")

    def describe(self) -> dict:
        return {"method": "cluster bootstrap over tracks, percentile interval", "unit": "track",
                "level": self.level, "resamples": int(self.resamples), "seed": int(self.seed)}


@dataclass(frozen=True)
class Terms:
    """Additive per-example terms whose sums give every figure.

    ``values`` (N, K): the one-hot confusion cell (``num_columns``² columns: target x prediction),
    then one column per clip-mean figure in ``means``, then per ECE bin the sums of top-1 hits and of
    top-1 confidence (``n_bins`` x 2 columns).  ``figures``: the names :meth:`figures` returns.
    """

    values: np.ndarray
    num_columns: int
    means: tuple[str, ...]
    n_bins: int
    figure_names: tuple[str, ...]

    def figures(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        """Figures of summed terms ``sums`` (..., K) -> name -> (...) array."""
        c = self.num_columns
        confusion = sums[..., : c * c].reshape(*sums.shape[:-1], c, c)
        n = confusion.sum(axis=(-2, -1))
        out = {}
        if any(f in CONFUSION_FIGURES for f in self.figure_names):
            out.update(confusion_figures(confusion))
        for j, name in enumerate(self.means):
            out[name] = sums[..., c * c + j] / n
        if self.n_bins:
            start = c * c + len(self.means)
            bins = sums[..., start: start + 2 * self.n_bins].reshape(*sums.shape[:-1], self.n_bins, 2)
            out["ece"] = np.abs(bins[..., 0] - bins[..., 1]).sum(axis=-1) / n
        return {name: out[name] for name in self.figure_names}


def make_terms(target_id, predicted_id, num_columns: int, *, means: Mapping[str, np.ndarray] | None = None,
               confidence: np.ndarray | None = None, n_bins: int = 0, bins: np.ndarray | None = None,
               figures: Sequence[str] = CONFUSION_FIGURES) -> Terms:
    """:class:`Terms` of N examples: sharpened target and predicted column ids (N,), clip-mean terms
    (``means``: name -> (N,)) and, for the ECE, the top-1 ``confidence`` and its ``bins`` (N,)."""
    target_id = np.asarray(target_id, dtype=np.int64)
    predicted_id = np.asarray(predicted_id, dtype=np.int64)
    means = dict(means or {})
    n = len(target_id)
    k = num_columns * num_columns + len(means) + 2 * n_bins
    values = np.zeros((n, k))
    values[np.arange(n), target_id * num_columns + predicted_id] = 1.0
    for j, v in enumerate(means.values()):
        values[:, num_columns * num_columns + j] = v
    if n_bins:
        start = num_columns * num_columns + len(means)
        values[np.arange(n), start + 2 * bins] = (target_id == predicted_id)
        values[np.arange(n), start + 2 * bins + 1] = confidence
    return Terms(values, num_columns, tuple(means), n_bins, tuple(figures))


def confusion_figures(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy and precision / recall / F1 (weighted by support, and macro over all columns) of
    confusion counts (..., C, C) (rows = target), with scikit-learn's ``zero_division=0``."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    support = confusion.sum(axis=-1)
    predicted = confusion.sum(axis=-2)
    n = support.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    out = {"accuracy": tp.sum(axis=-1) / n}
    for name, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
        out[f"{name}_weighted"] = (per_class * support).sum(axis=-1) / n
        out[f"{name}_macro"] = per_class.mean(axis=-1)
    return out


class TrackBootstrap:
    """The resamples of one set of tracks: ``weights`` (resamples, tracks), how often each resample
    drew each track (tracks in sorted order, so the same tracks and seed give the same resamples
    whatever the clip order)."""

    def __init__(self, track_ids, settings: Bootstrap = Bootstrap()):
        self.settings = settings
        self.tracks = np.unique(_ids(track_ids))
        t, r = len(self.tracks), int(settings.resamples)
        # r x t draws of a track index -> counts per (resample, track); 10x faster than rng.multinomial
        draws = np.random.default_rng(settings.seed).integers(0, t, size=(r, t))
        draws += np.arange(r)[:, None] * t
        self.weights = np.bincount(draws.ravel(), minlength=r * t).reshape(r, t).astype(np.float64)

    def __len__(self) -> int:
        return len(self.tracks)

    def units(self, track_ids) -> np.ndarray:
        """(N,) index into ``tracks`` of each example's track; every track must be one of ours."""
        track_ids = _ids(track_ids)
        index = np.clip(np.searchsorted(self.tracks, track_ids), 0, len(self.tracks) - 1)
        unknown = self.tracks[index] != track_ids
        if unknown.any():
            raise ValueError(f"track {track_ids[np.argmax(unknown)]!r} is not among the resampled tracks")
        return index

    def track_sums(self, terms: Terms, track_ids) -> np.ndarray:
        """(tracks, K) sums of the terms of each track."""
        from scipy.sparse import csr_matrix

        units = self.units(track_ids)
        n = len(units)
        member = csr_matrix((np.ones(n), (units, np.arange(n))), shape=(len(self.tracks), n))
        return np.asarray(member @ terms.values)

    def samples(self, terms: Terms, track_ids) -> dict[str, np.ndarray]:
        """Every figure on every resample: name -> (resamples,)."""
        return terms.figures(self.weights @ self.track_sums(terms, track_ids))

    def intervals(self, terms: Terms, track_ids) -> dict[str, list[float]]:
        """name -> [low, high], the percentile interval at ``settings.level``."""
        return {k: interval(v, self.settings.level) for k, v in self.samples(terms, track_ids).items()}


def _ids(ids) -> np.ndarray:
    """Track ids as a numpy array that sorts fast (strings as fixed-width unicode, not objects)."""
    arr = np.asarray(ids)
    return arr.astype(str) if arr.dtype == object else arr


def interval(samples: np.ndarray, level: float) -> list[float]:
    """Percentile interval [low, high] of bootstrap ``samples`` at ``level``."""
    alpha = 1.0 - level
    low, high = np.quantile(np.asarray(samples), [alpha / 2, 1 - alpha / 2])
    return [float(low), float(high)]


def paired_p_value(differences: np.ndarray) -> float:
    """Two-sided paired-bootstrap p-value of ``differences`` (resampled figure of B minus figure of A):
    ``min(1, 2 * min((1 + #{d <= 0}) / (R + 1), (1 + #{d >= 0}) / (R + 1)))``.  Identical runs
    (every difference 0) give 1."""
    d = np.asarray(differences)
    r = d.shape[-1]
    below = (1 + (d <= 0).sum(axis=-1)) / (r + 1)
    above = (1 + (d >= 0).sum(axis=-1)) / (r + 1)
    return np.minimum(1.0, 2 * np.minimum(below, above))


def pairwise_p_values(samples: Sequence[np.ndarray]) -> np.ndarray:
    """(R, R) paired p-values of every pair of rows' resampled figures (:func:`paired_p_value`; 1 on the diagonal)."""
    s = np.stack(samples)
    return paired_p_value(s[None, :, :] - s[:, None, :])


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error over the given tests)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def best_and_ties(points: Sequence[float | None], samples: Sequence[np.ndarray | None], *, lower_is_better: bool,
                  level: float) -> tuple[int | None, list[bool], list[float | None]]:
    """Among rows with a value: the best row, and for every row whether it is *not* significantly worse
    than the best (Holm-adjusted paired p >= 1 - level over the rows compared with it; the best
    itself counts), and its adjusted p-value against the best (None for the best and empty rows)."""
    present = [i for i, v in enumerate(points) if v is not None]
    if not present:
        return None, [False] * len(points), [None] * len(points)
    sign = -1.0 if lower_is_better else 1.0
    best = max(present, key=lambda i: (sign * points[i], -i))
    others = [i for i in present if i != best]
    raw = [float(paired_p_value(samples[i] - samples[best])) for i in others]
    adjusted = holm(raw)
    p_out: list[float | None] = [None] * len(points)
    tied = [False] * len(points)
    tied[best] = True
    for i, p in zip(others, adjusted):
        p_out[i] = float(p)
        tied[i] = bool(p >= 1.0 - level)
    return best, tied, p_out


def level_text(level: float) -> str:
    """0.95 -> ``95%``."""
    return f"{level * 100:g}%"


def format_figure(value: float | None, bounds=None, digits: int = 3) -> str:
    """``0.756 [0.731, 0.780]`` (or ``0.756`` without bounds; ``—`` without a value)."""
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    return text if bounds is None else f"{text} [{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"
