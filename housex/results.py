"""Genre distributions as results and text: the top genres of a distribution, times as ``m:ss.s``.

Shared by the track, DJ-set, cue and Label Studio outputs; torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_genres(probs: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable ``(label, probability)`` pairs, most probable first (ties in label order)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [(labels[i], float(probs[i])) for i in order]


class GenreDistribution:
    """``genre`` and ``top(k)`` of a result holding ``probabilities`` (num_labels,) and ``labels``."""

    probabilities: np.ndarray
    labels: Sequence[str]

    @property
    def genre(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return top_genres(self.probabilities, self.labels, k)


def format_genres(pairs) -> str:
    """``[(genre, weight), ...]`` → ``"Tech House 0.75, Deep House 0.25"``."""
    return ", ".join(f"{g} {p:.2f}" for g, p in pairs)


def mmss(seconds: float) -> str:
    """Seconds as ``m:ss.s`` (negative clamps to 0)."""
    m, s = divmod(max(0.0, seconds), 60)
    return f"{int(m)}:{s:04.1f}"
