"""Issue 15: a build can never destroy its inputs, leave debris, or die on one bad track."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_builder import PARAMS, _write, good_track, make_release

from housex.cli import main as cli_main
from housex.dataset_script.export import export_dataset
from housex.dataset_script.paths import OutputPathError, check_output_path

CLI = ["--clip-seconds", "3", "--min-drop-seconds", "4", "--skip-seconds", "2", "--clips-per-section", "2",
       "--quiet", "--validation-fraction", "0"]


@pytest.fixture()
def rel(tmp_path) -> Path:
    folder = tmp_path / "rel"
    make_release(folder, {"t0.flac": None, "t1.flac": None})
    _write(folder, "t0.flac", good_track(20), 22050)
    _write(folder, "t1.flac", good_track(21), 22050)
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli_main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize("where", ["same", "parent", "inside", "symlink"])
def test_build_output_never_is_contains_or_sits_inside_an_input(rel, tmp_path, monkeypatch, where):
    before = _snapshot(rel)
    if where == "same":
        out = str(rel)
    elif where == "parent":
        monkeypatch.chdir(tmp_path)  # `--out .` from the release's parent
        out = "."
    elif where == "inside":
        out = str(rel / "dataset")
    else:
        link = tmp_path / "link"
        link.symlink_to(rel, target_is_directory=True)
        out = str(link)
    code, err = _cli(["build", "--data-dir", str(rel), "--out", out, "--overwrite", *CLI])
    assert code == 2
    assert "--out" in err and "input" in err and err.count("\n") == 1, err
    assert _snapshot(rel) == before
    assert not (rel / "dataset").exists()


def test_out_that_is_a_file_is_refused_not_replaced(rel, tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    code, err = _cli(["build", "--data-dir", str(rel), "--out", str(out), "--overwrite", *CLI])
    assert code == 2 and "not a folder" in err
    assert out.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "rel"]


def test_check_output_path_allows_siblings_and_names_the_option(tmp_path):
    (tmp_path / "a").mkdir()
    assert check_output_path(tmp_path / "b", [tmp_path / "a"]) == (tmp_path / "b").resolve()
    with pytest.raises(OutputPathError, match="--output_dir .*lies inside the input folder"):
        check_output_path(tmp_path / "a" / "run", [tmp_path / "a"], option="--output_dir")
    track = tmp_path / "a" / "mix.flac"
    track.write_bytes(b"x")
    with pytest.raises(OutputPathError, match="is the input"):
        check_output_path(track, [track])
    # a file input: writing next to it is fine
    assert check_output_path(tmp_path / "a" / "mix-timeline", [track])


def test_dataset_folder_follows_the_umask(rel, tmp_path):
    old = os.umask(0o022)
    try:
        export_dataset(rel, tmp_path / "ds", configs=("clips",), validation_fraction=0.0, progress=False, **PARAMS)
    finally:
        os.umask(old)
    assert (tmp_path / "ds").stat().st_mode & 0o777 == 0o755


def test_stale_temp_folders_of_killed_runs_are_removed(rel, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".ds.tmp-{dead.pid}-abcd"
    (stale / ".cache").mkdir(parents=True)
    (stale / ".cache" / "big").write_bytes(b"0" * 1000)
    other = tmp_path / f".other.tmp-{dead.pid}-abcd"
    other.mkdir()
    export_dataset(rel, tmp_path / "ds", configs=("clips",), validation_fraction=0.0, progress=False, **PARAMS)
    assert not stale.exists()
    assert other.exists()  # not ours: another output's temp folder is left alone


def test_sigterm_during_a_build_leaves_no_temp_folder(rel, tmp_path):
    # A slow build (many copies of the track) killed with SIGTERM while it writes.
    for i in range(2, 20):
        (rel / f"t{i}.flac").write_bytes((rel / "t0.flac").read_bytes())
    from housex.dataset_script.labelstudio import make_task
    from housex.dataset_script.release import write_export
    from test_builder import _label

    write_export(rel / "project-partition-1.json", [make_task(i + 1, f"t{i}.flac", _label(i)) for i in range(20)])
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "housex.cli", "build", "--data-dir", str(rel), "--out", str(out), *CLI]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name.startswith(".ds.tmp-") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"], err


def test_synth_never_writes_into_a_folder_of_other_files(rel, tmp_path):
    before = _snapshot(rel)
    code, err = _cli(["synth", "--out", str(rel), "--tracks", "1", "--duration", "20", "20", "--no-progress"])
    assert code == 2 and "not a synthetic release" in err
    assert _snapshot(rel) == before
    note = tmp_path / "note.txt"
    note.write_text("x")
    code, err = _cli(["synth", "--out", str(note), "--tracks", "1", "--duration", "20", "20", "--no-progress"])
    assert code == 2 and "not a folder" in err and note.read_text() == "x"
