"""The HouseX-v2 ``datasets`` builder: release folders → configs ``tracks`` and ``clips``.

``datasets`` 5 has no loading scripts, so the builder is a class you instantiate::

    builder = HouseXBuilder(config_name="clips", data_dir="release-a,release-b", seed=42)
    builder.download_and_prepare()
    ds = builder.as_dataset()          # DatasetDict(train=..., validation=...)
    print(builder.summary.format())    # tracks read / written / skipped with reasons

``num_workers=N`` analyses, cuts and encodes the tracks in N worker processes; the files written
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

``folds=K`` adds a ``fold`` column (0..K-1) to both configs: a stratified group K-fold by track over
all tracks (:func:`.build_plan.assign_folds`), for cross-validation (train on K-1 folds, score the
held-out one); the ``train``/``validation`` split is the same with or without it.

The jobs live in their own modules: :mod:`.build_plan` (which tracks, the split),
:mod:`.track_processing` (per-track analysis, clips, FLAC, the worker pool) and
:mod:`.build_report` (skip reasons and the summary); this module is the ``datasets`` builder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import datasets
import numpy as np

from .build_plan import TrackEntry, assign_folds, plan_tracks, release_fingerprint, split_data_dirs, split_tracks
from .build_report import BuildSummary
from .genres import GENRES
from .track_processing import TrackProcessor, process_tracks

CONFIG_NAMES = ("tracks", "clips")
CITATION = """@misc{housex-v2,
  title  = {HouseX-v2: sub-genre classification of mainstage house music with soft labels},
  author = {{HouseX-v2 authors}},
  howpublished = {\\url{https://github.com/Gariscat/housex-v2}},
  note   = {Paper and code; cite the paper as given in the repository's README},
}"""
HOMEPAGE = "https://github.com/Gariscat/housex-v2"


def features_for(config_name: str, folds: bool = False) -> datasets.Features:
    """The columns of a config (``folds``: with the ``fold`` column at the end)."""
    features = _features(config_name)
    if folds:
        features["fold"] = datasets.Value("int32")
    return features


def _features(config_name: str) -> datasets.Features:
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
    folds: int = 0  # > 1: a ``fold`` column, stratified group K-fold by track (0: none)


class HouseXBuilder(datasets.GeneratorBasedBuilder):
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
        # processes that analyse, cut and encode tracks (the output does not depend on it)
        self.num_workers = int(num_workers)
        self.summary = BuildSummary()
        if data_dir is not None and kwargs.get("hash") is None:
            # Cache key covers the release files too, so edited exports/audio are not served stale.
            kwargs["hash"] = release_fingerprint(self.data_dirs)
        joined = os.pathsep.join(str(d) for d in self.data_dirs) if data_dir is not None else None
        super().__init__(*args, data_dir=joined, writer_batch_size=writer_batch_size, **kwargs)
        if writer_batch_size is None:
            # Whole tracks are MBs each: flush often to keep memory bounded.
            self._writer_batch_size = 8 if self.config.name == "tracks" else 64

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="HouseX-v2: 8 mainstage house sub-genres with soft labels; drop clips and tracks.",
            features=features_for(self.config.name, folds=bool(self.config.folds)),
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
        folds = assign_folds(entries, cfg.folds, seed=cfg.seed) if cfg.folds else None
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"entries": tracks, "split": name, "folds": folds})
            for name, tracks in splits.items()
            if tracks or name == "train"
        ]

    def _generate_examples(self, entries: list[TrackEntry], split: str, folds: dict | None = None):
        from tqdm.auto import tqdm

        is_clips = self.config.name == "clips"
        n_tracks = n_clips = 0
        # disable=None: tqdm's own test, a bar only on a terminal
        bar = tqdm(total=len(entries), desc=f"{self.config.name}/{split}", unit="track",
                   disable=None if self.progress else True)
        processor = TrackProcessor(self.config)
        outcomes = process_tracks(processor, entries, with_clips=is_clips, num_workers=self.num_workers)
        for entry, outcome in zip(entries, outcomes):
            bar.update()
            if not self.summary.record_track(entry.source, entry.audio_path.name, outcome):
                continue
            n_tracks += 1
            drops = outcome.drops
            fold = {} if folds is None else {"fold": folds[(entry.source, entry.track_id)]}
            if is_clips:
                for key, example in outcome.examples:
                    n_clips += 1
                    self.summary.padded_clips += int(example["padded"])
                    yield key, {**example, **fold}
            else:
                yield f"{entry.source}/{entry.track_id}", {
                    **fold,
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
