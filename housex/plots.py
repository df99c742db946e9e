"""PNG figures: DJ-set timeline, confusion matrix, embedding scatter, per-genre spectrograms.

All figures use matplotlib's Agg backend (no display needed) and one fixed colour per genre, so a
genre looks the same in every plot.  Each function writes one PNG and returns its path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .dataset_script.genres import GENRES
from .trainer.plots import plot_confusion  # noqa: F401  (drawn by training too; re-exported here)
from .trainer.plots import pyplot as _pyplot
from .trainer.plots import save_figure as _save


def genre_colors(labels: Sequence[str] = GENRES) -> dict[str, tuple]:
    """One colour per class name (tab10 in id order), shared by every figure."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(labels)}


def plot_timeline(tl, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Stacked smoothed genre probabilities over time, with the segments as a labelled band.

    ``tl``: a ``housex.djset.Timeline`` (uses ``times``, ``smoothed``, ``segments``, ``labels``).
    """
    plt = _pyplot()
    colors = genre_colors(tl.labels)
    minutes = tl.duration > 180
    scale, unit = (60.0, "min") if minutes else (1.0, "s")
    t = np.asarray(tl.times) / scale
    fig, (ax_band, ax) = plt.subplots(
        2, 1, figsize=(12, 4.8), sharex=True, gridspec_kw={"height_ratios": [1, 5], "hspace": 0.05}
    )
    # Window values are drawn at window centres; hold the first/last ones out to the file's edges.
    ys = np.asarray(tl.smoothed).T
    t = np.concatenate([[0.0], t, [tl.duration / scale]])
    ys = np.concatenate([ys[:, :1], ys, ys[:, -1:]], axis=1)
    ax.stackplot(t, ys, colors=[colors[g] for g in tl.labels], labels=list(tl.labels), linewidth=0)
    ax.set_ylim(0, 1)
    ax.set_xlim(0, tl.duration / scale)
    ax.set_ylabel("genre probability (smoothed)")
    ax.set_xlabel(f"time ({unit})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    for seg in tl.segments:
        a, b = seg.start / scale, seg.end / scale
        ax_band.axvspan(a, b, color=colors[seg.genre], alpha=0.9)
        ax_band.axvline(a, color="white", linewidth=1.5)
        ax_band.text((a + b) / 2, 0.5, seg.genre if (b - a) * scale >= 0.06 * tl.duration else "",
                     ha="center", va="center", fontsize=9, color="white", fontweight="bold", clip_on=True)
    ax_band.set_yticks([])
    ax_band.set_ylabel("segments", rotation=0, ha="right", va="center")
    ax_band.set_title(title or f"Genre timeline: {Path(tl.source).name}", fontsize=11)
    return _save(fig, path)


def embed_2d(embeddings: np.ndarray, method: str, *, seed: int = 0) -> np.ndarray:
    """(N, D) embeddings → (N, 2) with ``pca``, ``tsne`` (sklearn) or ``umap`` (umap-learn)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"need at least 3 embeddings of shape (N, D), got shape {x.shape}")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (len(x) - 1) / 3))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    if method == "umap":
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
    raise ValueError(f"unknown embedding method {method!r}; expected pca, tsne or umap")


def available_embedding_methods() -> list[str]:
    """``pca`` and ``tsne`` always; ``umap`` when umap-learn is installed."""
    import importlib.util

    return ["pca", "tsne"] + (["umap"] if importlib.util.find_spec("umap") else [])


