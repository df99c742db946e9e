"""The Label-Studio task format of the HouseX-v2 exports (the release folder's files: :mod:`.release`).

An export is a JSON list of tasks.  ``task["data"]["audio"]`` is an upload path whose basename is
the audio file name; ``task["annotations"][0]["result"]`` holds one
``{"from_name": <genre>, "value": {"number": w}}`` per genre.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from .genres import GENRES, LabelError, normalize, weights_to_vector


#: Field (``from_name``) of each genre in the real export, canonical order: the authors' project calls
#: Tech House "Techno".
EXPORT_NAMES: tuple[str, ...] = tuple("Techno" if g == "Tech House" else g for g in GENRES)

#: The weight patterns annotators use, with their share in the real export partition-1-5 (355 tracks:
#: 246/66/29/14); the 100-track export project-4-100-clean uses the same four.
LABEL_PATTERNS: dict[tuple[float, ...], float] = {
    (1.0,): 0.69,
    (0.75, 0.25): 0.19,
    (0.5, 0.5): 0.08,
    (0.5, 0.25, 0.25): 0.04,
}


class AnnotationError(ValueError):
    """An export or drop file that cannot be read, or an entry in it that cannot be used."""


@dataclass
class AnnotatedTrack:
    """One annotated task of an export: which audio file, and its normalised genre weights (8,)."""

    task_id: str
    audio_name: str
    label: np.ndarray
    export_file: str = ""
    extra: dict = field(default_factory=dict)


def safe_audio_name(upload_path: str, *, where: str = "") -> str:
    """Basename of an upload path, refusing anything that could escape the data folder.

    Label-Studio stores ``/data/upload/<project>/<hash>-<name>.ogg``; only the basename is used.
    A basename that is empty, ``.``/``..``, hidden-dir traversal, or that contains a NUL byte or
    a path separator after normalisation is refused.
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(upload_path, str) or not upload_path.strip():
        raise AnnotationError(f"{prefix}audio path is empty or not a string: {upload_path!r}")
    if "\x00" in upload_path:
        raise AnnotationError(f"{prefix}audio path contains a NUL byte: {upload_path!r}")
    if upload_path.rstrip().endswith(("/", "\\")):
        raise AnnotationError(f"{prefix}audio path {upload_path!r} names a folder, not a file")
    # Accept both URL-ish posix paths and Windows paths; keep only the final component.
    raw_parts = PureWindowsPath(upload_path).parts if "\\" in upload_path else PurePosixPath(upload_path).parts
    if any(part == ".." for part in raw_parts):
        raise AnnotationError(f"{prefix}audio path {upload_path!r} contains '..' (path traversal refused)")
    name = raw_parts[-1] if raw_parts else ""
    if name in ("", ".", "..", "/") or name != posixpath.basename(name) or os.sep in name:
        raise AnnotationError(f"{prefix}audio path {upload_path!r} has no usable file name")
    return name


def resolve_in_folder(folder: str | os.PathLike, name: str, *, where: str = "") -> Path:
    """``folder / name`` after checking that it stays inside ``folder`` (symlinks resolved)."""
    base = Path(folder).resolve()
    path = (base / safe_audio_name(name, where=where)).resolve()
    if base != path.parent and base not in path.parents:
        raise AnnotationError(f"{where + ': ' if where else ''}{name!r} resolves outside {base}")
    return path


def parse_task(task: dict, *, export_file: str = "") -> AnnotatedTrack:
    """One Label-Studio task → :class:`AnnotatedTrack` (errors name the task id and file)."""
    task_id = str(task.get("id", "?")) if isinstance(task, dict) else "?"
    where = f"{export_file} task {task_id}"
    if not isinstance(task, dict):
        raise AnnotationError(f"{where}: task is not a JSON object")
    data = task.get("data")
    if not isinstance(data, dict) or "audio" not in data:
        raise AnnotationError(f"{where}: missing data.audio")
    audio_name = safe_audio_name(data["audio"], where=where)
    annotations = task.get("annotations")
    if not isinstance(annotations, list) or not annotations:
        raise AnnotationError(f"{where}: no annotations")
    # The authors use the first annotation; cancelled ones are skipped when a later one exists.
    usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    ann = (usable or annotations)[0]
    result = ann.get("result") if isinstance(ann, dict) else None
    if not isinstance(result, list) or not result:
        raise AnnotationError(f"{where}: annotation has an empty result")
    weights: list[tuple[str, object]] = []
    for item in result:
        # Other controls of a labeling config (a comment text area, a rating) are not genre weights.
        if isinstance(item, dict) and item.get("type", "number") != "number":
            continue
        try:
            weights.append((item["from_name"], item["value"]["number"]))
        except (KeyError, TypeError):
            raise AnnotationError(f"{where}: result entry without from_name/value.number: {item!r}") from None
    if not weights:
        raise AnnotationError(f"{where}: annotation has no number (genre weight) results")
    try:
        label = normalize(weights_to_vector(weights, where=where), where=where)
    except LabelError as e:
        raise LabelError(str(e)) from None
    return AnnotatedTrack(task_id=task_id, audio_name=audio_name, label=label, export_file=export_file)


