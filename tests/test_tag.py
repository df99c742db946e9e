"""``housex tag``: rows of a small library (MP3/FLAC/OGG/M4A + a broken and a silent file),
incremental reruns, resume after a kill / Ctrl-C, ``--write-tags`` leaving the audio untouched,
and ``accelerate launch -m housex.cli tag`` with two CPU processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import loud_section_track
from test_inference import tiny_model

from housex.cli import main as housex_main
from housex.dataset_script.audio import load_audio
from housex.dataset_script.genres import GENRES
from housex.model_version import model_version
from housex.dataset_script.audio import find_audio_files
from housex.tag import read_rows, tag_library

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI not installed (make setup installs it)")
ROOT = Path(__file__).resolve().parents[1]
CLIP = 3.0
FORMATS = {"mp3": ["-c:a", "libmp3lame", "-b:a", "128k"], "flac": ["-c:a", "flac"],
           "ogg": ["-c:a", "libvorbis", "-q:a", "3"], "m4a": ["-c:a", "aac", "-b:a", "128k"]}


def _ffmpeg(*args, capture=False):
    return subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True, timeout=120,
                          capture_output=capture).stdout


def _make_library(folder: Path) -> Path:
    (folder / "album" / "cd2").mkdir(parents=True)
    wav = folder / "src.wav"
    for k, ext in enumerate(FORMATS):
        sf.write(wav, loud_section_track(40.0, 22050, seed=k) * (0.4 + 0.15 * k), 22050)
        sub = folder / "album" / ("cd2" if k % 2 else "")
        _ffmpeg("-i", wav, *FORMATS[ext], sub / f"track-{k}.{ext}")
    wav.unlink()
    (folder / "broken.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 40)
    sf.write(folder / "silence.flac", np.zeros(22050 * 10, np.float32), 22050)
    (folder / "cover.jpg").write_bytes(b"\xff\xd8\xff")  # not audio: not a row
    (folder / ".hidden.mp3").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("tag")
    model = tiny_model(base / "model", sr=16000, clip_seconds=CLIP)
    library = _make_library(base / "library")
    reference = base / "reference.parquet"
    summary = tag_library(library, model, reference, workers=0)
    return model, library, reference, summary


def _same_rows(a: list[dict], b: list[dict]) -> None:
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for x, y in zip(a, b):
        for key in x:
            if key in GENRES or key == "duration":
                assert x[key] == pytest.approx(y[key], abs=1e-6), (x["path"], key)
            else:
                assert x[key] == y[key], (x["path"], key)


def test_rows_of_a_library(setup, tmp_path, capsys):
    model, library, reference, summary = setup
    rows = read_rows(reference)
    names = [Path(r["path"]).relative_to(library).as_posix() for r in rows]
    assert names == ["album/cd2/track-1.flac", "album/cd2/track-3.m4a", "album/track-0.mp3", "album/track-2.ogg",
                     "broken.mp3", "silence.flac"]
    assert (summary.found, summary.kept, summary.tagged, summary.errors) == (6, 0, 6, 2)
    version = model_version(model, clips_per_drop=4, seed=0)
    for row in rows:
        st = os.stat(row["path"])
        assert (row["size"], row["mtime"], row["model_version"]) == (st.st_size, st.st_mtime_ns, version)
        if Path(row["path"]).name.startswith("track-"):
            probs = np.array([row[g] for g in GENRES])
            assert row["error"] is None and probs.sum() == pytest.approx(1.0, abs=1e-5)
            assert row["genre"] == GENRES[int(probs.argmax())] and row["fallback"] is False
            assert row["duration"] == pytest.approx(40.0, abs=0.1)
            (drop,) = row["drops"]
            assert drop["start"] == pytest.approx(20.0, abs=1.0) and drop["end"] == pytest.approx(38.0, abs=1.0)
        else:  # a failing file is a row with its error, the run went on
            assert row["genre"] is None and all(row[g] is None for g in GENRES)
    errors = {Path(r["path"]).name: r["error"] for r in rows if r["error"]}
    assert set(errors) == {"broken.mp3", "silence.flac"} and "silent" in errors["silence.flac"]
    # CLI with 2 decoding processes and a CSV: the same rows (workers never change results)
    out = tmp_path / "cli.parquet"
    code = housex_main(["tag", str(library), "--model", str(model), "--out", str(out), "--csv", str(tmp_path / "t.csv"),
                        "--workers", "2", "--batch-size", "3", "--no-progress"])
    assert code == 0
    assert "6 files, 0 unchanged (skipped), 6 tagged now (2 with errors)" in capsys.readouterr().err
    _same_rows(read_rows(out), rows)
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert len(lines) == 7 and lines[0].startswith("path,size,mtime,duration,genre,Progressive House")
    assert not (tmp_path / "cli.parquet.parts").exists()


def test_incremental_rerun_skips_unchanged_files(setup, tmp_path):
    model, library, reference, _ = setup
    lib = tmp_path / "lib"
    shutil.copytree(library, lib)
    out = tmp_path / "tags.parquet"
    first = tag_library(lib, model, out, workers=0)
    assert (first.kept, first.tagged) == (0, 6)
    again = tag_library(lib, model, out, workers=0)
    assert (again.kept, again.tagged) == (6, 0)
    touched = lib / "album" / "track-0.mp3"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))
    (lib / "silence.flac").unlink()
    third = tag_library(lib, model, out, workers=0)
    assert (third.found, third.kept, third.tagged) == (5, 4, 1)
    rows = read_rows(out)
    assert len(rows) == 5 and not any(r["path"].endswith("silence.flac") for r in rows)
    assert tag_library(lib, model, out, workers=0, retry_errors=True).tagged == 1  # broken.mp3 again
    other = tiny_model(tmp_path / "other-model", sr=16000, clip_seconds=CLIP, seed=1)
    assert tag_library(lib, other, out, workers=0).tagged == 5  # a new model version retags everything
    assert tag_library(lib, other, out, workers=0, clips_per_drop=2).tagged == 5  # so do other clip settings


def _start(library, model, out, *extra):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # SIGINT back to its default in the child, as in a terminal: a SIG_IGN that the test process
    # inherited (something in the whole suite sets it) would be inherited across exec, and Python then
    # installs no KeyboardInterrupt handler, so the Ctrl-C test saw the run finish (exit 0, not 130).
    return subprocess.Popen([sys.executable, "-m", "housex.cli", "tag", str(library), "--model", str(model), "--out", str(out),
                             "--workers", "0", "--flush-every", "1", "--no-progress", *extra],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_parts(proc, parts: Path, n: int, timeout: float = 240.0) -> None:
    t0 = time.monotonic()
    while len(list(parts.glob("part-*.parquet"))) < n:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() - t0 < timeout, "tagging did not start"
        time.sleep(0.02)


EXTRA_TRACKS = 40


@pytest.fixture(scope="module")
def long_library(setup, tmp_path_factory):
    """The library plus 40 copies of one track, and its uninterrupted tags: (model, library, reference, n).
    Long enough (seconds of tagging) that a signal sent after the second part lands mid-run: six tracks
    take well under a second now, and the run could end before the signal arrived."""
    model, library, _, _ = setup
    base = tmp_path_factory.mktemp("long-tag")
    long = base / "library"
    shutil.copytree(library, long)
    (long / "more").mkdir()
    for i in range(EXTRA_TRACKS):
        shutil.copyfile(long / "album" / "track-2.ogg", long / "more" / f"copy-{i:02d}.ogg")
    reference = base / "reference.parquet"
    n = tag_library(long, model, reference, workers=0).found
    return model, long, reference, n


@pytest.mark.parametrize("how", ["kill", "ctrl-c"])
def test_resume_after_an_interruption_gives_the_uninterrupted_rows(long_library, tmp_path, how):
    model, library, reference, n = long_library
    out = tmp_path / "tags.parquet"
    parts = tmp_path / "tags.parquet.parts"
    proc = _start(library, model, out)
    _wait_for_parts(proc, parts, 2)
    proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if how == "kill":
        assert proc.returncode == -signal.SIGKILL
        left = sorted(parts.glob("part-*.parquet"))
        assert 2 <= len(left) < n and not out.exists()  # killed mid-run: parts only, each one readable
        assert all(len(read_rows(p)) == 1 for p in left)
    else:
        assert proc.returncode == 130, err[-2000:]
        done = read_rows(out)  # Ctrl-C leaves a valid output with the rows done so far
        assert 2 <= len(done) < n and not parts.exists()
    resumed = tag_library(library, model, out, workers=0)
    assert resumed.kept >= 2 and resumed.kept + resumed.tagged == n == 6 + EXTRA_TRACKS
    _same_rows(read_rows(out), read_rows(reference))
    assert not parts.exists()


def _stream_md5(path: Path) -> str:
    return _ffmpeg("-i", path, "-map", "0:a:0", "-c", "copy", "-f", "md5", "-", capture=True).decode().strip()


def test_write_tags_changes_metadata_only(setup, tmp_path, capsys):
    import mutagen

    model, library, _, _ = setup
    lib = tmp_path / "lib"
    shutil.copytree(library, lib)
    flac = lib / "album" / "cd2" / "track-1.flac"
    f = mutagen.File(flac)
    f["COMMENT"] = ["my own note"]
    f.save()
    tracks = [p for p in find_audio_files([lib]) if p.name.startswith("track-")]
    assert sorted(p.suffix for p in tracks) == [".flac", ".m4a", ".mp3", ".ogg"]
    before = {p: (p.read_bytes(), load_audio(p)[0], _stream_md5(p)) for p in tracks}
    out = tmp_path / "tags.parquet"
    assert housex_main(["tag", str(lib), "--model", str(model), "--out", str(out), "--workers", "0", "--write-tags",
                        "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("would change ") == 4 and "4 file(s) would change" in captured.err
    assert all(p.read_bytes() == before[p][0] for p in tracks)  # a dry run writes nothing
    assert housex_main(["tag", str(lib), "--model", str(model), "--out", str(out), "--workers", "0", "--write-tags",
                        "--no-dry-run", "--no-progress"]) == 0
    rows = {r["path"]: r for r in read_rows(out)}
    for p in tracks:
        _, samples, md5 = before[p]
        assert p.read_bytes() != before[p][0]
        np.testing.assert_array_equal(load_audio(p)[0], samples)  # the decoded audio is identical
        assert _stream_md5(p) == md5  # and so are the audio stream's bytes
        easy = mutagen.File(p, easy=True)
        assert easy["genre"] == [rows[str(p)]["genre"]], p
        row = rows[str(p)]
        assert (row["size"], row["mtime"]) == (p.stat().st_size, p.stat().st_mtime_ns)  # refreshed: no retag next time
    comments = mutagen.File(flac)["COMMENT"]
    assert comments[0] == "my own note" and comments[1].startswith("HouseX: ") and "(model housex-" in comments[1]
    assert str(mutagen.File(lib / "album" / "track-0.mp3").tags["COMM:HouseX:eng"]).startswith("HouseX: ")
    assert mutagen.File(lib / "album" / "cd2" / "track-3.m4a").tags["\xa9cmt"][0].startswith("HouseX: ")
    capsys.readouterr()
    assert housex_main(["tag", str(lib), "--model", str(model), "--out", str(out), "--workers", "0", "--write-tags",
                        "--no-dry-run", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "6 unchanged (skipped), 0 tagged now" in err  # tags already right: files untouched, nothing retagged


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(setup, tmp_path):
    # accelerate 1.15 runs 2 CPU processes through torchrun with --multi_gpu (see test_trainer.py)
    model, library, reference, _ = setup
    out = tmp_path / "dist.parquet"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "housex.cli", "tag",
           str(library), "--model", str(model), "--out", str(out), "--workers", "0", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "process 1 of 2: tagged 3 file(s)" in proc.stderr and "process 2 of 2: tagged 3 file(s)" in proc.stderr
    _same_rows(read_rows(out), read_rows(reference))
    assert not (tmp_path / "dist.parquet.parts").exists()
