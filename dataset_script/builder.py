"""The HouseX-v2 ``datasets`` builder: release folders → configs ``tracks`` and ``clips``.

``datasets`` 5 has no loading scripts, so the builder is a class you instantiate::

    builder = HouseXBuilder(config_name="clips", data_dir="release-a,release-b", seed=42)
    builder.download_and_prepare()
    ds = builder.as_dataset()          # DatasetDict(train=..., validation=...)
    print(builder.summary.format())    # tracks read / written / skipped with reasons

``num_workers=N`` decodes, analyses and cuts the tracks in N forked processes; the files written
and the summary are the same for any N.

A release folder holds audio files, one Label-Studio export (``*partition*.json``) and optionally
a drop file (``*detect*.json``).  Tracks are split into train/validation by TRACK (seeded
shuffle, optionally stratified by primary genre), so a track's clips never cross splits.  The
split is drawn over the annotated tracks whose audio file exists, before decoding, so that each
track is decoded once; tracks skipped while decoding leave their split smaller.  Bad
input (missing/corrupt/empty/silent/NaN audio, tracks shorter than a clip, bad annotations,
duplicate names, rates above ``MAX_SAMPLE_RATE``, and any unexpected error on one track) is skipped
and reported in :attr:`HouseXBuilder.summary`, never silently; only whole-run failures stop a build.
The summary's notes name kept tracks that are truncated, over full scale, and audio files the
export does not list.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf

from .audio import (AUDIO_SUFFIXES, MAX_SAMPLE_RATE, AudioError, EmptyAudioFile, NonFiniteAudio, over_full_scale,
                    truncation)
from .clips import TrackDrops, TrackTooShort, analyse_track, track_seed
from .genres import GENRES, LABEL_MODES, LabelError, apply_label_mode, sharpen_ids
from .labelstudio import AnnotationError, parse_task, resolve_in_folder
from .release import _load_json, find_release_files, read_drop_file

CONFIG_NAMES = ("tracks", "clips")
CITATION = """@misc{housex-v2,
  title  = {HouseX-v2: sub-genre classification of mainstage house music with soft labels},
  author = {{HouseX-v2 authors}},
  howpublished = {\\url{https://github.com/Gariscat/housex-v2}},
  note   = {Paper and code; cite the paper as given in the repository's README},
}"""
HOMEPAGE = "https://github.com/Gariscat/housex-v2"


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


def features_for(config_name: str) -> datasets.Features:
    label = datasets.ClassLabel(names=list(GENRES))
    soft = datasets.List(datasets.Value("float32"), length=len(GENRES))
    if config_name == "clips":
        return datasets.Features(
            {
                "audio": datasets.Audio(),
                "label": label,
                "soft_label": soft,
                "track_id": datasets.Value("string"),
                "clip_start": datasets.Value("float32"),
                "clip_end": datasets.Value("float32"),
                "drop_index": datasets.Value("int32"),
                "fallback": datasets.Value("bool"),
                "padded": datasets.Value("bool"),
            }
        )
    if config_name == "tracks":
        return datasets.Features(
            {
                "audio": datasets.Audio(),
                "label": label,
                "soft_label": soft,
                "genres": datasets.List(datasets.Value("string")),
                "drop_sections": datasets.List(datasets.List(datasets.Value("float32"), length=2)),
                "drop_fallback": datasets.Value("bool"),
                "source": datasets.Value("string"),
                "track_id": datasets.Value("string"),
                "task_id": datasets.Value("string"),
                "duration": datasets.Value("float32"),
            }
        )
    raise ValueError(f"unknown config {config_name!r}; expected one of {', '.join(CONFIG_NAMES)}")


class SkipReason(StrEnum):
    """Why a track is left out of the dataset (the summary counts tracks per reason)."""

    BAD_ANNOTATION = "bad annotation"
    UNSAFE_PATH = "unsafe audio path"
    MISSING_AUDIO = "missing audio"
    DUPLICATE = "duplicate track name"
    NOT_CLEAN = "filtered by label_mode=clean"
    UNREADABLE = "unreadable audio"
    EMPTY_FILE = "empty audio file"
    NON_FINITE = "non-finite audio"
    TOO_SHORT = "shorter than a clip"
    SILENT = "silent"
    NO_DROP = "no drop section"
    STRICT_FALLBACK = "fallback drop (strict)"
    UNSUPPORTED_RATE = f"sampling rate above {MAX_SAMPLE_RATE // 1000} kHz"
    TRUNCATED = "truncated audio (strict)"
    UNEXPECTED = "unexpected error"

    @classmethod
    def of_error(cls, error: Exception) -> SkipReason:
        """The reason of a decoding error (:class:`AudioError` subclasses; anything else is unreadable)."""
        kinds = {TrackTooShort: cls.TOO_SHORT, NonFiniteAudio: cls.NON_FINITE, EmptyAudioFile: cls.EMPTY_FILE}
        return next((reason for kind, reason in kinds.items() if isinstance(error, kind)), cls.UNREADABLE)


@dataclass(frozen=True)
class Skip:
    """A track left out of the dataset: why (``reason``), and the details (file, numbers)."""

    source: str
    name: str
    reason: SkipReason
    detail: str = ""

    @property
    def text(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else str(self.reason)


@dataclass
class BuildSummary:
    """What a build read, wrote and skipped (filled while the builder prepares its splits)."""

    tracks_read: int = 0
    tracks: dict[str, int] = field(default_factory=dict)  # split -> tracks written
    clips: dict[str, int] = field(default_factory=dict)  # split -> clips written
    skipped: list[Skip] = field(default_factory=list)
    drops_from_file: int = 0
    drops_detected: int = 0
    fallback_tracks: int = 0
    padded_clips: int = 0
    # note kind -> "source/file" of tracks kept (or left out) with something worth a word (NOTE_*)
    notes: dict[str, list[str]] = field(default_factory=dict)
    out_dir: str = ""

    def note(self, kind: str, where: str) -> None:
        names = self.notes.setdefault(kind, [])
        if where not in names:
            names.append(where)

    def skip(self, source: str, name: str, reason: SkipReason, detail: str = "") -> None:
        if not any(s.source == source and s.name == name for s in self.skipped):
            self.skipped.append(Skip(source, name, reason, detail))

    def skip_counts(self) -> Counter:
        """Skipped tracks per reason (keyed by the reason's text)."""
        return Counter(str(s.reason) for s in self.skipped)

    def format(self) -> str:
        lines = [f"tracks read: {self.tracks_read}"]
        if self.tracks:
            lines.append("tracks written: " + ", ".join(f"{k} {v}" for k, v in self.tracks.items()))
        if self.clips:
            lines.append("clips written: " + ", ".join(f"{k} {v}" for k, v in self.clips.items()))
        lines.append(
            f"drop sections: {self.drops_from_file} tracks from drop files, {self.drops_detected} detected"
            f" ({self.fallback_tracks} by fallback); {self.padded_clips} padded clips"
        )
        lines.append(f"tracks skipped: {len(self.skipped)}")
        for category, n in sorted(self.skip_counts().items()):
            lines.append(f"  {n} × {category}")
        for s in self.skipped[:20]:
            lines.append(f"    {s.source}/{s.name}: {s.text}")
        if len(self.skipped) > 20:
            lines.append(f"    ... and {len(self.skipped) - 20} more")
        for kind, names in self.notes.items():
            shown = ", ".join(names[:5]) + (f", ... and {len(names) - 5} more" if len(names) > 5 else "")
            lines.append(f"note: {len(names)} × {kind}: {shown}")
        if self.out_dir:
            lines.append(f"written to: {self.out_dir}")
        return "\n".join(lines)


NOTE_TRUNCATED = "truncated audio (the file holds less than its header says; kept)"
NOTE_CLIPPED = "audio over +1 dBFS (float files above full scale; clipped to ±1 in the FLAC clips)"
NOTE_UNLISTED = "audio files in a release folder that its export does not list (not read)"


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
        tasks = _load_json(export_path, "export")
        if not isinstance(tasks, list):
            raise AnnotationError(f"{export_path}: expected a JSON list of Label-Studio tasks")
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
            if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file() and path.resolve() not in listed:
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


@dataclass(frozen=True)
class TrackOutcome:
    """One track's decoding result: its drops (None when it could not be analysed), its clip
    examples (cut and FLAC-encoded; clips config only), and why it is skipped (None: it is not)."""

    drops: TrackDrops | None
    examples: list = field(default_factory=list)
    skip: SkipReason | None = None
    detail: str = ""
    notes: tuple[str, ...] = ()  # NOTE_* kinds that apply to the track


# (path, size, mtime, drop-file sections, detection parameters) -> TrackDrops | TrackOutcome of a
# track that could not be analysed; small objects only.
_ANALYSIS_CACHE: dict[tuple, TrackDrops | TrackOutcome] = {}
_ANALYSIS_CACHE_MAX = 4096
# a pool worker's decoder (see HouseXBuilder._decoded)
_POOL_DECODER = None


def _decode_in_worker(job: tuple):
    entry, is_clips = job
    return _POOL_DECODER._decode(entry, is_clips)


def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


@dataclass
class HouseXBuilderConfig(datasets.BuilderConfig):
    """Options of the HouseX-v2 builder (all part of the cache fingerprint)."""

    label_mode: str = "soft"
    seed: int = 42
    validation_fraction: float = 0.2
    stratify: bool = False
    clips_per_section: int = 4
    clip_seconds: float = 7.5
    margin_db: float = 1.5
    min_drop_seconds: float = 15.0
    skip_seconds: float = 15.0
    strict: bool = False
    use_drop_file: bool = True


class TrackDecoding:
    """The per-track work of a build that needs only the builder's config: analyse, cut and encode one
    track.  The builder has it, and so has a pool worker's :class:`_TrackDecoder` (a config pickles;
    the builder, with its caches and file systems, need not)."""

    config: HouseXBuilderConfig

    def _detection_params(self) -> tuple:
        c = self.config
        return (c.margin_db, c.min_drop_seconds, c.skip_seconds, c.clip_seconds, c.use_drop_file)

    def _cache_key(self, entry: TrackEntry) -> tuple:
        fs = tuple(entry.file_sections) if entry.file_sections is not None else None
        return (_file_key(entry.audio_path), fs, self._detection_params())

    def _outcome(self, entry: TrackEntry, drops: TrackDrops, examples: list | None = None) -> TrackOutcome:
        """An analysed track's outcome: skipped when it has no drop section, or only a fallback
        one under ``strict``."""
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

    def _decode(self, entry: TrackEntry, is_clips: bool) -> TrackOutcome:
        """:meth:`_decode_track`; any error there concerns this one track: a skip with its reason
        (an unexpected one carries the exception's class and message), never the end of the build."""
        try:
            return self._decode_track(entry, is_clips)
        except (AudioError, OSError) as e:
            return TrackOutcome(None, skip=SkipReason.of_error(e), detail=str(e))
        except Exception as e:  # noqa: BLE001 - a bug or a library's surprise on one file
            return TrackOutcome(None, skip=SkipReason.UNEXPECTED,
                                detail=f"{entry.audio_path}: {type(e).__name__}: {str(e).strip() or '(no message)'}")

    def _decode_track(self, entry: TrackEntry, is_clips: bool) -> TrackOutcome:
        """One track's work that needs no bookkeeping (run in a worker process when ``num_workers``
        > 1): :func:`analyse_track`, then (clips config) the clips cut and FLAC-encoded.

        Every track is decoded once per process: the drops (not the audio) are cached, so a
        ``tracks`` build after a ``clips`` build of the same folders decodes nothing.
        """
        c = self.config
        try:
            key = self._cache_key(entry)
            cached = _ANALYSIS_CACHE.get(key)
            if isinstance(cached, TrackOutcome):
                return cached
            if cached is not None and not is_clips:
                return self._outcome(entry, cached)
            track = analyse_track(
                entry.audio_path, file_sections=entry.file_sections,
                drop_options=dict(margin_db=c.margin_db, min_seconds=c.min_drop_seconds, skip_seconds=c.skip_seconds),
                clip_seconds=c.clip_seconds, clips_per_section=c.clips_per_section,
                seed=track_seed(c.seed, entry.track_id),
            )
        except (AudioError, OSError) as e:
            failed = TrackOutcome(None, skip=SkipReason.of_error(e), detail=str(e))
            if isinstance(e, AudioError) and len(_ANALYSIS_CACHE) < _ANALYSIS_CACHE_MAX:
                _ANALYSIS_CACHE[key] = failed
            return failed
        if len(_ANALYSIS_CACHE) < _ANALYSIS_CACHE_MAX:
            _ANALYSIS_CACHE[key] = track.drops
        outcome = self._outcome(entry, track.drops)
        if not is_clips or outcome.skip is not None:
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
        return self._outcome(entry, track.drops, examples)


class _TrackDecoder(TrackDecoding):
    def __init__(self, config: HouseXBuilderConfig):
        self.config = config


def _init_worker(config: HouseXBuilderConfig) -> None:
    global _POOL_DECODER
    _POOL_DECODER = _TrackDecoder(config)


class HouseXBuilder(TrackDecoding, datasets.GeneratorBasedBuilder):
    """Builds the ``tracks`` / ``clips`` configs from one or several release folders."""

    BUILDER_CONFIG_CLASS = HouseXBuilderConfig
    BUILDER_CONFIGS = [
        HouseXBuilderConfig(name="tracks", description="whole annotated tracks with soft labels and drop sections"),
        HouseXBuilderConfig(name="clips", description="7.5 s mono drop clips at the source rate with soft labels"),
    ]
    DEFAULT_CONFIG_NAME = "clips"

    def __init__(self, *args, data_dir=None, progress: bool = False, writer_batch_size: int | None = None,
                 num_workers: int = 1, **kwargs):
        self.data_dirs = split_data_dirs(data_dir) if data_dir is not None else []
        self.progress = progress
        # processes that decode, analyse and cut tracks (the output does not depend on it)
        self.num_workers = int(num_workers)
        self.summary = BuildSummary()
        if data_dir is not None and kwargs.get("hash") is None:
            # Cache key covers the release files too, so edited exports/audio are not served stale.
            kwargs["hash"] = _fingerprint(self.data_dirs)
        joined = os.pathsep.join(str(d) for d in self.data_dirs) if data_dir is not None else None
        super().__init__(*args, data_dir=joined, writer_batch_size=writer_batch_size, **kwargs)
        if writer_batch_size is None:
            # Whole tracks are MBs each: flush often to keep memory bounded.
            self._writer_batch_size = 8 if self.config.name == "tracks" else 64

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="HouseX-v2: 8 mainstage house sub-genres with soft labels; drop clips and tracks.",
            features=features_for(self.config.name),
            homepage=HOMEPAGE,
            citation=CITATION,
            license="bsd-3-clause (annotations); audio: see the release's terms",
        )

    def _split_generators(self, dl_manager):
        cfg = self.config
        if cfg.name not in CONFIG_NAMES:
            raise ValueError(f"unknown config {cfg.name!r}; expected one of {', '.join(CONFIG_NAMES)}")
        if not self.data_dirs:
            raise ValueError("data_dir: give one or several release folders (audio + Label-Studio export)")
        self.summary = BuildSummary()
        entries = plan_tracks(self.data_dirs, label_mode=cfg.label_mode, use_drop_file=cfg.use_drop_file,
                              summary=self.summary)
        if not entries:
            raise ValueError(f"{', '.join(map(str, self.data_dirs))}: no usable tracks\n{self.summary.format()}")
        splits = split_tracks(entries, validation_fraction=cfg.validation_fraction, seed=cfg.seed, stratify=cfg.stratify)
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"entries": tracks, "split": name})
            for name, tracks in splits.items()
            if tracks or name == "train"
        ]

    # -- per-track work ------------------------------------------------------------------------
    def _decoded(self, entries: list[TrackEntry], is_clips: bool):
        """:meth:`_decode` of each entry, in order; in ``num_workers`` processes when > 1.

        The workers come from a fork server (a clean single-threaded process), not from this
        process: forking a process with threads (a web server's, an audio library's) can copy a lock
        that one of them holds, and the child then waits for it forever (a hang seen in the suite)."""
        import multiprocessing as mp

        if self.num_workers <= 1 or len(entries) < 2:
            for entry in entries:
                yield self._decode(entry, is_clips)
            return
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(min(self.num_workers, len(entries)), initializer=_init_worker,
                                         initargs=(self.config,)) as pool:
            jobs = [(entry, is_clips) for entry in entries]
            for entry, outcome in zip(entries, pool.imap(_decode_in_worker, jobs, chunksize=2)):
                # the worker's analysis cache is lost with it: keep the drops here
                if outcome.drops is not None and len(_ANALYSIS_CACHE) < _ANALYSIS_CACHE_MAX:
                    _ANALYSIS_CACHE[self._cache_key(entry)] = outcome.drops
                yield outcome

    def _accept(self, entry: TrackEntry, outcome: TrackOutcome) -> bool:
        """Record a decoded track in the summary: False (with the reason) when it is skipped."""
        if outcome.skip is not None:
            self.summary.skip(entry.source, entry.audio_path.name, outcome.skip, outcome.detail)
            return False
        for kind in outcome.notes:
            self.summary.note(kind, f"{entry.source}/{entry.audio_path.name}")
        if outcome.drops.from_file:
            self.summary.drops_from_file += 1
        else:
            self.summary.drops_detected += 1
            self.summary.fallback_tracks += int(outcome.drops.fallback)
        return True

    def _generate_examples(self, entries: list[TrackEntry], split: str):
        from tqdm.auto import tqdm

        is_clips = self.config.name == "clips"
        n_tracks = n_clips = 0
        bar = tqdm(total=len(entries), desc=f"{self.config.name}/{split}", unit="track", disable=not self.progress)
        for entry, outcome in zip(entries, self._decoded(entries, is_clips)):
            bar.update()
            if not self._accept(entry, outcome):
                continue
            n_tracks += 1
            drops = outcome.drops
            if is_clips:
                for key, example in outcome.examples:
                    n_clips += 1
                    self.summary.padded_clips += int(example["padded"])
                    yield key, example
            else:
                yield f"{entry.source}/{entry.track_id}", {
                    "audio": {"path": entry.audio_path.name, "bytes": entry.audio_path.read_bytes()},
                    "label": entry.label,
                    "soft_label": entry.soft_label.astype(np.float32),
                    "genres": [g for g, w in zip(GENRES, entry.soft_label) if w > 0],
                    "drop_sections": [[float(a), float(b)] for a, b in drops.sections],
                    "drop_fallback": drops.fallback,
                    "source": entry.source,
                    "track_id": entry.track_id,
                    "task_id": entry.task_id,
                    "duration": drops.duration,
                }
        bar.close()
        self.summary.tracks[split] = n_tracks
        if is_clips:
            self.summary.clips[split] = n_clips


def encode_flac(samples: np.ndarray, sr: int) -> bytes:
    """16-bit FLAC bytes of a mono clip (samples,): lossless for the 16-bit-or-lossy sources, ~1/3 of WAV."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), sr, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _fingerprint(data_dirs: Iterable[Path]) -> str:
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