def make_task(task_id: int, audio_name: str, label: Sequence[float], upload_prefix: str = "/data/upload/1/") -> dict:
    """A Label-Studio task in the real export's shape (one number result per genre, 'Techno' name)."""
    result = [
        {
            "value": {"number": float(w) if float(w) != int(w) else int(w)},
            "id": f"g{task_id}-{k}",
            "from_name": name,
            "to_name": "audio",
            "type": "number",
            "origin": "manual",
        }
        for k, (name, w) in enumerate(zip(EXPORT_NAMES, label))
    ]
    return {
        "id": task_id,
        "annotations": [{"id": task_id, "result": result, "was_cancelled": False, "ground_truth": False}],
        "file_upload": audio_name,
        "data": {"audio": upload_prefix + audio_name},
        "meta": {},
    }


# --------------------------------------------------------------------------------------------
# Label Studio's CSV (and TSV) export
# --------------------------------------------------------------------------------------------

CSV_EXPORT_SUFFIXES = {".csv": ",", ".tsv": "\t"}
# Columns Label Studio's CSV export always writes next to the data and control-tag columns.
_CSV_META_COLUMNS = ("id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement", "history")


def _csv_number(cell: str, *, where: str):
    """A number cell of the CSV export: ``[{"number": 0.75}]`` (what Label Studio writes), a JSON
    object ``{"number": 0.75}``, or a bare number (a hand-edited sheet); empty → None."""
    text = cell.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise AnnotationError(f"{where}: cannot read {cell!r} as a number") from None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        value = value.get("number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnnotationError(f"{where}: expected a number or [{{\"number\": w}}], got {cell!r}")
    return value


def read_csv_export(path: str | os.PathLike) -> list[dict]:
    """Label Studio's CSV/TSV export → tasks in the JSON export's shape (for :func:`parse_task`).

    One row per annotation: the task's data fields (``audio``), one column per control tag
    (``from_name``) holding ``[{"number": w}]``, and ``id``/``annotation_id``/``created_at``...
    Rows of one task (several annotators) become its annotations, oldest first, as in JSON; a
    row without any number (a task nobody annotated) becomes a task without annotations.
    """
    import csv

    path = Path(path)
    delimiter = CSV_EXPORT_SUFFIXES.get(path.suffix.lower(), ",")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f, delimiter=delimiter))
            header = rows[0].keys() if rows else []
    except FileNotFoundError:
        raise AnnotationError(f"{path}: export file not found") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise AnnotationError(f"{path}: not a readable CSV export ({e})") from None
    if rows and "audio" not in header:
        raise AnnotationError(f"{path}: CSV export has no 'audio' column (columns: {', '.join(header)})")
    genre_columns = [c for c in header if c not in _CSV_META_COLUMNS and c != "audio"]
    known = [c for c in genre_columns if _is_genre_name(c)]
    tasks: dict[str, dict] = {}
    for line, row in enumerate(rows, start=2):
        task_id = (row.get("id") or "").strip() or f"row{line}"
        where = f"{path.name} line {line} (task {task_id})"
        task = tasks.setdefault(task_id, {"id": task_id, "data": {"audio": row.get("audio") or ""}, "annotations": []})
        result = []
        for column in known:
            number = _csv_number(row.get(column) or "", where=f"{where} column {column!r}")
            if number is not None:
                result.append({"from_name": column, "to_name": "audio", "type": "number", "value": {"number": number}})
        if result:
            task["annotations"].append({"id": row.get("annotation_id"), "created_at": row.get("created_at") or "",
                                        "result": result, "was_cancelled": False})
    for task in tasks.values():
        task["annotations"].sort(key=lambda a: a["created_at"])  # stable: ties keep the file's order
    return list(tasks.values())


def _is_genre_name(column: str) -> bool:
    from .genres import genre_id

    try:
        genre_id(column)
    except LabelError:
        return False
    return True
