"""Issue 26, training: ``kill -9`` anywhere (a checkpoint save included) then resume gives the
uninterrupted run's weights; a checkpoint cut in half is skipped with a warning naming it; a full
disk during a checkpoint save or ``save_pretrained`` is one line and leaves the earlier files
whole; a second run into the same ``output_dir`` is refused.  The tiny release and config of
``test_trainer`` (a ShuffleNet on 32x32 patches, 4 steps)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from fault_tools import entries, kill_when, lock_held, snapshot, start, tmpfs
from test_trainer import ROOT, _run, tiny  # noqa: F401  (tiny: the session fixture)

from housex.trainer.checkpoints import checkpoint_problem

STEPS = ["--max_steps", "4", "--save_strategy", "steps", "--save_steps", "1"]


def _weights(folder: Path) -> bytes:
    return (folder / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def straight(tiny, tmp_path_factory) -> Path:  # noqa: F811
    """The uninterrupted run (checkpoints every step)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    _run(tiny[1], *STEPS, "--output_dir", str(out))
    return out


def _checkpoint_being_written(out: Path, step: int):
    folder = out / f"checkpoint-{step}"
    return lambda: folder.is_dir() and not (folder / "trainer_state.json").exists()


@pytest.mark.slow
def test_training_killed_anywhere_resumes_to_the_uninterrupted_weights(tiny, straight, tmp_path, caplog):  # noqa: F811
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "trainer" / "run.py"), str(tiny[1]), *STEPS, "--output_dir", str(out),
           "--resume_from_checkpoint", "last"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    points = {
        "early: during the first checkpoint save": _checkpoint_being_written(out, 1),
        "mid-way: during the third checkpoint save": _checkpoint_being_written(out, 3),
        "while writing the final model": lambda: bool(entries(out, ".model.tmp-")),
    }
    cut: list[Path] = []
    for point, condition in points.items():
        proc = start(cmd, env=env)
        assert kill_when(proc, condition, timeout=300, poll=0.001), f"the run ended before the kill point {point!r}"
        # this run resumed from the last complete checkpoint: the ones the last kill cut were named
        for folder in cut:
            assert f"skipping {folder}" in proc.output[1], (point, proc.output[1][-3000:])
        cut = [p for p in out.glob("checkpoint-*") if checkpoint_problem(p)]
    with caplog.at_level(logging.WARNING, logger="housex.trainer"):  # the same command, in this process
        _run(tiny[1], *STEPS, "--output_dir", str(out), "--resume_from_checkpoint", "last")
    for folder in cut:
        assert any(f"skipping {folder}" in r.getMessage() for r in caplog.records)
    assert _weights(out) == _weights(straight)
    assert not entries(out, ".model.tmp-") and not entries(out.parent, ".run.lock")


def test_a_checkpoint_cut_in_half_is_skipped_with_a_warning_naming_it(tiny, straight, tmp_path, caplog):  # noqa: F811
    out = tmp_path / "run"
    shutil.copytree(straight, out)
    (out / "model.safetensors").unlink()
    for step in (3, 4):  # two kinds of cut: torn weights, no trainer_state.json
        assert checkpoint_problem(out / f"checkpoint-{step}") is None
    weights = out / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (out / "checkpoint-3" / "trainer_state.json").unlink()
    assert "cut short" in checkpoint_problem(out / "checkpoint-4")
    with caplog.at_level(logging.WARNING, logger="housex.trainer"):
        _run(tiny[1], *STEPS, "--output_dir", str(out), "--resume_from_checkpoint", "last")
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert any(str(out / "checkpoint-4") in m and "model.safetensors" in m for m in skipped), skipped
    assert any(str(out / "checkpoint-3") in m and "trainer_state.json" in m for m in skipped), skipped
    assert _weights(out) == _weights(straight)  # resumed from checkpoint-2
    # named explicitly, a broken checkpoint is an error, never loaded
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="checkpoint-4: model.safetensors"):
        _run(tiny[1], *STEPS, "--output_dir", str(out), "--resume_from_checkpoint", str(out / "checkpoint-4"))


def _train_cli(argv) -> tuple[int, str]:
    from housex.trainer.run import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


def _error_line(err: str, folder: Path) -> str:
    # (the error may follow a progress bar's last redraw on the same line)
    lines = re.findall(r"trainer/run\.py: error: [^\r\n]*", err)
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    line = lines[0]
    assert str(folder) in line and "no space left on device" in line and "needs about" in line and " free" in line, line
    return line


@pytest.mark.slow
def test_training_on_a_full_disk_is_one_line_and_keeps_earlier_files(tiny, straight):  # noqa: F811
    config = tiny[1]
    weights = (straight / "model.safetensors").stat().st_size
    checkpoint = sum(p.stat().st_size for p in (straight / "checkpoint-1").iterdir())
    # up front: not even one checkpoint and the model fit
    with tmpfs(3 * weights) as disk:
        code, err = _train_cli([config, *STEPS, "--output_dir", disk / "run"])
        assert code == 2
        assert "nothing was written" in _error_line(err, disk / "run")
        assert not any((disk / "run").rglob("*"))  # Trainer made the folder, nothing is in it
    # the second checkpoint does not fit: it is removed, the first stays whole
    with tmpfs(int(1.5 * checkpoint)) as disk:
        out = disk / "run"
        code, err = _train_cli([config, *STEPS, "--output_dir", out])
        assert code == 2
        assert "checkpoint-2" in _error_line(err, out) and "earlier ones are intact" in err
        assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1"]
        assert checkpoint_problem(out / "checkpoint-1") is None
    # save_pretrained of the final model does not fit beside the previous model: that one stays whole
    previous = {p.name: p for p in straight.iterdir() if p.is_file()}
    used = sum(-(-p.stat().st_size // 4096) * 4096 for p in previous.values())
    with tmpfs(used + weights + 16_384) as disk:
        out = disk / "run"
        out.mkdir()
        for name, p in previous.items():
            shutil.copy2(p, out / name)
        before = snapshot(out)
        code, err = _train_cli([config, "--max_steps", "1", "--save_strategy", "no", "--output_dir", out])
        assert code == 2
        assert "save_pretrained" in _error_line(err, out) and "unchanged" in err
        assert snapshot(out) == before


def test_second_training_run_into_the_same_output_dir_is_refused(tiny, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    with lock_held(out, "trainer/run.py cpu.yaml") as holder:
        rc, err = _train_cli([tiny[1], "--max_steps", "1", "--output_dir", out])
        assert rc == 2 and f"PID {holder.pid}: trainer/run.py cpu.yaml" in err, err[-2000:]
        assert not out.exists()
