"""Tagging a music library: every audio file under a folder → one Parquet row of genres.

``tag_library(LIBRARY, MODEL, OUT)`` walks the library for audio files
(``dataset_script.audio.find_audio_files``: formats FFmpeg decodes), decodes each file, detects its drops and cuts its clips in worker
processes (``housex.track_audio.track_clips``, torch-free), while the main process classifies
them (``housex.inference.classify_track``, the one inference path, as ``housex predict``).  Each row:
path, size, mtime, duration, top genre, the 8 probabilities, the drops, the fallback flag, the
model version and an error (a file that fails is a row with its error; the run goes on).

Resumable and incremental: rows are written every ``flush_every`` tracks as part files
(``OUT.parts/part-*.parquet``, each written to a temporary name and renamed, so a kill never
leaves a torn file) and merged into ``OUT`` (also renamed into place) at the end or on Ctrl-C.  A
rerun reads ``OUT`` and any parts left by a killed run, and skips every file whose size, mtime and
model version (which includes the clip settings) match its row; rows of files no longer in the
library are dropped.  The rows do not depend on ``workers``, ``batch_size`` or on being resumed.

``--write-tags`` (``write_tags``) puts the top genre into the file's GENRE tag and the
distribution into a comment (mutagen: ID3 ``TCON`` + ``COMM:HouseX`` for MP3/WAV/AIFF, Vorbis
``GENRE`` + ``COMMENT`` for FLAC/OGG/Opus, MP4 ``©gen`` + ``©cmt`` for M4A); only metadata is
rewritten, never the audio stream.  A dry run (the default) lists what would change.

Beyond one machine: ``accelerate launch --multi_gpu --num_processes N -m housex.cli tag LIBRARY
--model DIR --out tags.parquet`` (the ``housex tag`` command, ``housex.commands.tag``) gives each
process every N-th file still to tag; each writes its own parts, and process 0 merges them once all
are done.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections import deque
from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


from .dataset_script.audio import find_audio_files
from .dataset_script.safe_write import (OutputLock, atomic_path, check_free_space, disk_full_error, is_disk_full,
                                        remove_stale_temp_files)
from .dataset_script.genres import GENRES

DEFAULT_FLUSH_EVERY = 32
ROW_BYTES = 400  # about what a row takes in Parquet (the free-space check)
COMMENT_PREFIX = "HouseX:"


# --------------------------------------------------------------------------------------------
# rows and the Parquet schema
# --------------------------------------------------------------------------------------------


def schema():
    import pyarrow as pa

    return pa.schema(
        [("path", pa.string()), ("size", pa.int64()), ("mtime", pa.timestamp("ns", tz="UTC")),
         ("duration", pa.float64()), ("genre", pa.string())]
        + [(g, pa.float32()) for g in GENRES]
        + [("drops", pa.list_(pa.struct([("start", pa.float64()), ("end", pa.float64())]))),
           ("fallback", pa.bool_()), ("model_version", pa.string()), ("error", pa.string())]
    )


def _file_stat(path: Path) -> tuple[int, int] | str:
    """``(size, mtime_ns)``, or why the file cannot be read (a broken or looping symlink...)."""
    try:
        st = path.stat()
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}" + (" (a broken or looping symbolic link)" if path.is_symlink() else "")
    return int(st.st_size), int(st.st_mtime_ns)


def _row(path: Path, version: str, listed: tuple[int, int] | str) -> dict:
    """A row with the size and mtime the file had when the run listed it; an error when it could
    not be read then, or when it was deleted or changed while being tagged (then its result,
    made from who knows which bytes, is not kept: the next run tags it again)."""
    row = {name: None for name in schema().names}
    row.update(path=str(path), model_version=version)
    if isinstance(listed, str):
        row["error"] = listed
        return row
    row["size"], row["mtime"] = listed
    now = _file_stat(path)
    if isinstance(now, str):
        row["error"] = "deleted while being tagged" if not os.path.lexists(path) else now
    elif now != listed:
        row["error"] = "changed while being tagged (size or mtime differ): the next run tags it again"
    return row


def _same_file(row: dict, size: int, mtime_ns: int, version: str) -> bool:
    return row["size"] == size and int(row["mtime"]) == mtime_ns and row["model_version"] == version


def rows_to_table(rows: Sequence[dict]):
    """Rows (``mtime`` as int nanoseconds) → a pyarrow table of :func:`schema`."""
    import pyarrow as pa

    sch = schema()
    arrays = []
    for f in sch:
        values = [r[f.name] for r in rows]
        if f.name == "mtime":
            arrays.append(pa.array(values, pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=sch)


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Rows of a tags file (``mtime`` as int nanoseconds)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if table.num_rows:
        table = table.set_column(table.schema.get_field_index("mtime"), "mtime",
                                 pc.cast(table["mtime"], "int64"))
    return table.to_pylist()


def _write_atomically(table, path: Path) -> None:
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


# --------------------------------------------------------------------------------------------
# decoding in workers, classifying in the main process
# --------------------------------------------------------------------------------------------


def _prepare(path: str, target_rate: int, clip_seconds: float, clips_per_drop: int, seed: int):
    """Worker: decode + drops + clips of one file → ``(TrackClips, None)`` or ``(None, error)``."""
    from .track_audio import track_clips  # torch-free: a worker starts in a fraction of a second

    try:
        return track_clips(path, target_rate, clip_seconds, clips_per_section=clips_per_drop, seed=seed), None
    except Exception as e:  # noqa: BLE001  one bad file is a row with its error, never a stopped run
        return None, f"{type(e).__name__}: {e}"


def _prepared(paths: Sequence[Path], workers: int, args: tuple):
    """Yield ``(path, (TrackClips | None, error | None))`` in ``paths`` order; at most
    ``2 * workers`` files are decoded ahead, so memory stays bounded on a big library."""
    if workers <= 0:
        for path in paths:
            yield path, _prepare(str(path), *args)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: the parent holds torch's thread pools, which a fork must not inherit.  The workers
    # never import torch (``housex.track_audio``): each starts in well under a second, where
    # importing torch + transformers (and setting its threads) took ~3 s of CPU per worker.
    from .dataset_script.librosa_import import import_librosa

    import_librosa()  # here first, so that the workers only read numba's cache
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque = deque()
        it = iter(paths)
        for path in it:
            pending.append((path, pool.submit(_prepare, str(path), *args)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            path, future = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_prepare, str(nxt), *args)))
            yield path, future.result()


@dataclass
class TagSummary:
    """What a run did: files found, rows kept from before, files tagged now, errors, tags written."""

    out: Path
    found: int = 0
    kept: int = 0
    tagged: int = 0
    errors: int = 0
    seconds: float = 0.0
    tag_changes: list[str] = field(default_factory=list)

    unreadable: list[str] = field(default_factory=list)
    bytes_needed: int = 0

    def format(self) -> str:
        rate = self.tagged / self.seconds * 60 if self.seconds > 0 else float("nan")
        folders = f"; {len(self.unreadable)} folder(s) could not be read" if self.unreadable else ""
        return (f"{self.out}: {self.found} files, {self.kept} unchanged (skipped), {self.tagged} tagged now "
                f"({self.errors} with errors) in {self.seconds:.1f} s ({rate:.1f} tracks/min){folders}")


def tag_library(
    library: str | os.PathLike | Sequence[str | os.PathLike],
    model_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    csv_path: str | os.PathLike | None = None,
    workers: int = 1,
    batch_size: int = 16,
    clips_per_drop: int = 4,
    seed: int = 0,
    device: str | None = None,
    flush_every: int = DEFAULT_FLUSH_EVERY,
    retry_errors: bool = False,
    write_tags_mode: str | None = None,
    progress: bool = False,
    state=None,
) -> TagSummary:
    """Tag every audio file of ``library`` into the Parquet file ``out`` (see the module doc).

    One run at a time writes ``out`` (a second is refused, naming the first: a lock file beside
    it, held by process 0).  A full disk stops the run with one line; ``out`` stays as it was and
    the rows done so far stay in the parts, for the rerun.

    Args:
        workers: decoding processes (0: decode in this process).
        write_tags_mode: None (no tags), ``"dry-run"`` (list the changes) or ``"write"``.
        state: an ``accelerate.PartialState`` when launched with several processes.
    """
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise ValueError(f"{out}: the output must be a .parquet file")
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = TagSummary(out)
    with OutputLock(out) if state is None or state.process_index == 0 else nullcontext():
        try:
            return _tag_library(library, model_dir, out, summary, csv_path=csv_path, workers=workers,
                                batch_size=batch_size, clips_per_drop=clips_per_drop, seed=seed, device=device,
                                flush_every=flush_every, retry_errors=retry_errors, write_tags_mode=write_tags_mode,
                                progress=progress, state=state)
        except Exception as e:
            if not is_disk_full(e):
                raise
            raise disk_full_error(out.parent, f"the tags of {out.name}", summary.bytes_needed,
                                  after=f"{out.name} is unchanged; the rows tagged so far are kept in "
                                        f"{_parts_dir(out).name}/: free some space and rerun to finish") from None


def _tag_library(library, model_dir, out: Path, summary: TagSummary, *, csv_path, workers, batch_size, clips_per_drop, seed, device,
                 flush_every, retry_errors, write_tags_mode, progress, state) -> TagSummary:
    from .inference import classify_track, extractor_clip_seconds, label_names, load_classifier, torch_threads
    from .model_version import model_version

    if flush_every < 1:
        raise ValueError(f"flush_every must be >= 1, got {flush_every}")
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    parts = _parts_dir(out)
    if rank == 0:  # what killed runs were writing (never renamed into place)
        remove_stale_temp_files(out.parent, out.name)
        remove_stale_temp_files(parts)
    parts.mkdir(exist_ok=True)
    t0 = time.perf_counter()

    model, fe = load_classifier(model_dir, device=device)
    labels = label_names(model)
    if list(labels) != list(GENRES):
        raise ValueError(f"{model_dir}: model labels {labels} are not the 8 HouseX genres in order")
    version = model_version(model_dir, clips_per_drop=clips_per_drop, seed=seed)
    unreadable: list[str] = []
    files = find_audio_files([library] if isinstance(library, (str, os.PathLike)) else library, unreadable=unreadable)
    previous = _previous_rows(out)
    summary.found, summary.unreadable = len(files), unreadable
    summary.bytes_needed = 2 * ROW_BYTES * len(files)  # the parts, then the merged file
    keep, todo, listed = {}, [], {}
    for path in files:
        listed[path] = stat = _file_stat(path)
        if isinstance(stat, str) and not os.path.lexists(path):
            continue  # deleted since the walk: not in the library any more
        row = previous.get(str(path))
        if (row is not None and not isinstance(stat, str) and _same_file(row, *stat, version)
                and not (retry_errors and row["error"])):
            keep[str(path)] = row
        else:
            todo.append(path)
    summary.kept = len(keep)
    if rank == 0:
        for folder in unreadable:
            print(f"housex tag: warning: cannot read the folder {folder}: its files are not tagged", file=sys.stderr)
        check_free_space(out.parent, summary.bytes_needed, f"the tags of {out.name}")
    if state is not None:
        state.wait_for_everyone()  # every process has read the same state before any writes a part
    mine = todo[rank::world]

    args = (int(fe.sampling_rate), extractor_clip_seconds(fe), clips_per_drop, seed)
    pending: list[dict] = []
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), unit="track", desc=f"tagging (process 1 of {world})" if world > 1 else "tagging")
    interrupted = False
    try:
        # The worker processes decode on the other cores: torch classifies with one thread here
        # (with two, its threads wait for each other whenever a decoder takes their core; the
        # results are the same for any thread count).
        with torch_threads(1) if workers > 0 and next(model.parameters()).device.type == "cpu" else nullcontext():
            for path, (track, error) in _prepared(mine, workers, args):
                row = _row(path, version, listed[path])
                if row["error"] is not None:
                    error = row["error"]
                elif track is not None:
                    try:
                        pred = classify_track(track, model, fe, batch_size=batch_size, device=device)
                    except Exception as e:  # noqa: BLE001
                        error = f"{type(e).__name__}: {e}"
                    else:
                        row.update(duration=float(pred.duration), genre=pred.genre, fallback=bool(pred.fallback),
                                   drops=[{"start": float(d.start), "end": float(d.end)} for d in pred.drops],
                                   **{g: float(p) for g, p in zip(GENRES, pred.probabilities)})
                if error is not None:
                    row["error"] = error
                    summary.errors += 1
                pending.append(row)
                summary.tagged += 1
                if len(pending) >= flush_every:
                    _write_part(parts, rank, pending)
                    pending = []
                if bar is not None:
                    bar.update(1)
                    elapsed = bar.format_dict["elapsed"] or 1e-9
                    bar.set_postfix_str(f"{bar.n / elapsed * 60:.1f} tracks/min", refresh=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
        if pending:
            try:
                _write_part(parts, rank, pending)
            except Exception as e:
                if not is_disk_full(e):  # a full disk is raised by the write that found it first
                    raise
    if state is not None and not interrupted:
        state.wait_for_everyone()
    if rank == 0:
        rows = _merge(out, keep, files)
        if write_tags_mode is not None and not interrupted:
            summary.tag_changes = write_tags(rows, apply=write_tags_mode == "write", version=version)
            if write_tags_mode == "write":
                _refresh_stats(rows)
        _write_atomically(rows_to_table(rows), out)
        for part in parts.glob("part-*.parquet"):
            part.unlink()
        if not any(parts.iterdir()):
            parts.rmdir()
        if csv_path is not None:
            write_csv(rows, csv_path)
    summary.seconds = time.perf_counter() - t0
    if interrupted:
        raise KeyboardInterrupt
    return summary


def _previous_rows(out: Path) -> dict[str, dict]:
    """Rows of ``out`` and of the parts a killed run left, by path (parts are newer)."""
    rows: dict[str, dict] = {}
    sources = ([out] if out.is_file() else []) + sorted(_parts_dir(out).glob("part-*.parquet"))
    for source in sources:
        try:
            rows.update((r["path"], r) for r in read_rows(source))
        except Exception as e:  # noqa: BLE001  an unreadable file cannot be trusted: retag its files
            print(f"housex tag: warning: ignoring unreadable {source} ({type(e).__name__}: {e})", file=sys.stderr)
    return rows


def _write_part(parts: Path, rank: int, rows: list[dict]) -> None:
    _write_atomically(rows_to_table(rows), parts / f"part-r{rank:03d}-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet")


def _merge(out: Path, keep: dict[str, dict], files: Sequence[Path]) -> list[dict]:
    """Kept rows + every part's rows, restricted to the files found now, sorted by path."""
    rows = dict(keep)
    for part in sorted(_parts_dir(out).glob("part-*.parquet")):
        rows.update((r["path"], r) for r in read_rows(part))
    wanted = {str(p) for p in files}
    return [rows[p] for p in sorted(rows) if p in wanted]


