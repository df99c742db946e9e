"""Issue 26, ``housex review``: ``kill -9`` while the report is written, a full disk, a second run at
once: the previous report stays whole, a rerun gives the uninterrupted report."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest
from fault_tools import HOUSEX, kill_on_create, lock_held, one_line_disk_error, snapshot, start, tmpfs
from test_builder import _write, good_track, make_release
from test_inference import tiny_model

from housex.cli import main as housex_main


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("review")
    release = root / "release"
    make_release(release, {f"t{i}.flac": None for i in range(4)})
    for i in range(4):
        _write(release, f"t{i}.flac", good_track(30 + i), 22050)
    dataset = root / "ds"
    assert housex_main(["build", "--data-dir", str(release), "--out", str(dataset), "--config", "clips", "--quiet",
                        "--clip-seconds", "3", "--min-drop-seconds", "4", "--skip-seconds", "2",
                        "--validation-fraction", "0"]) == 0
    model = tiny_model(root / "model", clip_seconds=3.0, backbone="patch_cnn_small")
    argv = ["review", "--dataset", str(dataset), "--model", str(model), "--split", "train", "--top", "0"]
    reference = root / "reference"
    assert _cli([*argv, "--out", str(reference)])[0] == 0
    older = root / "older"  # an earlier report (another top) that a rerun replaces
    assert _cli([*argv, "--out", str(older), "--top", "3"])[0] == 0
    return {"argv": argv, "reference": snapshot(reference), "older": older, "older_snapshot": snapshot(older)}


def _cli(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = housex_main([str(a) for a in argv])
    return code, err.getvalue()


@pytest.mark.slow
def test_review_killed_while_writing_keeps_the_previous_report_and_reruns(setup, tmp_path):
    out = tmp_path / "review"
    shutil.copytree(setup["older"], out)
    assert kill_on_create(start([*HOUSEX, *setup["argv"], "--out", str(out)]), tmp_path, ".review.tmp-")
    assert snapshot(out) == setup["older_snapshot"]  # the previous report, whole
    assert _cli([*setup["argv"], "--out", str(out)])[0] == 0
    assert snapshot(out) == setup["reference"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["review"]  # the killed run's temporary folder is gone


def test_review_on_a_full_disk_keeps_the_previous_report(setup):
    older = sum(p.stat().st_size for p in setup["older"].rglob("*") if p.is_file())
    with tmpfs(older + 64_000) as disk:
        out = disk / "review"
        shutil.copytree(setup["older"], out)
        code, err = _cli([*setup["argv"], "--out", str(out)])
        assert code == 2
        assert "nothing was written" in one_line_disk_error(err, disk)  # the clips to copy are known: checked up front
        assert snapshot(out) == setup["older_snapshot"]
        assert sorted(p.name for p in disk.iterdir()) == ["review"]


def test_review_refuses_a_folder_of_other_files_and_a_second_run(setup, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep")
    code, err = _cli([*setup["argv"], "--out", str(notes)])
    assert code == 2 and "not a review report" in err and (notes / "mine.txt").read_text() == "keep"
    out = tmp_path / "review"
    with lock_held(out, "housex review") as holder:
        code, err = _cli([*setup["argv"], "--out", str(out)])
        assert code == 2 and f"PID {holder.pid}: housex review" in err
