"""``housex embed``: every layer of a frozen encoder, once per clip, cached on disk.

One pass of a frozen audio encoder (:func:`housex.trainer.encoders.load_encoder`) over every clip of
every split of a clips dataset stores per clip the time-pooled hidden states of every layer
(``[layers + 1, hidden]``, masked mean over real frames, float16 on disk:
:func:`housex.modeling.modeling_encoder_classifier.layer_states` / ``pooled_layers``, the same code the
fine-tuned encoder classifier runs) with ``clip_id``, ``track_id``, ``split`` and ``soft_label``.

Layout of the output folder::

    provenance.json          the cache key (encoder + revision or folder hash, transformers/torch
                             versions, extractor config, dtype, clip length, pooling, dataset
                             fingerprint) and its sha256
    shards/<split>-<k>.safetensors   embeddings (n, layers + 1, hidden) float16
    shards/<split>-<k>.parquet       clip_id, track_id, split, soft_label, row (written last: a shard
                                     is complete when its .parquet exists; both are written to a
                                     temporary name and renamed)
    embeddings.json          the manifest, written by process 0 once every shard exists

A rerun with the same key reuses every complete shard (an interrupted run resumes where it stopped);
a different key is refused with a message naming what changed, unless ``overwrite``.  Several
processes (``accelerate launch``) each embed every N-th shard; process 0 waits for all and writes the
manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dataset_script.safe_write import (OutputLock, atomic_path, check_free_space, disk_full_error, is_disk_full,
                                         remove_stale_temp_files)

logger = logging.getLogger("housex.trainer.embeddings")

FORMAT_VERSION = 1
POOLING = "masked-mean"
PROVENANCE = "provenance.json"
MANIFEST = "embeddings.json"
SHARDS = "shards"
DTYPES = ("float32", "bfloat16", "float16")


# --------------------------------------------------------------------------------------------
# cache key
# --------------------------------------------------------------------------------------------
def folder_hash(folder: Path) -> str:
    """sha256 over the relative paths and bytes of every file of a model folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def dataset_fingerprint(splits: dict) -> dict:
    """Per split: clip count and a sha256 of its clip ids and soft labels (what the embeddings are of)."""
    out = {}
    for name, clips in splits.items():
        digest = hashlib.sha256("\n".join(clips.ids).encode())
        digest.update(np.ascontiguousarray(clips.soft_labels, dtype=np.float64).tobytes())
        out[name] = {"clips": len(clips), "sha256": digest.hexdigest()}
    return out


def cache_key(encoder_name: str, encoder, extractor, *, revision, dtype: str, clip_seconds: float, splits: dict) -> dict:
    import torch
    import transformers

    local = Path(encoder_name).is_dir()
    key = {
        "format": FORMAT_VERSION,
        "encoder": encoder_name,
        "encoder_class": type(encoder).__name__,
        "revision": None if local else (revision or getattr(encoder.config, "_commit_hash", None)),
        "folder_sha256": folder_hash(Path(encoder_name)) if local else None,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "extractor": json.loads(extractor.to_json_string()),
        "dtype": dtype,
        "clip_seconds": clip_seconds,
        "pooling": POOLING,
        "dataset": dataset_fingerprint(splits),
    }
    key["extractor"].pop("processor_class", None)
    return key


