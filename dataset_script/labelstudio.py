"""The Label-Studio task format of the HouseX-v2 exports (the release folder's files: :mod:`.release`).

An export is a JSON list of tasks.  ``task["data"]["audio"]`` is an upload path whose basename is
the audio file name; ``task["annotations"][0]["result"]`` holds one
``{"from_name": <genre>, "value": {"number": w}}`` per genre.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from .genres import GENRES, LabelError, normalize, weights_to_vector


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
    weights: dict[str, float] = {}
    for item in result:
        try:
            name, number = item["from_name"], item["value"]["number"]
        except (KeyError, TypeError):
            raise AnnotationError(f"{where}: result entry without from_name/value.number: {item!r}") from None
        weights[name] = weights.get(name, 0.0) + (number if isinstance(number, (int, float)) else float("nan"))
    try:
        label = normalize(weights_to_vector(weights, where=where), where=where)
    except LabelError as e:
        raise LabelError(str(e)) from None
    return AnnotatedTrack(task_id=task_id, audio_name=audio_name, label=label, export_file=export_file)


def make_task(task_id: int, audio_name: str, label: Sequence[float], upload_prefix: str = "/data/upload/1/") -> dict:
    """A Label-Studio task in the real export's shape (one number result per genre, 'Techno' name)."""
    names = [("Techno" if g == "Tech House" else g) for g in GENRES]
    result = [
        {
            "value": {"number": float(w) if float(w) != int(w) else int(w)},
            "id": f"g{task_id}-{k}",
            "from_name": name,
            "to_name": "audio",
            "type": "number",
            "origin": "manual",
        }
        for k, (name, w) in enumerate(zip(names, label))
    ]
    return {
        "id": task_id,
        "annotations": [{"id": task_id, "result": result, "was_cancelled": False, "ground_truth": False}],
        "file_upload": audio_name,
        "data": {"audio": upload_prefix + audio_name},
        "meta": {},
    }
