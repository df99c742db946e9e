"""Issue 26, ``housex tag``: a nasty library (a few hundred tiny files, symlink loops, a broken link,
an unreadable folder, files deleted and rewritten while the run goes), Ctrl-C then a rerun that
tags only the rest, ``kill -9`` while the final file is written, a full disk, a second run at once.
The 20,000-file run and its files/min are ``bench/bench_tag.py``'s."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fault_tools import HOUSEX, kill_on_create, lock_held, one_line_disk_error, start, tmpfs, without_root_file_access
from test_inference import tiny_model

from housex.cli import main as housex_main
from housex.dataset_script.safe_write import lock_path
from housex.tag import read_rows, tag_library

N_FILES = 300


def _tiny_wav(path: Path, seed: int, seconds: float = 2.0) -> None:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tag-model"), clip_seconds=3.0, backbone="patch_cnn_small")


def _nasty_library(folder: Path) -> Path:
    for i in range(N_FILES):
        sub = folder / f"disc{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        _tiny_wav(sub / f"t{i:04d}.wav", i)
    (folder / "disc0" / "back-to-top").symlink_to(folder, target_is_directory=True)  # a folder loop
    (folder / "x.wav").symlink_to(folder / "y.wav")  # a file loop: x -> y -> x
    (folder / "y.wav").symlink_to(folder / "x.wav")
    (folder / "gone.wav").symlink_to(folder / "nowhere.wav")  # a broken link
    locked = folder / "locked"
    locked.mkdir()
    _tiny_wav(locked / "hidden-from-us.wav", 0)
    locked.chmod(0)
    for name in ("zz-deleted.wav", "zz-rewritten.wav"):
        _tiny_wav(folder / name, 7)
    return folder


def _summary(stderr: str) -> tuple[int, int, int]:
    line = next(line for line in stderr.splitlines() if "unchanged (skipped)" in line)
    found, kept, tagged = (int(line.split(": ", 1)[1].split()[i]) for i in (0, 2, 5))
    return found, kept, tagged


@pytest.mark.slow
def test_tag_a_nasty_library_ctrl_c_changes_kill_and_reruns(model, tmp_path):
    library = _nasty_library(tmp_path / "library")
    out = tmp_path / "tags.parquet"
    parts = tmp_path / "tags.parquet.parts"
    cmd = [*without_root_file_access(), *HOUSEX, "tag", str(library), "--model", str(model), "--out", str(out),
           "--flush-every", "4", "--clips-per-drop", "1", "--no-progress"]
    try:
        # 1. Ctrl-C mid-run: the rows done so far are the output
        proc = start(cmd)
        while len(list(parts.glob("part-*.parquet"))) < 3:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err[-3000:]
        done = len(read_rows(out))
        assert 12 <= done < N_FILES and not parts.exists()

        # 2. the rerun tags only the rest; meanwhile one file is deleted and one rewritten, and it is
        # killed while it writes the final file
        proc = start(cmd)
        while not parts.exists() or not list(parts.glob("part-*.parquet")):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.005)
        (library / "zz-deleted.wav").unlink()
        _tiny_wav(library / "zz-rewritten.wav", 8, seconds=2.5)
        before = out.read_bytes()
        assert kill_on_create(proc, tmp_path, ".tags.parquet.tmp-"), proc.output[1][-3000:]
        err = proc.output[1]
        assert "cannot read the folder" in err and "locked" in err
        assert out.read_bytes() == before  # the final file is whole: the previous one
        changed = {Path(r["path"]).name: r["error"] for p in parts.glob("part-*.parquet") for r in read_rows(p)}
        assert changed["zz-deleted.wav"] == "deleted while being tagged"
        assert changed["zz-rewritten.wav"].startswith("changed while being tagged")

        # 3. the next run keeps every row written before the kill (parts included)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        found, kept, tagged = _summary(done.stderr)
    finally:
        (library / "locked").chmod(0o755)
    rows = {Path(r["path"]).name: r for r in read_rows(out)}
    # every file listed is a row; an unreadable one is an error row
    assert found == len(rows) == N_FILES + 4  # + x, y, gone, zz-rewritten (not the deleted one, nor the locked folder's)
    assert "zz-deleted.wav" not in rows and "hidden-from-us.wav" not in rows
    for name in ("x.wav", "y.wav", "gone.wav"):
        assert "broken or looping symbolic link" in rows[name]["error"], rows[name]
    assert rows["zz-rewritten.wav"]["error"] is None and rows["zz-rewritten.wav"]["genre"]
    # only the rest was tagged: the rewritten file (its row said "changed while being tagged") and
    # the three links (an error row is retried)
    assert tagged == 4 and kept == found - 4, (found, kept, tagged)
    assert sum(r["error"] is not None for r in rows.values()) == 3
    # the rows are the uninterrupted run's
    reference = tmp_path / "reference.parquet"
    (library / "locked").chmod(0)
    try:
        ref = subprocess.run([*without_root_file_access(), *HOUSEX, "tag", str(library), "--model", str(model), "--out",
                              str(reference), "--clips-per-drop", "1", "--no-progress"], capture_output=True, text=True)
    finally:
        (library / "locked").chmod(0o755)
    assert ref.returncode == 0, ref.stderr[-3000:]
    for a, b in zip(read_rows(out), read_rows(reference), strict=True):
        assert a["path"] == b["path"] and a["error"] == b["error"] and a["genre"] == b["genre"], (a, b)
    assert not lock_path(out).exists() and not parts.exists()


def test_tag_changed_and_deleted_files_are_error_rows_in_process(model, tmp_path):
    """The same checks without a race: the file changes between the listing and its turn."""
    library = tmp_path / "library"
    library.mkdir()
    for i in range(3):
        _tiny_wav(library / f"t{i}.wav", i)
    out = tmp_path / "tags.parquet"
    import housex.tag as tag

    listed = tag._file_stat(library / "t1.wav")
    _tiny_wav(library / "t1.wav", 9, seconds=2.5)
    row = tag._row(library / "t1.wav", "v", listed)
    assert row["error"].startswith("changed while being tagged") and row["size"] == listed[0]
    (library / "t2.wav").unlink()
    assert tag._row(library / "t2.wav", "v", listed)["error"] == "deleted while being tagged"
    summary = tag_library(library, model, out, workers=0, clips_per_drop=1)
    assert summary.found == 2 and summary.errors == 0


@pytest.mark.slow
def test_tag_on_a_full_disk_keeps_the_previous_file_and_the_rows_done(model, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    for i in range(40):
        _tiny_wav(library / f"t{i:02d}.wav", i)
    with tmpfs(1_000_000) as disk:
        out = disk / "tags.parquet"
        argv = ["tag", str(library), "--model", str(model), "--out", str(out), "--clips-per-drop", "1", "--no-progress",
                "--flush-every", "4"]
        assert housex_main(argv) == 0
        previous = out.read_bytes()
        for i in range(40, 80):
            _tiny_wav(library / f"t{i:02d}.wav", i)
        filler = disk / "filler.bin"
        filler.write_bytes(b"\0" * (os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - 60_000))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = housex_main(argv)
        assert code == 2
        line = one_line_disk_error(err.getvalue(), disk)
        assert "tags.parquet is unchanged" in line and "rerun to finish" in line
        assert out.read_bytes() == previous  # whole, as before
        assert not [p for p in disk.rglob(".*tmp-*")]  # no partial file
        filler.unlink()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert housex_main(argv) == 0
        assert len(read_rows(out)) == 80


def test_second_tag_run_into_the_same_output_is_refused(model, tmp_path):
    out = tmp_path / "tags.parquet"
    with lock_held(out, "housex tag lib") as holder:
        (tmp_path / "lib").mkdir()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = housex_main(["tag", str(tmp_path / "lib"), "--model", str(model), "--out", str(out)])
        assert rc == 2 and f"PID {holder.pid}: housex tag lib" in err.getvalue()
