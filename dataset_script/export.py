"""Export the builder's configs as a Hub-ready folder: Parquet shards + a README.md dataset card.

Layout (what ``push_to_hub`` of ``datasets`` writes, so local folder and Hub repo load alike)::

    <out>/README.md                                  YAML: configs, dataset_info, license, tags
    <out>/clips/train-00000-of-00001.parquet
    <out>/clips/validation-00000-of-00001.parquet
    <out>/tracks/train-00000-of-00002.parquet ...

``load_dataset("<out>", "clips")`` (or ``load_dataset("<user>/housex-v2", "clips")`` after
:func:`push_to_hub`) gives the rows the builder wrote.  The folder is written to a temporary
sibling and renamed at the end (swapped with an existing one in one step where the system can), so
a failed or killed build never leaves a half-written folder, and a rerun removes what a killed one
left.  A second build into the same folder is refused while the first runs (:class:`.safe_write.OutputLock`).
Free space is checked up front (the tracks config holds the audio files as they are: exact; the
clips are estimated low); a disk that fills anyway stops the build with one line naming the stage,
the folder, the bytes needed and free (:class:`.safe_write.DiskFullError`).  Parquet shards are
encoded in memory and then written, because Arrow's content-defined chunking aborts the process
(SIGABRT) when a write fails mid-page.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from ..cards import CARDS_DIR
from .build_plan import estimate_output_bytes, peak_bytes, plan_tracks, split_data_dirs
from .build_report import BuildSummary
from .builder import CITATION, CONFIG_NAMES, HOMEPAGE, HouseXBuilder
from .genres import GENRE_DESCRIPTIONS, GENRES
from .paths import check_output_path
from .release import is_synthetic_release, read_truth_header
from .safe_write import (OutputLock, apply_umask, check_free_space, disk_full_error, is_disk_full, remove_stale_temp_files,
                         replace_folder, temp_prefix)

CARD_TEMPLATE = CARDS_DIR / "dataset_card.md"


def _shard_count(ds: datasets.Dataset, max_shard_bytes: int) -> int:
    return max(1, min(len(ds), math.ceil(ds.data.nbytes / max_shard_bytes))) if len(ds) else 1


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _write_parquet(shard: datasets.Dataset, path: Path) -> None:
    """``shard.to_parquet(path)``, encoded in memory first (at most ``max_shard_size``): Arrow's
    content-defined chunking aborts the whole process (SIGABRT) when a write fails in the middle of
    a page, so the file is written by a plain write, whose full disk is an ``OSError``."""
    buffer = io.BytesIO()
    shard.to_parquet(buffer)
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())


def export_dataset(
    data_dirs: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    configs: Sequence[str] = ("tracks", "clips"),
    label_mode: str = "soft",
    seed: int = 42,
    validation_fraction: float = 0.2,
    stratify: bool = False,
    clips_per_section: int = 4,
    clip_seconds: float = 7.5,
    margin_db: float = 1.5,
    min_drop_seconds: float = 15.0,
    skip_seconds: float = 15.0,
    strict: bool = False,
    use_drop_file: bool = True,
    overwrite: bool = False,
    max_shard_size: int = 500 * 2**20,
    pretty_name: str = "HouseX-v2",
    repo_hint: str | None = None,
    progress: bool = True,
    workers: int = 1,
    folds: int = 0,
) -> BuildSummary:
    """Build ``configs`` from the release folders and write them to ``out_dir``.

    Returns the :class:`BuildSummary` (tracks read, tracks/clips written per split, skips with
    reasons).  Raises FileExistsError when ``out_dir`` exists and ``overwrite`` is False, and
    ValueError for unknown configs/options or when no track is usable.
    """
    folders = split_data_dirs(data_dirs)
    configs = list(dict.fromkeys(configs))
    unknown = [c for c in configs if c not in CONFIG_NAMES]
    if unknown or not configs:
        raise ValueError(f"configs: unknown {unknown or configs}; expected some of {', '.join(CONFIG_NAMES)}")
    out_dir = Path(out_dir).absolute()
    check_output_path(out_dir, folders)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a folder; refusing to replace a file with a dataset")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: output folder exists (use overwrite=True / --overwrite to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # clips first: the tracks config then reuses the cached drop analysis instead of decoding again
    order = sorted(configs, key=lambda c: c != "clips")
    options = dict(
        label_mode=label_mode, seed=seed, validation_fraction=validation_fraction, stratify=stratify,
        clips_per_section=clips_per_section, clip_seconds=clip_seconds, margin_db=margin_db,
        min_drop_seconds=min_drop_seconds, skip_seconds=skip_seconds, strict=strict, use_drop_file=use_drop_file,
    )
    if folds:  # only then: a build without folds keeps its builder options (cache key) and bytes
        options["folds"] = folds
    with OutputLock(out_dir):
        remove_stale_temp_files(out_dir.parent, out_dir.name)  # a killed run's leftovers (and its set-aside old output)
        if out_dir.exists() and not overwrite:
            raise FileExistsError(f"{out_dir}: output folder exists (use overwrite=True / --overwrite to replace it)")
        entries = plan_tracks(folders, label_mode=label_mode, use_drop_file=use_drop_file, summary=BuildSummary())
        sizes = estimate_output_bytes(entries, order, clips_per_section=clips_per_section, clip_seconds=clip_seconds)
        needed = peak_bytes(sizes, order)
        check_free_space(out_dir.parent, needed, f"building {out_dir.name}")
        after = f"{out_dir.name} is unchanged and nothing was left behind" if out_dir.exists() else "nothing was left behind"
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out_dir), dir=out_dir.parent))
        apply_umask(tmp)
        stage = "the build"
        try:
            summary = BuildSummary()
            infos, metadata_configs, split_rows = {}, {}, []
            for name in order:
                stage = f"the Arrow cache of the {name} config"
                cache = tmp / f".cache-{name}"
                builder = HouseXBuilder(
                    config_name=name, data_dir=[str(f) for f in folders], cache_dir=str(cache),
                    progress=progress, num_workers=workers, **options,
                )
                builder.download_and_prepare()
                sizes[name] = _folder_bytes(cache)  # now known: its shards take about as much as its cache
                needed = max(needed, peak_bytes(sizes, order))
                _merge(summary, builder.summary, first=(name == order[0]))
                if not any(info.num_examples for info in builder.info.splits.values()):
                    raise ValueError(
                        f"{', '.join(map(str, folders))}: no usable tracks (every track was skipped)\n{summary.format()}"
                    )
                stage = f"the Parquet shards of the {name} config"
                data_files = []
                # a split whose tracks were all skipped while decoding has no rows: leave it out
                for split in [s for s, info in builder.info.splits.items() if info.num_examples > 0]:
                    ds = builder.as_dataset(split=split)
                    n_shards = _shard_count(ds, max_shard_size)
                    (tmp / name).mkdir(exist_ok=True)
                    for i in range(n_shards):
                        _write_parquet(ds.shard(num_shards=n_shards, index=i, contiguous=True),
                                       tmp / name / f"{split}-{i:05d}-of-{n_shards:05d}.parquet")
                    data_files.append({"split": split, "path": f"{name}/{split}-*"})
                    split_rows.append(
                        {"config": name, "split": split, "rows": len(ds), "tracks": len(set(ds["track_id"]))}
                    )
                    del ds
                info = builder.info.copy()
                info.splits = datasets.SplitDict(
                    {k: v for k, v in info.splits.items() if v.num_examples > 0}, dataset_name=info.dataset_name
                )
                info.config_name = name
                infos[name] = info
                metadata_configs[name] = {"data_files": data_files, **({"default": True} if name == "clips" else {})}
                del builder
                shutil.rmtree(cache, ignore_errors=True)  # its shards are written: free its disk for the next

            stage = "the dataset card"
            generators = {f.name: read_truth_header(f) for f in folders if is_synthetic_release(f)}
            card = render_card(
                summary, infos, metadata_configs, split_rows, sources=[f.name for f in folders], generators=generators,
                pretty_name=pretty_name, repo_hint=repo_hint or out_dir.name, options=options,
            )
            card.save(tmp / "README.md")
            stage = f"putting the new {out_dir.name} in place"
            replace_folder(tmp, out_dir)
            forget_cached_copies(out_dir, configs)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(e):
                raise disk_full_error(out_dir.parent, f"{stage} of {out_dir.name}", needed, after=after) from None
            raise
    summary.out_dir = str(out_dir)
    return summary


def local_data_files(folder: str | os.PathLike, config: str) -> dict[str, list[str]] | None:
    """``{split: [path patterns]}`` of ``config`` as the card of a local dataset folder declares it, or None.

    Passing these to ``load_dataset(folder, config, data_files=...)`` makes datasets key its cache on the
    files themselves (absolute paths and modification times), not on the folder's name alone.
    """
    card = Path(folder) / "README.md"
    if not card.is_file():
        return None
    for entry in DatasetCard.load(card).data.get("configs") or []:
        if entry.get("config_name") == config and isinstance(entry.get("data_files"), list):
            out: dict[str, list[str]] = {}
            for item in entry["data_files"]:
                paths = item["path"] if isinstance(item["path"], list) else [item["path"]]
                out.setdefault(item["split"], []).extend(paths)
            return out
    return None


def forget_cached_copies(out_dir: Path, configs: Sequence[str]) -> None:
    """Remove datasets' default-cache copies of a local folder's configs.

    datasets caches a local folder under its name and config only, so after a rebuild a plain
    ``load_dataset(folder, config)`` would silently return the previous build's rows when the split
    sizes happen to match (a different ``--folds``, seed or label mode).
    """
    for name in configs:
        try:
            cache = Path(datasets.load_dataset_builder(str(out_dir), name).cache_dir)
        except Exception:  # noqa: BLE001 - nothing cached, or an unusual cache setup: nothing to forget
            continue
        if cache.is_dir():
            shutil.rmtree(cache, ignore_errors=True)


def _merge(total: BuildSummary, part: BuildSummary, *, first: bool) -> None:
    if first:
        total.tracks_read = part.tracks_read
        total.drops_from_file, total.drops_detected = part.drops_from_file, part.drops_detected
        total.fallback_tracks, total.padded_clips = part.fallback_tracks, part.padded_clips
        total.tracks = dict(part.tracks)
    for split, n in part.clips.items():
        total.clips[split] = n
    for s in part.skipped:
        total.skip(s.source, s.name, s.reason, s.detail)
    for kind, names in part.notes.items():
        for where in names:
            total.note(kind, where)


def render_card(
    summary: BuildSummary,
    infos: dict[str, datasets.DatasetInfo],
    metadata_configs: dict[str, dict],
    split_rows: list[dict],
    *,
    sources: Sequence[str],
    generators: dict[str, dict],
    pretty_name: str,
    repo_hint: str,
    options: dict,
) -> DatasetCard:
    """README.md with the YAML that ``load_dataset`` reads (``configs``, ``dataset_info``).

    Everything the card states comes from this build: the configs and splits it wrote
    (``metadata_configs``, ``split_rows``), its options (clip policy, drop rule), its summary, and
    for a synthetic source folder the generator's settings (``generators``: folder name -> the
    header of its ``generator-truth.json``).
    """
    synthetic = bool(generators)
    if not CARD_TEMPLATE.is_file():
        raise FileNotFoundError(f"{CARD_TEMPLATE}: dataset card template not found")
    tags = ["music", "audio", "house-music", "music-genre-classification", "soft-labels"]
    if synthetic:
        tags.append("synthetic")
    card_data = DatasetCardData(
        pretty_name=pretty_name,
        license="bsd-3-clause",
        task_categories=["audio-classification"],
        tags=tags,
        size_categories=[_size_category(max((r["rows"] for r in split_rows), default=0))],
        source_datasets=["original"] if not synthetic else [],
    )
    # the same helpers datasets' own push_to_hub uses to write these YAML fields
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    MetadataConfigs(metadata_configs).to_dataset_card_data(card_data)
    return DatasetCard.from_template(
        card_data,
        template_path=str(CARD_TEMPLATE),
        pretty_name=pretty_name,
        synthetic=synthetic,
        generators=generators,
        homepage=HOMEPAGE,
        citation=CITATION,
        sources=list(sources),
        repo_hint=repo_hint,
        config_names=list(metadata_configs),
        split_rows=split_rows,
        genres=[{"name": g, "description": GENRE_DESCRIPTIONS.get(g, "")} for g in GENRES],
        summary=summary,
        skip_counts=sorted(summary.skip_counts().items()),
        **options,
    )


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M"


def push_to_hub(folder: str | os.PathLike, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload an exported folder as a Hub dataset repo (created when missing); returns its URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise FileNotFoundError(f"{folder}: not an exported dataset folder (README.md missing)")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                      commit_message="Upload HouseX-v2 dataset (housex build)")
    return f"https://huggingface.co/datasets/{repo_id}"
