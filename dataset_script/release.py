"""The HouseX-v2 release folder: its file-name conventions and the reading and writing of its files.

A release folder holds the audio, one Label-Studio export (a JSON file whose name contains
``partition``), optionally one drop file (name contains ``detect``) and, when the synthetic generator
wrote it, the generator's truth file :data:`TRUTH_NAME`.  The Label-Studio *task* format inside the
export is :mod:`.labelstudio`'s.

Drop files are lists of ``{"audio_path": ..., "drop_sections": [[start_s, end_s], ...]}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .labelstudio import CSV_EXPORT_SUFFIXES, AnnotatedTrack, AnnotationError, parse_task, read_csv_export, safe_audio_name
from .safe_write import atomic_write_text

#: An export's file name contains this (``partition-1-5.json``, ``project-partition-1.json``).
EXPORT_PATTERN = "partition"
#: A drop file's name contains this (``detected_drops.json``).
DROP_PATTERN = "detect"
#: The export the synthetic generator writes.
EXPORT_NAME = "synthetic-partition.json"
#: The generator's own truth per track; its presence marks a synthetic release.  Its name contains
#: neither pattern: it is neither an export nor a drop file.
TRUTH_NAME = "generator-truth.json"


def _load_json(path: Path, kind: str):
    if path.suffix.lower() in CSV_EXPORT_SUFFIXES:  # Label Studio's CSV export, read into the JSON shape
        return read_csv_export(path)
    try:
        # utf-8-sig: exports saved by Windows editors start with a byte-order mark.
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except FileNotFoundError:
        raise AnnotationError(f"{path}: {kind} file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: not valid JSON ({e})") from None


def _write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1))


def find_release_files(folder: str | os.PathLike) -> tuple[Path, Path | None]:
    """The export (name contains ``partition`` or, failing that, the only other JSON) and the
    optional drop file (name contains ``detect``) of one release folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"{folder}: release folder not found")
    jsons = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".json", *CSV_EXPORT_SUFFIXES) and p.is_file())
    drops = [p for p in jsons if DROP_PATTERN in p.name.lower() and p.suffix.lower() == ".json"]
    exports = [p for p in jsons if EXPORT_PATTERN in p.name.lower()]
    if not exports:
        exports = [p for p in jsons if p not in drops]
    if len(exports) != 1:
        found = ", ".join(p.name for p in exports) or "none"
        raise AnnotationError(
            f"{folder}: expected exactly one Label-Studio export (*{EXPORT_PATTERN}*.json or .csv), found {found}"
        )
    if len(drops) > 1:
        raise AnnotationError(f"{folder}: several drop files: {', '.join(p.name for p in drops)}")
    return exports[0], (drops[0] if drops else None)


def is_synthetic_release(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds the generator's :data:`TRUTH_NAME` (the generator wrote it)."""
    return Path(folder, TRUTH_NAME).is_file()


def read_tasks(path: str | os.PathLike) -> list:
    """The raw tasks of a Label-Studio export (JSON list, or the CSV export read into that shape)."""
    path = Path(path)
    tasks = _load_json(path, "export")
    if not isinstance(tasks, list):
        raise AnnotationError(f"{path}: expected a JSON list of Label-Studio tasks, got {type(tasks).__name__}")
    return tasks


def parse_export(path: str | os.PathLike) -> list[AnnotatedTrack]:
    """All tasks of a Label-Studio JSON export (a list of tasks)."""
    path = Path(path)
    return [parse_task(t, export_file=path.name) for t in read_tasks(path)]


def write_export(path: str | os.PathLike, tasks: Iterable[dict]) -> None:
    _write_json(path, list(tasks))


def read_drop_file(path: str | os.PathLike) -> dict[str, list[tuple[float, float]]]:
    """Upstream ``detected_drops.json`` → ``{audio basename: [(start_s, end_s), ...]}``."""
    path = Path(path)
    entries = _load_json(path, "drop")
    if not isinstance(entries, list):
        raise AnnotationError(f"{path}: expected a JSON list of {{audio_path, drop_sections}}")
    out: dict[str, list[tuple[float, float]]] = {}
    for i, e in enumerate(entries):
        where = f"{path.name} entry {i}"
        try:
            name = safe_audio_name(e["audio_path"], where=where)
            sections = [(float(a), float(b)) for a, b in e["drop_sections"]]
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(f"{where}: expected audio_path and drop_sections [[start, end], ...]") from None
        for a, b in sections:
            if not (np.isfinite(a) and np.isfinite(b) and 0 <= a < b):
                raise AnnotationError(f"{where}: bad drop section [{a}, {b}] for {name}")
        out[name] = sections
    return out


def write_drop_file(path: str | os.PathLike, drops: dict[str, Sequence[tuple[float, float]]], prefix: str = "") -> None:
    _write_json(path, [
        {"audio_path": prefix + name, "drop_sections": [[float(a), float(b)] for a, b in secs]}
        for name, secs in drops.items()
    ])


def write_truth(folder: str | os.PathLike, header: dict, tracks: list[dict]) -> None:
    """Write ``folder/generator-truth.json``: the generator's ``header`` fields plus its per-track records."""
    _write_json(Path(folder) / TRUTH_NAME, {**header, "tracks": tracks})


def _read_truth_file(folder: str | os.PathLike) -> dict:
    path = Path(folder) / TRUTH_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {TRUTH_NAME} (not a synthetic release folder?)")
    truth = _load_json(path, "generator-truth")
    if not isinstance(truth, dict) or not isinstance(truth.get("tracks"), list):
        raise AnnotationError(f"{path}: not a generator-truth file (expected an object with a 'tracks' list)")
    return truth


def read_truth(folder: str | os.PathLike) -> list[dict]:
    """The per-track records of a release folder's ``generator-truth.json``."""
    return _read_truth_file(folder)["tracks"]


def read_truth_header(folder: str | os.PathLike) -> dict:
    """How the generator made a release folder: the header of its ``generator-truth.json`` (seed,
    sample rate, format, durations, SoundFont...) and ``n_tracks``, the number of tracks it wrote."""
    truth = _read_truth_file(folder)
    return {**{k: v for k, v in truth.items() if k != "tracks"}, "n_tracks": len(truth["tracks"])}
