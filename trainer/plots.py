"""The confusion-matrix figure of an evaluation, and the matplotlib helpers every PNG figure uses.

Here, below the CLI, so that training (``metrics.json`` -> ``confusion_matrix.png``) and
``housex plot confusion`` draw the same figure; ``housex.plots`` re-exports it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from housex.dataset_script.genres import GENRES


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG (parent folders created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    return path


def plot_confusion(
    matrix,
    path: str | os.PathLike,
    *,
    labels: Sequence[str] = GENRES,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Path:
    """Confusion matrix (rows: true class, columns: predicted), row-normalised by default; counts annotated."""
    plt = pyplot()
    cm = np.asarray(matrix, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(labels):
        raise ValueError(f"confusion matrix must be {len(labels)}x{len(labels)}, got shape {cm.shape}")
    rows = cm.sum(1, keepdims=True)
    shown = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalize else cm
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class" if normalize else "count")
    n = len(labels)
    ax.set_xticks(range(n), labels, rotation=40, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted genre")
    ax.set_ylabel("true genre")
    ax.set_title(title)
    threshold = shown.max() / 2 if shown.size else 0
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                text = f"{shown[i, j]:.2f}\n({int(cm[i, j])})" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > threshold else "black")
    return save_figure(fig, path)
