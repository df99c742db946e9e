"""Which tracks a build reads, and the train/validation split, drawn before any audio is decoded.

:func:`plan_tracks` reads each release folder's export (+ drop file) and keeps the annotated
tracks whose audio file exists (bad tasks, missing audio, duplicates and label-mode filtering are
skips in the :class:`~.build_report.BuildSummary`); :func:`split_tracks` splits them by TRACK
(seeded shuffle, optionally stratified by primary genre), so a track's clips never cross splits;
:func:`assign_folds` gives every track a cross-validation fold (stratified K-fold by track).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import is_audio_file_name
from .build_report import NOTE_UNLISTED, BuildSummary, SkipReason
from .genres import LABEL_MODES, LabelError, apply_label_mode, sharpen_ids
from .labelstudio import AnnotationError, parse_task, resolve_in_folder
from .release import find_release_files, read_drop_file, read_tasks


def split_data_dirs(data_dir: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """One or several release folders: a list, or a string separated by commas or ``os.pathsep``."""
    if isinstance(data_dir, (str, os.PathLike)):
        text = os.fspath(data_dir)
        parts = [p for chunk in text.split(",") for p in chunk.split(os.pathsep)]
    else:
        parts = [os.fspath(p) for p in data_dir]
    folders = [Path(p.strip()) for p in parts if p and p.strip()]
    if not folders:
        raise ValueError("data_dir: no release folder given")
    return folders


def release_fingerprint(data_dirs: Iterable[Path]) -> str:
    """Hash of the release folders' file names, sizes and mtimes (cheap: no file is read)."""
    h = hashlib.sha256()
    for folder in data_dirs:
        folder = Path(folder)
        h.update(str(folder.resolve()).encode())
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.is_file():
                    st = p.stat()
                    h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


@dataclass
class TrackEntry:
    """One annotated track whose audio file exists: where it is and its (mode-applied) label."""

    source: str
    track_id: str
    task_id: str
    audio_path: Path
    soft_label: np.ndarray  # (8,) float64, sums to 1
    file_sections: list[tuple[float, float]] | None = None  # from the folder's drop file

    @property
    def label(self) -> int:
        return int(sharpen_ids(self.soft_label))


def plan_tracks(
    data_dirs: Sequence[Path], *, label_mode: str = "soft", use_drop_file: bool = True, summary: BuildSummary
) -> list[TrackEntry]:
    """Read every folder's export (+ drop file); keep tracks with usable labels and existing audio.

    Bad tasks, missing audio, duplicate track names (across or within folders: the first one
    read wins) and tracks dropped by the label mode are recorded in ``summary``.
    """
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode: unknown mode {label_mode!r}; expected one of {', '.join(LABEL_MODES)}")
    entries: list[TrackEntry] = []
    seen: dict[str, str] = {}
    sources = [d.resolve().name or str(d) for d in data_dirs]
    if len(set(sources)) != len(sources):
        raise ValueError(f"data_dir: two release folders share a name: {', '.join(map(str, data_dirs))}")
    for folder, source in zip(data_dirs, sources):
        export_path, drop_path = find_release_files(folder)
        tasks = read_tasks(export_path)
        drops = read_drop_file(drop_path) if (drop_path is not None and use_drop_file) else {}
        listed: set[Path] = set()
        for index, task in enumerate(tasks):
            summary.tracks_read += 1
            try:
                track = parse_task(task, export_file=export_path.name)
            except (AnnotationError, LabelError) as e:
                summary.skip(source, f"task #{index}", SkipReason.BAD_ANNOTATION, str(e))
                continue
            track_id = Path(track.audio_name).stem
            try:
                audio_path = resolve_in_folder(folder, track.audio_name, where=f"{export_path} task {track.task_id}")
            except AnnotationError as e:
                summary.skip(source, track.audio_name, SkipReason.UNSAFE_PATH, str(e))
                continue
            listed.add(audio_path.resolve())
            if not audio_path.is_file():
                summary.skip(source, track.audio_name, SkipReason.MISSING_AUDIO,
                             f"{audio_path} not found (task {track.task_id})")
                continue
            if track_id in seen:
                summary.skip(source, track.audio_name, SkipReason.DUPLICATE, f"already read from {seen[track_id]}")
                continue
            label = apply_label_mode(track.label, label_mode)
            if label is None:
                summary.skip(source, track.audio_name, SkipReason.NOT_CLEAN, "not a single-genre label")
                continue
            seen[track_id] = source
            entries.append(
                TrackEntry(source, track_id, track.task_id, audio_path, np.asarray(label, dtype=np.float64),
                           drops.get(track.audio_name))
            )
        for path in sorted(folder.iterdir()):
            if is_audio_file_name(path) and path.is_file() and path.resolve() not in listed:
                summary.note(NOTE_UNLISTED, f"{source}/{path.name}")
    return entries