def key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _differences(old: dict, new: dict) -> list[str]:
    return [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def _atomic(path: Path, write) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def write_shard(folder: Path, stem: str, embeddings: np.ndarray, rows: dict) -> None:
    """``<stem>.safetensors`` then ``<stem>.parquet`` (the completion marker), each atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from safetensors.numpy import save_file

    _atomic(folder / f"{stem}.safetensors",
            lambda p: save_file({"embeddings": np.ascontiguousarray(embeddings, dtype=np.float16)}, str(p)))
    table = pa.table({
        "clip_id": pa.array(rows["clip_id"], pa.string()),
        "track_id": pa.array(rows["track_id"], pa.string()),
        "split": pa.array(rows["split"], pa.string()),
        "soft_label": pa.array([list(map(float, r)) for r in rows["soft_label"]], pa.list_(pa.float32())),
        "row": pa.array(rows["row"], pa.int64()),
    })
    _atomic(folder / f"{stem}.parquet", lambda p: pq.write_table(table, str(p)))


def extractor_call(extractor, waveforms: list[np.ndarray], sampling_rate: int):
    """The feature extractor on a batch of mono clips: tensors, a frame/sample mask where it gives one,
    padding to the longest clip where its default is no padding (Whisper-style extractors keep their
    fixed length, CLAP its repeat-padding)."""
    params = inspect.signature(extractor.__call__).parameters
    kwargs = {"sampling_rate": sampling_rate, "return_tensors": "pt"}
    if "return_attention_mask" in params:
        kwargs["return_attention_mask"] = True
    if "padding" in params and params["padding"].default in (False, None) and type(extractor).__name__ != "ClapFeatureExtractor":
        kwargs["padding"] = "longest"
    return extractor(waveforms, **kwargs)


def _shard_plan(splits: dict, shard_size: int) -> list[tuple[str, str, list[int]]]:
    plan = []
    for split, clips in splits.items():
        for k, start in enumerate(range(0, len(clips), shard_size)):
            plan.append((split, f"{split}-{k:05d}", list(range(start, min(start + shard_size, len(clips))))))
    return plan


def _check_or_write_provenance(out: Path, key: dict, overwrite: bool, is_main: bool) -> None:
    path = out / PROVENANCE
    record = {"key": key, "sha256": key_hash(key)}
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e}); remove the folder or pass --overwrite") from None
        if old.get("sha256") == record["sha256"]:
            return
        if not overwrite:
            changed = ", ".join(_differences(old.get("key", {}), key)) or "format"
            raise ValueError(f"{out}: holds embeddings of another cache key (changed: {changed}); "
                             "use another --out or pass --overwrite")
        if is_main:
            shutil.rmtree(out / SHARDS, ignore_errors=True)
            (out / MANIFEST).unlink(missing_ok=True)
    elif out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out}: exists and is not an embeddings folder (no {PROVENANCE}); use another --out")
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        _atomic(path, lambda p: p.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8"))


def embed(encoder_name: str, dataset: str, out: str | os.PathLike, *, batch_size: int = 8, device: str | None = None,
          dtype: str = "float32", trust_remote_code: bool = False, revision: str | None = None,
          overwrite: bool = False, shard_size: int = 256, splits: list[str] | None = None) -> Path:
    """Embed every clip of ``dataset`` (all splits, or ``splits``) with ``encoder_name`` into ``out``.

    One run at a time writes ``out`` (a second is refused naming the first: a lock file beside it,
    held by process 0).  Free space for the shards still to write is checked once the first is
    computed; a disk that fills anyway stops the run with one line, every shard written being whole."""
    from accelerate import PartialState

    main = PartialState(cpu=device == "cpu").is_main_process
    with OutputLock(out) if main else contextlib.nullcontext():
        return _embed(encoder_name, dataset, out, batch_size=batch_size, device=device, dtype=dtype,
                      trust_remote_code=trust_remote_code, revision=revision, overwrite=overwrite,
                      shard_size=shard_size, splits=splits)


def _embed(encoder_name: str, dataset: str, out: str | os.PathLike, *, batch_size: int, device: str | None,
           dtype: str, trust_remote_code: bool, revision: str | None, overwrite: bool, shard_size: int,
           splits: list[str] | None) -> Path:
    import datasets
    import torch
    from accelerate import PartialState

    from ..modeling.modeling_encoder_classifier import layer_states, pooled_layers
    from .baselines.common import load_clips
    from .encoders import load_encoder

    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    if batch_size < 1 or shard_size < 1:
        raise ValueError("--batch-size and the shard size must be >= 1")
    state = PartialState(cpu=device == "cpu")
    device = device or str(state.device)
    out = Path(out)
    torch_dtype = getattr(torch, dtype)
    encoder, extractor = load_encoder(encoder_name, revision=revision, trust_remote_code=trust_remote_code,
                                      dtype=torch_dtype)
    encoder.to(device)
    rate = int(extractor.sampling_rate)
    try:
        names = splits or datasets.get_dataset_split_names(str(dataset), "clips")
    except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError, ValueError) as e:
        raise FileNotFoundError(f"dataset {dataset}: cannot read its clips config ({str(e).splitlines()[0]})") from None
    data = {name: load_clips(dataset, name, sampling_rate=rate) for name in names}
    seconds = max(c.seconds for c in data.values())
    key = cache_key(encoder_name, encoder, extractor, revision=revision, dtype=dtype, clip_seconds=seconds, splits=data)
    if state.is_main_process:
        _check_or_write_provenance(out, key, overwrite, True)
    state.wait_for_everyone()
    if not state.is_main_process:
        _check_or_write_provenance(out, key, False, False)
    shards = out / SHARDS
    shards.mkdir(parents=True, exist_ok=True)
    if state.is_main_process:  # what a killed run was writing (never renamed into place)
        remove_stale_temp_files(shards)
        remove_stale_temp_files(out)
    state.wait_for_everyone()
    plan = _shard_plan(data, shard_size)
    mine = [p for i, p in enumerate(plan) if i % state.num_processes == state.process_index]
    done = 0
    needed = None
    for split, stem, rows in mine:
        if (shards / f"{stem}.parquet").is_file() and (shards / f"{stem}.safetensors").is_file():
            done += 1
            continue
        clips = data[split]
        pooled = []
        for indices, waves in clips.batches(batch_size, rows):
            inputs = extractor_call(extractor, waves, rate)
            inputs = {k: (v.to(device, torch_dtype) if v.is_floating_point() else v.to(device)) for k, v in inputs.items()
                      if isinstance(v, torch.Tensor)}
            with torch.inference_mode():
                states, masks = layer_states(encoder, inputs)
                pooled.append(pooled_layers([s.float() for s in states], masks).cpu().numpy())
        pooled = np.concatenate(pooled)
        if needed is None:  # the first shard to write: now the size of every one still to write is known
            todo = sum(len(r) for _, st, r in mine if not (shards / f"{st}.parquet").is_file())
            needed = todo * (pooled[0].size * 2 + 200)  # float16 states + the row's columns
            check_free_space(out, needed, f"the embeddings of {todo} clips", after="no shard was written")
        try:
            write_shard(shards, stem, pooled, {
                "clip_id": [clips.ids[i] for i in rows],
                "track_id": [str(t) for t in clips.dataset.select(rows)["track_id"]],
                "split": [split] * len(rows),
                "soft_label": clips.soft_labels[rows],
                "row": rows,
            })
        except Exception as e:
            if not is_disk_full(e):
                raise
            raise disk_full_error(out, "the embeddings", needed,
                                  after="every shard written is whole: free some space and rerun to embed the rest") from None
        logger.info("embedded %s (%d clips)", stem, len(rows))
    if done:
        logger.info("%d shard(s) were already complete (same cache key): reused", done)
    state.wait_for_everyone()
    if state.is_main_process:
        write_manifest(out, key, plan)
    state.wait_for_everyone()
    return out


def write_manifest(out: Path, key: dict, plan: list) -> None:
    from safetensors import safe_open

    missing = [stem for _, stem, _ in plan if not (out / SHARDS / f"{stem}.parquet").is_file()]
    if missing:
        raise RuntimeError(f"{out}: shards missing after the run: {', '.join(missing[:5])}")
    shape = None
    for _, stem, _ in plan[:1]:
        with safe_open(str(out / SHARDS / f"{stem}.safetensors"), "np") as f:
            shape = list(f.get_slice("embeddings").get_shape()[1:])
    splits: dict = {}
    for split, stem, rows in plan:
        entry = splits.setdefault(split, {"clips": 0, "shards": []})
        entry["clips"] += len(rows)
        entry["shards"].append(stem)
    manifest = {"encoder": key["encoder"], "num_states": shape[0], "hidden_size": shape[1], "dtype_on_disk": "float16",
                "pooling": POOLING, "splits": splits, "cache_key_sha256": key_hash(key)}
    _atomic(out / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
@dataclass
class EmbeddedSplit:
    """One split of an embeddings folder: ``features`` (N, layers + 1, hidden) float32 and its rows."""

    features: np.ndarray
    clip_ids: list[str]
    track_ids: list[str]
    soft_labels: np.ndarray  # (N, 8)

    def __len__(self) -> int:
        return len(self.clip_ids)


@dataclass
class Embeddings:
    folder: Path
    encoder: str
    splits: dict[str, EmbeddedSplit]

    @property
    def num_states(self) -> int:
        return next(iter(self.splits.values())).features.shape[1]


def load_embeddings(folder: str | os.PathLike) -> Embeddings:
    """An embeddings folder written by :func:`embed` (one-line errors for anything else)."""
    import pyarrow.parquet as pq
    from safetensors.numpy import load_file

    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {MANIFEST} (not an embeddings folder written by `housex embed`, "
                                "or its run has not finished)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        splits = {}
        for split, entry in manifest["splits"].items():
            arrays, tables = [], []
            for stem in entry["shards"]:
                arrays.append(load_file(str(folder / SHARDS / f"{stem}.safetensors"))["embeddings"])
                tables.append(pq.read_table(folder / SHARDS / f"{stem}.parquet"))
            features = np.concatenate(arrays).astype(np.float32)
            clip_ids = [c for t in tables for c in t.column("clip_id").to_pylist()]
            track_ids = [c for t in tables for c in t.column("track_id").to_pylist()]
            soft = np.asarray([r for t in tables for r in t.column("soft_label").to_pylist()], dtype=np.float64)
            if len(features) != entry["clips"] or len(clip_ids) != entry["clips"]:
                raise ValueError(f"{folder}: split {split} has {len(features)} embeddings, the manifest says {entry['clips']}")
            splits[split] = EmbeddedSplit(features, clip_ids, track_ids, soft)
    except (KeyError, FileNotFoundError, json.JSONDecodeError) as e:
        raise ValueError(f"{folder}: incomplete or damaged embeddings folder ({type(e).__name__}: {e})") from None
    return Embeddings(folder, manifest["encoder"], splits)


__all__ = ["embed", "load_embeddings", "Embeddings", "EmbeddedSplit", "cache_key", "key_hash", "extractor_call"]
