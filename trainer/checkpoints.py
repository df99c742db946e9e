"""Checkpoints and the final model folder that survive ``kill -9`` and a full disk.

``Trainer`` writes ``checkpoint-N/`` file by file, ``trainer_state.json`` last, and the final model
straight into ``output_dir``.  Here:

- :func:`checkpoint_problem` says why a ``checkpoint-N`` folder cannot be resumed from (no or torn
  ``trainer_state.json`` — the file ``Trainer`` writes last —, a step that is not N, weights or
  optimizer state cut short), and :func:`last_complete_checkpoint` picks the newest good one,
  naming each one it skips in a warning, so a checkpoint cut in half by a kill is never loaded;
- :class:`SafeSavingMixin` writes the final model (``save_model``: ``save_pretrained`` of the model
  and feature extractor) into a temporary folder and renames each file into place, so a full disk
  or a kill leaves the previous model files whole; a full disk during a checkpoint save removes the
  half-written checkpoint and stops with one line naming the folder, the bytes needed and free
  (:func:`..dataset_script.safe_write.disk_full_error`), and :meth:`SafeSavingMixin.check_free_space`
  checks up front for one checkpoint and the final model.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

from ..dataset_script.safe_write import (check_free_space, disk_full_error, free_bytes, is_disk_full,
                                         remove_stale_temp_files, temp_prefix)

logger = logging.getLogger("housex.trainer")

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# torch.save reports a failed write as a RuntimeError without errno: when a save fails and less
# than this is free, the disk was full.
NEARLY_FULL = 1 << 20


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` (a ``checkpoint-N``) cannot be resumed from, or None when it is complete."""
    folder = Path(folder)
    m = CHECKPOINT_RE.match(folder.name)
    state_file = folder / "trainer_state.json"
    if not state_file.is_file():
        return "no trainer_state.json (the save was cut short)"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "trainer_state.json is cut short"
    if m and state.get("global_step") != int(m.group(1)):
        return f"trainer_state.json is of step {state.get('global_step')}"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "no model weights (*.safetensors)"
    for path in weights:
        problem = _safetensors_problem(path)
        if problem:
            return f"{path.name}: {problem}"
    for path in sorted(folder.glob("*.pt")) + sorted(folder.glob("*.pth")):
        try:
            with zipfile.ZipFile(path):
                pass
        except (OSError, zipfile.BadZipFile) as e:
            return f"{path.name}: {e}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file whose header does not parse or whose data is shorter than its header says."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                return "header cut short"
            header = json.loads(f.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return "header does not parse"
    if 8 + n + end != size:
        return f"{size} bytes where the header needs {8 + n + end} (cut short)"
    return None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` of ``output_dir`` that :func:`checkpoint_problem` finds complete;
    each newer one is named in a warning with what is wrong with it."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in folder.iterdir()
                    if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))), reverse=True)
    for _, path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        logger.warning("resume: skipping %s: %s", path, problem)
    return None


def checkpoint_step(folder: str | os.PathLike) -> int:
    return int(json.loads(Path(folder, "trainer_state.json").read_text(encoding="utf-8"))["global_step"])


class SafeSavingMixin:
    """For a ``Trainer`` subclass: atomic final save, one-line full-disk errors, an up-front check,
    and a resume from a checkpoint that already holds the last step."""

    def train_or_restore(self, resume_from_checkpoint: str | None):
        """``train(resume_from_checkpoint=...)``, except from a checkpoint of step ``max_steps``:
        ``Trainer`` (transformers 5.25) would then train one step more before it stops (its stop test
        comes after a step), so a run killed after its last checkpoint would not end with the
        uninterrupted run's weights.  That checkpoint's weights and state are loaded instead, and then,
        with ``load_best_model_at_end``, the best checkpoint's weights, as ``train`` would at its end.
        Returns the train metrics (none when restored)."""
        if resume_from_checkpoint and 0 < self.args.max_steps <= checkpoint_step(resume_from_checkpoint):
            from transformers.trainer_callback import TrainerState

            logger.info("resume: %s holds the last step (%d): loading it, nothing left to train",
                        resume_from_checkpoint, self.args.max_steps)
            self._load_from_checkpoint(resume_from_checkpoint)
            self.state = TrainerState.load_from_json(str(Path(resume_from_checkpoint, "trainer_state.json")))
            if self.args.load_best_model_at_end and self.state.best_model_checkpoint is not None:
                self._load_best_model()
            return {}
        return dict(self.train(resume_from_checkpoint=resume_from_checkpoint).metrics)

    def bytes_needed(self) -> int:
        """About what this run writes at once: one checkpoint (weights + optimizer state) and the
        final weights.  Adam-style optimizers keep two tensors per parameter."""
        weights = sum(p.numel() * p.element_size() for p in self.model.parameters())
        checkpoint = 0
        if str(getattr(self.args.save_strategy, "value", self.args.save_strategy)) != "no":
            checkpoint = weights * (1 if self.args.save_only_model else 3)
        return weights + checkpoint

    def check_free_space(self) -> None:
        if self.args.should_save:
            check_free_space(self.args.output_dir, self.bytes_needed(), f"the checkpoints and model of {Path(self.args.output_dir).name}")

    def _disk_full(self, e: BaseException, folder: Path) -> bool:
        return is_disk_full(e) or (isinstance(e, (OSError, RuntimeError)) and free_bytes(folder) < NEARLY_FULL)

    def _save_checkpoint(self, model, trial):
        run_dir = Path(self._get_output_dir(trial=trial))
        folder = run_dir / f"checkpoint-{self.state.global_step}"
        try:
            super()._save_checkpoint(model, trial)
        except Exception as e:
            if not (self.args.should_save and self._disk_full(e, run_dir)):
                raise
            shutil.rmtree(folder, ignore_errors=True)
            raise disk_full_error(run_dir, f"the checkpoint {folder.name}", self.bytes_needed(),
                                  after="the half-written checkpoint was removed, the earlier ones are intact") from None

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """``Trainer.save_model``; the final save (not a checkpoint's) goes to a temporary folder
        first and each file is then renamed into ``output_dir``: a full disk or a kill while
        ``save_pretrained`` writes leaves the previous model files whole."""
        if _internal_call or not self.args.should_save:
            return super().save_model(output_dir, _internal_call)
        out = Path(output_dir if output_dir is not None else self.args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(out, "model")
        staging = out / f"{temp_prefix(out / 'model')}{os.urandom(4).hex()}"
        try:
            super().save_model(str(staging), _internal_call)
            for path in sorted(staging.iterdir()):
                os.replace(path, out / path.name)
        except Exception as e:
            if not self._disk_full(e, out):
                raise
            raise disk_full_error(out, "the model (save_pretrained)", self.bytes_needed(),
                                  after=f"the model files in {out.name} are unchanged") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
