"""Issue 26, synth and build: ``kill -9`` anywhere then rerun, a full disk, two runs at once.

Real faults only (``fault_tools``): SIGKILL of the command's process group at a watched moment, a
size-limited tmpfs, a second process.  A tiny synthetic release (4 tracks of 12-14 s at 22.05 kHz)
keeps each run to seconds.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fault_tools import HOUSEX, entries, fill, kill_when, lock_held, one_line_disk_error, run, snapshot, start, tmpfs

from housex.cli import main as cli_main
from housex.dataset_script.build_plan import estimate_output_bytes, peak_bytes, plan_tracks
from housex.dataset_script.build_report import BuildSummary
from housex.dataset_script.release import EXPORT_NAME, TRUTH_NAME
from housex.dataset_script.safe_write import OutputLock, OutputLockedError, lock_path, remove_stale_temp_files
from housex.dataset_script.synthetic.writer import IN_PROGRESS_NAME

SYNTH = ["--tracks", "4", "--duration", "12", "14", "--sample-rate", "22050", "--format", "wav", "--seed", "7",
         "--no-progress"]
BUILD = ["--quiet", "--clip-seconds", "2", "--min-drop-seconds", "3", "--skip-seconds", "1", "--clips-per-section", "1"]


def _cli(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(argv)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> dict:
    """The uninterrupted outputs: a release, its dataset, and the dataset of another seed."""
    root = tmp_path_factory.mktemp("ref")
    assert _cli(["synth", "--out", str(root / "rel"), *SYNTH]) == (0, "")
    for name, extra in (("ds", []), ("ds3", ["--seed", "3"])):
        assert _cli(["build", "--data-dir", str(root / "rel"), "--out", str(root / name / "ds"), *BUILD, *extra])[0] == 0
    return {"rel": root / "rel", "release": snapshot(root / "rel"), "ds": snapshot(root / "ds" / "ds"),
            "ds3": snapshot(root / "ds3" / "ds"), "ds_dir": root / "ds" / "ds"}


def _audio(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.wav"))


# ------------------------------------------------------------------------------------ kill -9


@pytest.mark.slow
def test_synth_killed_anywhere_reruns_to_the_same_release_rendering_only_the_rest(ref, tmp_path):
    out = tmp_path / "rel"
    cmd = [*HOUSEX, "synth", "--out", str(out), *SYNTH, "--workers", "2"]
    kept: dict[str, int] = {}
    finished = False  # the last kill landed after the run had ended
    points = {
        "early": lambda: (out / IN_PROGRESS_NAME).exists(),
        "mid-way": lambda: len(_audio(out)) >= 2,
        "while writing the export": lambda: (out / EXPORT_NAME).exists(),
    }
    for point, condition in points.items():
        assert kill_when(start(cmd), condition), f"the run ended before the kill point {point!r}"
        # never a torn track under its name, never a complete-looking release of other tracks
        done = {p.name: snapshot(out)[p.name] for p in _audio(out)}
        assert all(ref["release"][name] == digest for name, digest in done.items()), point
        assert not (out / TRUTH_NAME).exists() or snapshot(out).get(TRUTH_NAME) == ref["release"][TRUTH_NAME]
        if point == "while writing the export" and not (out / IN_PROGRESS_NAME).exists():
            # the export, truth and marker removal take milliseconds: the run may finish between
            # the poll that saw the export and the kill; then the release must be the complete one
            assert snapshot(out) == ref["release"], point
            finished = True
        else:
            assert (out / IN_PROGRESS_NAME).exists(), point
        # tracks written before this kill are never rendered again
        for p in _audio(out):
            assert kept.setdefault(p.name, p.stat().st_mtime_ns) == p.stat().st_mtime_ns, (point, p.name)
    assert _cli(cmd[len(HOUSEX):]) == (0, "")  # the same command (in this process: no start-up to pay)
    assert snapshot(out) == ref["release"]  # no temp files, no marker
    # (a finished release is written again by the same command: the same bytes, new files)
    assert finished or all(kept[p.name] == p.stat().st_mtime_ns for p in _audio(out) if p.name in kept)
    assert not lock_path(out).exists()


@pytest.mark.slow
def test_build_killed_anywhere_reruns_to_the_same_dataset(ref, tmp_path):
    out = tmp_path / "ds"

    def temp() -> Path | None:
        found = entries(tmp_path, ".ds.tmp-")
        return found[0] if found else None

    cmd = [*HOUSEX, "build", "--data-dir", str(ref["rel"]), "--out", str(out), *BUILD]
    points = {
        "early (decoding, the clips' Arrow cache)": lambda: temp() is not None,
        "mid-way (the tracks' Arrow cache)": lambda: (t := temp()) is not None and (t / ".cache-tracks").exists(),
    }
    for point, condition in points.items():
        assert kill_when(start(cmd), condition), f"the run ended before the kill point {point!r}"
        assert not out.exists(), point  # a reader sees no dataset
    assert _cli(cmd[len(HOUSEX):])[0] == 0  # the same command (in this process: no start-up to pay)
    assert snapshot(out) == ref["ds"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # the killed runs' temp folders are gone

    # --overwrite killed while the last files (Parquet shard, card) are written and swapped in:
    # a reader sees the old dataset or the new one, whole
    cmd3 = [*cmd, "--overwrite", "--seed", "3"]
    assert kill_when(start(cmd3), lambda: (t := temp()) is not None and any((t / "tracks").glob("*.parquet")))
    assert snapshot(out) in (ref["ds"], ref["ds3"])
    assert _cli(cmd3[len(HOUSEX):])[0] == 0
    assert snapshot(out) == ref["ds3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_an_output_set_aside_by_a_killed_swap_is_put_back(ref, tmp_path):
    """Where the system cannot swap two folders in one step, the old output is renamed aside first;
    a run killed between the two renames leaves ``.<name>.old-<pid>`` and no output: the next run
    puts it back before anything else."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    shutil.copytree(ref["ds_dir"], tmp_path / f".ds.old-{dead.pid}")
    (tmp_path / f".ds.tmp-{dead.pid}-x").mkdir()
    assert remove_stale_temp_files(tmp_path, "ds") == [tmp_path / f".ds.tmp-{dead.pid}-x"]
    assert snapshot(tmp_path / "ds") == ref["ds"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


# ------------------------------------------------------------------------------------ full disk


def _build_needs(rel: Path) -> int:
    entries_ = plan_tracks([rel], summary=BuildSummary())
    sizes = estimate_output_bytes(entries_, ["clips", "tracks"], clips_per_section=1, clip_seconds=2.0)
    return peak_bytes(sizes, ["clips", "tracks"])


@pytest.mark.slow
def test_build_on_a_full_disk_is_one_line_and_leaves_the_previous_dataset(ref):
    """At each size the disk fills at another stage; each is one line naming the folder, the bytes
    needed and free, with nothing left behind and an existing dataset untouched."""
    clips = sum(os.path.getsize(ref["ds_dir"] / "clips" / f) for f in os.listdir(ref["ds_dir"] / "clips"))
    tracks = sum(os.path.getsize(ref["ds_dir"] / "tracks" / f) for f in os.listdir(ref["ds_dir"] / "tracks"))
    peak = clips + 2 * tracks  # clips' shards + the tracks' Arrow cache + their shards
    estimate = _build_needs(ref["rel"])
    assert estimate < peak < estimate * 1.3  # low, so that a build that fits is never refused up front
    dataset = sum(os.path.getsize(p) for p in ref["ds_dir"].rglob("*") if p.is_file())
    cases = {
        # below the up-front estimate: refused before anything is written
        "up front": (estimate // 2, None, "for building ds"),
        # above the estimate, below the peak: the tracks' Parquet shards fill it
        "Parquet shards": ((estimate + peak) // 2, None, "the Parquet shards of the tracks config"),
        # another writer fills the disk as soon as the build starts: decoding / the clips' Arrow cache
        "Arrow cache": (peak + 4_000_000, "fill", "the Arrow cache of the clips config"),
        # --overwrite of an existing dataset: the new one does not fit beside it
        "beside the old dataset": (dataset + (estimate + peak) // 2, "old", "the Parquet shards of the tracks config"),
    }
    for case, (size, extra, stage) in cases.items():
        with tmpfs(size) as disk:
            out = disk / "ds"
            argv = ["build", "--data-dir", str(ref["rel"]), "--out", str(out), *BUILD]
            if extra is None:  # as a user would: the command in its own process
                done = run([*HOUSEX, *argv])
                returncode, stderr = done.returncode, done.stderr
            else:
                if extra == "old":
                    shutil.copytree(ref["ds_dir"], out)
                    argv.append("--overwrite")
                else:
                    threading.Thread(target=_fill_when_the_build_starts, args=(disk,), daemon=True).start()
                returncode, stderr = _cli(argv)
            assert returncode == 2, (case, stderr)
            line = one_line_disk_error(stderr, disk)
            assert stage in line, (case, line)
            left = sorted(p.name for p in disk.iterdir() if p.name != "filler.bin")
            assert left == (["ds"] if extra == "old" else []), (case, left)
            if extra == "old":
                assert snapshot(out) == ref["ds"] and "ds is unchanged" in line


def _fill_when_the_build_starts(disk: Path) -> None:
    deadline = time.monotonic() + 120
    while not entries(disk, ".ds.tmp-") and time.monotonic() < deadline:
        time.sleep(0.002)
    fill(disk, leave=64_000)


@pytest.mark.slow
def test_synth_on_a_full_disk_keeps_every_written_track_and_reruns_to_the_rest(ref):
    with tmpfs(2_000_000) as disk:  # the 4 tracks take ~7 MB
        code, err = _cli(["synth", "--out", str(disk / "rel"), *SYNTH])
        assert code == 2
        line = one_line_disk_error(err, disk / "rel")
        assert "4 synthetic tracks" in line and "nothing was written" in line
    with tmpfs(12_000_000) as disk:
        out = disk / "rel"
        cmd = [*HOUSEX, "synth", "--out", str(out), *SYNTH]
        proc = start(cmd)
        while proc.poll() is None and not _audio(out):
            time.sleep(0.002)
        filler = fill(disk, leave=200_000)  # another writer takes the rest of the disk
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2, stderr
        line = one_line_disk_error(stderr, out)
        assert "rerun to write the rest" in line
        written = _audio(out)
        assert 1 <= len(written) < 4
        assert all(snapshot(out)[p.name] == ref["release"][p.name] for p in written)  # whole tracks only
        assert sorted(p.name for p in out.iterdir() if p.suffix != ".wav") == [IN_PROGRESS_NAME]
        filler.unlink()
        done = run(cmd)
        assert done.returncode == 0, done.stderr
        assert snapshot(out) == ref["release"]


# ------------------------------------------------------------------------------------ two at once


def test_second_run_into_a_locked_output_is_refused_naming_the_first(ref, tmp_path):
    out = tmp_path / "ds"
    with lock_held(out, "housex build --out ds") as holder:
        code, err = _cli(["build", "--data-dir", str(ref["rel"]), "--out", str(out), *BUILD])
        assert code == 2 and err.count("\n") == 1
        assert f"PID {holder.pid}: housex build --out ds" in err and "another run is writing it" in err
        code, err = _cli(["synth", "--out", str(out), *SYNTH])  # synth takes the same lock
        assert code == 2 and f"PID {holder.pid}" in err
        assert not out.exists()
    # the holder is gone: its lock is free at once; a lock file a killed run left is taken over
    lock_path(out).write_text("999999999\nhousex build --out ds\n2026-01-01 00:00:00\n")
    with OutputLock(out) as lock:
        assert lock_path(out).read_text().split("\n")[0] == str(os.getpid())
        with pytest.raises(OutputLockedError, match=f"PID {os.getpid()}"):
            OutputLock(out).acquire()  # a second lock in this process is refused too
    assert not lock_path(out).exists()


@pytest.mark.slow
def test_two_builds_at_once_same_output_refused_other_output_same_bytes(ref, tmp_path):
    out, other = tmp_path / "a" / "ds", tmp_path / "b" / "ds"
    first = start([*HOUSEX, "build", "--data-dir", str(ref["rel"]), "--out", str(out), *BUILD])
    deadline = time.monotonic() + 120
    while first.poll() is None and time.monotonic() < deadline and not lock_path(out).exists():
        time.sleep(0.005)
    # the same output: refused at once, naming the first; another output: built side by side
    code, err = _cli(["build", "--data-dir", str(ref["rel"]), "--out", str(out), *BUILD])
    assert code == 2 and f"PID {first.pid}" in err, err
    assert first.poll() is None, "the first build ended before the second started"
    assert _cli(["build", "--data-dir", str(ref["rel"]), "--out", str(other), *BUILD])[0] == 0
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert snapshot(out) == snapshot(other) == ref["ds"]
