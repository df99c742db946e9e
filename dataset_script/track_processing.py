"""The per-track work of a build: analyse a track (drops), cut its clips and FLAC-encode them.

:class:`TrackProcessor` needs only the builder's config (a config pickles; the builder, with its
caches and file systems, need not), so :func:`process_tracks` can run it in worker processes.
Each track's result is a :class:`TrackOutcome`; a track that cannot be used is a skip with its
reason, never the end of the build.  The drops (not the audio) are cached per process
(:data:`ANALYSIS_CACHE`), so a ``tracks`` build after a ``clips`` build of the same folders
decodes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import MAX_SAMPLE_RATE, AudioError, over_full_scale, truncation
from .build_plan import TrackEntry
from .build_report import NOTE_CLIPPED, NOTE_TRUNCATED, SkipReason
from .clips import TrackDrops, analyse_track, track_seed
from .librosa_import import import_librosa


@dataclass(frozen=True)
class TrackOutcome:
    """One track's result: its drops (None when it could not be analysed), its clip examples (cut
    and FLAC-encoded; clips config only), and why it is skipped (None: it is not)."""

    drops: TrackDrops | None
    examples: list = field(default_factory=list)
    skip: SkipReason | None = None
    detail: str = ""
    notes: tuple[str, ...] = ()  # NOTE_* kinds that apply to the track


# (path, size, mtime, drop-file sections, detection parameters) -> TrackDrops | TrackOutcome of a
# track that could not be analysed; small objects only.
ANALYSIS_CACHE: dict[tuple, TrackDrops | TrackOutcome] = {}
ANALYSIS_CACHE_MAX = 4096


def _cache(key: tuple, value: TrackDrops | TrackOutcome) -> None:
    if len(ANALYSIS_CACHE) < ANALYSIS_CACHE_MAX:
        ANALYSIS_CACHE[key] = value


def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def encode_flac(samples: np.ndarray, sr: int) -> bytes:
    """16-bit FLAC bytes of a mono clip (samples,): lossless for the 16-bit-or-lossy sources, ~1/3 of WAV."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), sr, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