def split_tracks(
    entries: Sequence[TrackEntry], *, validation_fraction: float = 0.2, seed: int = 42, stratify: bool = False
) -> dict[str, list[TrackEntry]]:
    """Seeded train/validation split by track; ``stratify`` keeps primary-genre proportions (sklearn).

    Stratification falls back to a plain shuffle when a genre has fewer than 2 tracks or the
    validation set is smaller than the number of genres (sklearn cannot stratify then).
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    ordered = sorted(entries, key=lambda e: (e.source, e.track_id))
    n_val = int(round(len(ordered) * validation_fraction))
    if n_val == 0 or len(ordered) < 2:
        return {"train": ordered, "validation": []}
    n_val = min(n_val, len(ordered) - 1)
    labels = [e.label for e in ordered]
    counts = Counter(labels)
    if stratify and min(counts.values()) >= 2 and len(counts) <= n_val <= len(ordered) - len(counts):
        from sklearn.model_selection import train_test_split

        train_idx, val_idx = train_test_split(
            np.arange(len(ordered)), test_size=n_val, random_state=seed, stratify=labels
        )
    else:
        perm = np.random.default_rng(seed).permutation(len(ordered))
        train_idx, val_idx = perm[n_val:], perm[:n_val]
    return {"train": [ordered[i] for i in sorted(train_idx)], "validation": [ordered[i] for i in sorted(val_idx)]}


def assign_folds(entries: Sequence[TrackEntry], folds: int, *, seed: int = 42) -> dict[tuple[str, str], int]:
    """``(source, track_id) -> fold`` in ``0..folds-1``: a stratified group K-fold with the track as the
    group (every clip of a track in its track's fold), stratified on the sharpened track label, seeded
    (sklearn's ``StratifiedKFold`` over the tracks, shuffled with ``seed``)."""
    from sklearn.model_selection import StratifiedKFold

    if int(folds) != folds or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds}")
    ordered = sorted(entries, key=lambda e: (e.source, e.track_id))
    if len(ordered) < folds:
        raise ValueError(f"folds={folds}: only {len(ordered)} usable tracks; every fold needs one")
    labels = [e.label for e in ordered]
    most = max(Counter(labels).values())
    if most < folds:  # sklearn's StratifiedKFold needs one genre with a track in every fold
        raise ValueError(f"folds={folds}: no genre has {folds} usable tracks (at most {most}); "
                         f"stratified folds need at least one that does: use --folds {max(2, most)} or more tracks")
    splitter = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    out: dict[tuple[str, str], int] = {}
    with warnings.catch_warnings():
        # a genre with fewer tracks than folds cannot be in every fold; the folds stay valid
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for fold, (_, members) in enumerate(splitter.split(np.zeros((len(ordered), 1)), labels)):
            for i in members:
                out[(ordered[i].source, ordered[i].track_id)] = fold
    return out


# 16-bit FLAC of mixed music takes 1.2-1.8 bytes a sample; 1 keeps the estimate low, so a build
# that fits is never refused up front (one that does not fit still stops with the same error).
CLIP_BYTES_PER_SAMPLE = 1.0


def estimate_output_bytes(entries: Sequence[TrackEntry], configs: Sequence[str], *, clips_per_section: int,
                          clip_seconds: float) -> dict[str, int]:
    """A low estimate of the Parquet bytes of each config: ``tracks`` holds the audio files as
    they are (exact), ``clips`` ``clips_per_section`` mono FLAC clips per drop section (the drop
    file's count, else one section; the rate from the file's header, no decoding)."""
    import soundfile as sf

    sizes = {}
    if "tracks" in configs:
        sizes["tracks"] = sum(e.audio_path.stat().st_size for e in entries)
    if "clips" in configs:
        total = 0.0
        for e in entries:
            try:
                rate = sf.info(str(e.audio_path)).samplerate
            except Exception:  # noqa: BLE001  a file soundfile cannot read: FFmpeg will, at the usual rate
                rate = 44_100
            sections = len(e.file_sections) if e.file_sections else 1
            total += sections * clips_per_section * clip_seconds * rate * CLIP_BYTES_PER_SAMPLE
        sizes["clips"] = int(total)
    return sizes


def peak_bytes(sizes: dict[str, int], order: Sequence[str]) -> int:
    """Most disk a build in ``order`` holds at once: the Parquet shards of the configs written so
    far, plus the config being written twice (its Arrow cache and its shards)."""
    done = peak = 0
    for name in order:
        peak = max(peak, done + 2 * sizes[name])
        done += sizes[name]
    return peak