def _refresh_stats(rows: list[dict]) -> None:
    """After writing tags the files' size/mtime changed (not their audio): record the new ones so
    that the next run still skips them."""
    for row in rows:
        stat = _file_stat(Path(row["path"]))
        if not isinstance(stat, str):
            row["size"], row["mtime"] = stat


def write_csv(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    """The rows as CSV (drops as ``start-end;start-end`` in seconds, mtime in ISO 8601 UTC)."""
    import csv
    from datetime import datetime, timezone

    path = Path(path)
    names = schema().names
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(names)
        for r in rows:
            cells = []
            for name in names:
                v = r[name]
                if name == "mtime" and v is not None:
                    v = datetime.fromtimestamp(int(v) / 1e9, timezone.utc).isoformat()
                elif name == "drops" and v is not None:
                    v = ";".join(f"{d['start']:.3f}-{d['end']:.3f}" for d in v)
                elif isinstance(v, float):
                    v = f"{v:.6g}"
                cells.append("" if v is None else v)
            w.writerow(cells)
    return path


# --------------------------------------------------------------------------------------------
# genre tags in the files (mutagen)
# --------------------------------------------------------------------------------------------


def tag_comment(row: dict, version: str) -> str:
    """``HouseX: Tech House 0.61, Deep House 0.22, ... (model housex-…)``: the distribution."""
    probs = sorted(((g, row[g]) for g in GENRES), key=lambda gp: -gp[1])
    return f"{COMMENT_PREFIX} " + ", ".join(f"{g} {p:.2f}" for g, p in probs) + f" (model {version})"


def _open_tags(path: str):
    """``(mutagen file, kind)`` with kind ``id3``/``vorbis``/``mp4``; tags created when missing."""
    import mutagen
    from mutagen.aiff import AIFF
    from mutagen.flac import FLAC
    from mutagen.id3 import ID3
    from mutagen.mp3 import MP3
    from mutagen.mp4 import MP4
    from mutagen.oggflac import OggFLAC
    from mutagen.oggopus import OggOpus
    from mutagen.oggspeex import OggSpeex
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE

    f = mutagen.File(path)
    if f is None:
        raise ValueError(f"{path}: mutagen cannot write tags into this format")
    if isinstance(f, MP4):
        kind = "mp4"
    elif isinstance(f, (FLAC, OggVorbis, OggOpus, OggFLAC, OggSpeex)):
        kind = "vorbis"
    elif isinstance(f, (MP3, WAVE, AIFF)) or isinstance(f.tags, ID3):
        kind = "id3"
    else:
        raise ValueError(f"{path}: writing tags into {type(f).__name__} files is not supported")
    if f.tags is None:
        f.add_tags()
    return f, kind


def _current_tags(f, kind: str) -> tuple[str | None, str | None]:
    tags = f.tags
    if kind == "id3":
        genre = tags.get("TCON")
        comment = tags.get("COMM:HouseX:eng")
        return (str(genre.text[0]) if genre and genre.text else None,
                str(comment.text[0]) if comment and comment.text else None)
    key_genre, key_comment = ("\xa9gen", "\xa9cmt") if kind == "mp4" else ("GENRE", "COMMENT")
    genres = tags.get(key_genre) or []
    ours = [c for c in (tags.get(key_comment) or []) if str(c).startswith(COMMENT_PREFIX)]
    return (str(genres[0]) if genres else None, str(ours[0]) if ours else None)


def _set_tags(f, kind: str, genre: str, comment: str) -> None:
    tags = f.tags
    if kind == "id3":
        from mutagen.id3 import COMM, TCON

        tags.setall("TCON", [TCON(encoding=3, text=[genre])])
        tags.setall("COMM:HouseX:eng", [COMM(encoding=3, lang="eng", desc="HouseX", text=[comment])])
        return
    key_genre, key_comment = ("\xa9gen", "\xa9cmt") if kind == "mp4" else ("GENRE", "COMMENT")
    others = [c for c in (tags.get(key_comment) or []) if not str(c).startswith(COMMENT_PREFIX)]
    tags[key_genre] = [genre]
    tags[key_comment] = others + [comment]  # a user's own comments are kept


def write_tags(rows: Sequence[dict], *, apply: bool, version: str, log=print) -> list[str]:
    """Write (``apply``) or list (dry run) the GENRE tag and the HouseX comment of each tagged row.

    Files whose tags already say the same are not touched.  Returns one line per change; a file
    whose tags cannot be written is reported, not fatal.
    """
    changes = []
    for row in rows:
        if row["error"] or row["genre"] is None:
            continue
        path = row["path"]
        try:
            f, kind = _open_tags(path)
            old_genre, old_comment = _current_tags(f, kind)
            comment = tag_comment(row, version)
            if (old_genre, old_comment) == (row["genre"], comment):
                continue
            line = f"{path}: GENRE {old_genre!r} -> {row['genre']!r}; comment -> {comment!r}"
            if apply:
                _set_tags(f, kind, row["genre"], comment)
                f.save()
            changes.append(line)
            log(("" if apply else "would change ") + line)
        except Exception as e:  # noqa: BLE001  one unwritable file must not stop the others
            msg = f"{path}: cannot write tags ({type(e).__name__}: {e})"
            changes.append(msg)
            log(msg)
    return changes