class TrackProcessor:
    """Analyse, cut and encode one track with the options of a builder config (a
    ``HouseXBuilderConfig``; not imported here: the builder imports this module)."""

    def __init__(self, config):
        self.config = config

    def cache_key(self, entry: TrackEntry) -> tuple:
        c = self.config
        fs = tuple(entry.file_sections) if entry.file_sections is not None else None
        detection = (c.margin_db, c.min_drop_seconds, c.skip_seconds, c.clip_seconds, c.use_drop_file)
        return (_file_key(entry.audio_path), fs, detection)

    def process(self, entry: TrackEntry, *, with_clips: bool) -> TrackOutcome:
        """The track's outcome (``with_clips``: with its clip examples); any error concerns this one
        track: a skip with its reason (an unexpected one carries the exception's class and message)."""
        try:
            return self._analyse_and_encode(entry, with_clips)
        except (AudioError, OSError) as e:
            return TrackOutcome(None, skip=SkipReason.of_error(e), detail=str(e))
        except Exception as e:  # noqa: BLE001 - a bug or a library's surprise on one file
            return TrackOutcome(None, skip=SkipReason.UNEXPECTED,
                                detail=f"{entry.audio_path}: {type(e).__name__}: {str(e).strip() or '(no message)'}")

    def _judge(self, entry: TrackEntry, drops: TrackDrops, examples: list | None = None) -> TrackOutcome:
        """An analysed track's outcome: skipped for a rate above ``MAX_SAMPLE_RATE``, when it has no drop
        section, or (``strict``) a truncated file or only a fallback section.  ``examples``:
        ``(example, over full scale)`` pairs."""
        where = f"{entry.audio_path}: {drops.reason}"
        if drops.sample_rate > MAX_SAMPLE_RATE:
            return TrackOutcome(drops, skip=SkipReason.UNSUPPORTED_RATE,
                                detail=f"{entry.audio_path}: {drops.sample_rate} Hz (resample it to ≤ {MAX_SAMPLE_RATE} Hz)")
        cut = truncation(entry.audio_path, drops.duration)
        if cut and self.config.strict:
            return TrackOutcome(drops, skip=SkipReason.TRUNCATED, detail=f"{entry.audio_path}: {cut}")
        notes = (NOTE_TRUNCATED,) if cut else ()
        if examples and any(clipped for _, clipped in examples):
            notes += (NOTE_CLIPPED,)
        examples = [example for example, _ in examples or []]
        if not drops.sections:
            return TrackOutcome(drops, skip=SkipReason.SILENT if drops.silent else SkipReason.NO_DROP, detail=where)
        if drops.fallback and self.config.strict:
            return TrackOutcome(drops, skip=SkipReason.STRICT_FALLBACK, detail=where)
        return TrackOutcome(drops, examples, notes=notes)

    def _analyse_and_encode(self, entry: TrackEntry, with_clips: bool) -> TrackOutcome:
        """:func:`analyse_track` (or its cached drops), then (``with_clips``) the clips cut and
        FLAC-encoded into examples of the ``clips`` config."""
        c = self.config
        try:
            key = self.cache_key(entry)
            cached = ANALYSIS_CACHE.get(key)
            if isinstance(cached, TrackOutcome):
                return cached
            if cached is not None and not with_clips:
                return self._judge(entry, cached)
            track = analyse_track(
                entry.audio_path, file_sections=entry.file_sections,
                drop_options=dict(margin_db=c.margin_db, min_seconds=c.min_drop_seconds, skip_seconds=c.skip_seconds),
                clip_seconds=c.clip_seconds, clips_per_section=c.clips_per_section,
                seed=track_seed(c.seed, entry.track_id),
            )
        except (AudioError, OSError) as e:
            failed = TrackOutcome(None, skip=SkipReason.of_error(e), detail=str(e))
            if isinstance(e, AudioError):
                _cache(key, failed)
            return failed
        _cache(key, track.drops)
        outcome = self._judge(entry, track.drops)
        if not with_clips or outcome.skip is not None:
            return outcome
        soft = entry.soft_label.astype(np.float32)
        examples = []
        for k, clip in enumerate(track.clips):
            samples = track.clip_audio(clip)
            examples.append(((f"{entry.source}/{entry.track_id}/{k}", {
                "audio": {"path": f"{entry.track_id}_drop{clip.drop_index}_clip{k}.flac",
                          "bytes": encode_flac(samples, track.drops.sample_rate)},
                "label": entry.label,
                "soft_label": soft,
                "track_id": entry.track_id,
                "clip_start": clip.start,
                "clip_end": clip.end,
                "drop_index": clip.drop_index,
                "fallback": track.drops.fallback,
                "padded": clip.padded,
            }), over_full_scale(samples)))
        return self._judge(entry, track.drops, examples)


# a pool worker's processor (see process_tracks)
_WORKER_PROCESSOR: TrackProcessor | None = None


def _init_worker(config) -> None:
    global _WORKER_PROCESSOR
    _WORKER_PROCESSOR = TrackProcessor(config)


def _process_in_worker(job: tuple[TrackEntry, bool]) -> TrackOutcome:
    entry, with_clips = job
    return _WORKER_PROCESSOR.process(entry, with_clips=with_clips)


def process_tracks(processor: TrackProcessor, entries: list[TrackEntry], *, with_clips: bool,
                   num_workers: int = 1) -> Iterator[TrackOutcome]:
    """:meth:`TrackProcessor.process` of each entry, in order; in ``num_workers`` processes when > 1.

    The workers come from a fork server (a clean single-threaded process), not from this
    process: forking a process with threads (a web server's, an audio library's) can copy a lock
    that one of them holds, and the child then waits for it forever (a hang seen in the suite)."""
    import multiprocessing as mp

    if num_workers <= 1 or len(entries) < 2:
        for entry in entries:
            yield processor.process(entry, with_clips=with_clips)
        return
    import_librosa()  # here first, so that the workers only read numba's cache
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(min(num_workers, len(entries)), initializer=_init_worker,
                                     initargs=(processor.config,)) as pool:
        jobs = [(entry, with_clips) for entry in entries]
        for entry, outcome in zip(entries, pool.imap(_process_in_worker, jobs, chunksize=2)):
            # the worker's analysis cache is lost with it: keep the drops here
            if outcome.drops is not None:
                _cache(processor.cache_key(entry), outcome.drops)
            yield outcome