def plot_embeddings(
    embeddings: np.ndarray,
    genre_ids: Sequence[int],
    path: str | os.PathLike,
    *,
    labels: Sequence[str] = GENRES,
    methods: Sequence[str] | None = None,
    seed: int = 0,
    title: str = "Pooled clip embeddings by primary genre",
) -> Path:
    """One scatter panel per 2-D projection of (N, D) ``embeddings``, coloured by ``genre_ids`` (N,)."""
    plt = _pyplot()
    ids = np.asarray(genre_ids)
    if len(ids) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings but {len(ids)} genre ids")
    methods = list(methods or available_embedding_methods())
    colors = genre_colors(labels)
    fig, axes = plt.subplots(1, len(methods), figsize=(5.2 * len(methods), 5), squeeze=False)
    names = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
    for ax, method in zip(axes[0], methods):
        xy = embed_2d(embeddings, method, seed=seed)
        for k, name in enumerate(labels):
            mask = ids == k
            if mask.any():
                ax.scatter(xy[mask, 0], xy[mask, 1], s=12, alpha=0.8, color=colors[name], label=f"{name} ({mask.sum()})")
        ax.set_title(names.get(method, method))
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False, markerscale=1.5)
    fig.suptitle(title)
    return _save(fig, path)


def plot_spectrogram_grid(
    panels: Sequence[tuple[str, str, np.ndarray | None]],
    path: str | os.PathLike,
    *,
    sampling_rate: int,
    hop_length: int,
    title: str = "Mel spectrograms of one drop clip per genre",
) -> Path:
    """Grid of mel spectrograms in dB: ``panels`` = (genre, caption, (n_mels, T) dB array or None)."""
    plt = _pyplot()
    import librosa.display

    n = len(panels)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False, layout="constrained")
    colors = genre_colors()
    im = None
    for k, (ax, (genre, caption, mel_db)) in enumerate(zip(axes.flat, panels)):
        if mel_db is None:
            ax.text(0.5, 0.5, "no track of this genre", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            im = librosa.display.specshow(mel_db, sr=sampling_rate, hop_length=hop_length, x_axis="time",
                                          y_axis="mel", ax=ax, vmin=-80, vmax=0, cmap="magma")
            ax.set_xlabel("time (s)" if k // cols == rows - 1 else "")
            ax.set_ylabel("Hz" if k % cols == 0 else "")
        ax.set_title(f"{genre}\n{caption}", fontsize=9, color=colors.get(genre, "black"))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes, format="%+.0f dB", fraction=0.02, pad=0.01, label="power (dB re. clip max)")
    fig.suptitle(title)
    return _save(fig, path)


def spectrogram_previews(
    release_dir: str | os.PathLike,
    path: str | os.PathLike,
    *,
    clip_seconds: float = 7.5,
    n_mels: int = 128,
    n_fft: int = 2048,
    hop_length: int = 512,
) -> Path:
    """Mel spectrogram of one drop clip per genre, from a release folder (audio + export).

    Per genre, the first track whose primary genre it is (export order, the tracks the dataset
    builder reads; tracks shorter than one clip are passed over); the clip starts at its first
    drop (the folder's drop file, else ``detect_drops``), as :func:`analyse_track` finds them.
    Deterministic: no random choice.  Genres without a track get an empty panel.
    """
    import librosa

    from .dataset_script.build_plan import plan_tracks
    from .dataset_script.build_report import BuildSummary
    from .dataset_script.clips import TrackTooShort, analyse_track, cut_clip

    entries = plan_tracks([Path(release_dir)], summary=BuildSummary())

    def first_track(gid: int):
        for entry in (e for e in entries if e.label == gid):
            try:
                return entry, analyse_track(entry.audio_path, file_sections=entry.file_sections,
                                            clip_seconds=clip_seconds, placement="section_start")
            except TrackTooShort:
                continue
        return None, None

    panels, sr_shown = [], None
    for gid, genre in enumerate(GENRES):
        entry, track = first_track(gid)
        if track is None:
            panels.append((genre, "", None))
            continue
        sr = track.drops.sample_rate
        start = track.clips[0].start if track.clips else 0.0
        clip = cut_clip(track.mono, sr, start, clip_seconds)
        mel = librosa.feature.melspectrogram(y=clip, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
        mel_db = librosa.power_to_db(mel, ref=np.max)
        panels.append((genre, f"{entry.audio_path.name} @ {start:.0f} s", mel_db))
        sr_shown = sr_shown or sr
    return plot_spectrogram_grid(panels, path, sampling_rate=sr_shown or 44100, hop_length=hop_length)
