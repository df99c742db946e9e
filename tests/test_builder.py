"""Builder + export + ``load_dataset`` round trip, and every bad-input case of the release format."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import loud_section_track

from housex.cli import main as cli_main
from housex.dataset_script.build_plan import TrackEntry, plan_tracks, split_tracks
from housex.dataset_script.build_report import BuildSummary, SkipReason
from housex.dataset_script.builder import HouseXBuilder
from housex.dataset_script.export import export_dataset
from housex.dataset_script.labelstudio import make_task
from housex.dataset_script.release import write_drop_file, write_export, write_truth

# Small and fast: 16 s tracks with a loud part at 6–14 s, 3 s clips, 4 s minimum drops.
# Seed 2 puts three good tracks (a0, a2, b0) into validation; the bad ones all fall in train.
PARAMS = dict(clip_seconds=3.0, min_drop_seconds=4.0, skip_seconds=2.0, clips_per_section=2, seed=2)
CLI_PARAMS = ["--clip-seconds", "3", "--min-drop-seconds", "4", "--skip-seconds", "2", "--clips-per-section", "2",
              "--seed", "2"]


def _label(i: int) -> np.ndarray:
    v = np.zeros(8)
    v[i % 8] = 0.75
    v[(i + 3) % 8] = 0.25
    return v


def _write(folder: Path, name: str, y: np.ndarray, sr: int, **kw) -> None:
    sf.write(folder / name, y, sr, **kw)


def good_track(seed: int, sr: int = 22050, channels: int = 1, loud=(6.0, 14.0)) -> np.ndarray:
    return loud_section_track(seconds=16.0, sr=sr, loud=loud, channels=channels, seed=seed)


def make_release(folder: Path, tracks: dict[str, np.ndarray | None], extra_tasks=()) -> None:
    """Export with one task per name (None: no audio file written) + extra raw tasks."""
    folder.mkdir(parents=True)
    tasks = [make_task(i + 1, name, _label(i)) for i, name in enumerate(tracks)]
    write_export(folder / "project-partition-1.json", tasks + list(extra_tasks))


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("release")
    a, b = root / "rel-a", root / "rel-b"
    make_release(a, {n: None for n in ["a0.flac", "a1.ogg", "a2.wav", "a3.flac", "a4.flac", "a5.flac", "fb.flac",
                                       "corrupt.ogg", "empty.ogg", "silent.flac", "short.flac", "nan.wav", "missing.ogg"]},
                 extra_tasks=[{**make_task(90, "x.ogg", _label(0)), "data": {"audio": "/data/upload/../../../etc/passwd"}},
                              {**make_task(91, "y.ogg", _label(0))}])
    # task 91 gets an unknown genre name
    tasks = json.loads((a / "project-partition-1.json").read_text())
    tasks[-1]["annotations"][0]["result"][0]["from_name"] = "Dubstep"
    write_export(a / "project-partition-1.json", tasks)
    _write(a, "a0.flac", good_track(0), 22050)
    _write(a, "a1.ogg", good_track(1, sr=44100, channels=2), 44100)
    _write(a, "a2.wav", good_track(2, sr=48000, channels=6), 48000)
    for i in (3, 4, 5):
        _write(a, f"a{i}.flac", good_track(i), 22050)
    _write(a, "fb.flac", good_track(6, loud=(8.0, 10.0)), 22050)  # loud part < 4 s: fallback drop
    (a / "corrupt.ogg").write_bytes(b"OggS" + np.random.default_rng(0).bytes(3000))
    (a / "empty.ogg").write_bytes(b"")
    _write(a, "silent.flac", np.zeros((22050 * 16, 1), dtype=np.float32), 22050)
    _write(a, "short.flac", good_track(7)[: 22050 * 2], 22050)
    nan = good_track(8)
    nan[1000] = np.nan
    _write(a, "nan.wav", nan, 22050, subtype="FLOAT")

    make_release(b, {"b0.flac": None, "b1.flac": None, "a0.flac": None})
    _write(b, "b0.flac", good_track(10), 22050)
    _write(b, "b1.flac", good_track(11), 22050)
    _write(b, "a0.flac", good_track(12), 22050)  # same name as in rel-a: duplicate
    write_drop_file(b / "detected_drops.json", {"b0.flac": [(1.0, 5.5), (9.0, 30.0)]}, prefix="/root/10/")

    out = root / "housex-v2"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = cli_main(["build", "--data-dir", str(a), str(b), "--out", str(out), "--quiet", *CLI_PARAMS])
    assert rc == 0
    return {"root": root, "a": a, "b": b, "out": out, "report": stdout.getvalue()}


def _load(folder, config, cache):
    return datasets.load_dataset(str(folder), config, cache_dir=str(cache))


def test_report_names_every_skip(release):
    report = release["report"]
    assert "tracks read: 18" in report
    expected = {
        "corrupt.ogg": "unreadable audio",
        "empty.ogg": "empty audio file",
        "silent.flac": "silent",
        "short.flac": "shorter than a clip",
        "nan.wav": "non-finite audio",
        "missing.ogg": "missing audio",
        "a0.flac": "duplicate track name: already read from rel-a",
        "task #13": "path traversal refused",
        "task #14": "unknown genre name 'Dubstep'",
    }
    for name, reason in expected.items():
        lines = [ln for ln in report.splitlines() if f"/{name}:" in ln]
        assert lines and reason in lines[0], (name, report)
    assert "tracks skipped: 9" in report
    assert "1 tracks from drop files, 8 detected (1 by fallback)" in report


def test_parallel_build_writes_the_same_files_and_report(release, tmp_path):
    from housex.dataset_script import track_processing

    track_processing.ANALYSIS_CACHE.clear()  # so that the workers decode every track again
    out = tmp_path / "parallel"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = cli_main(["build", "--data-dir", str(release["a"]), str(release["b"]), "--out", str(out), "--quiet",
                       "--workers", "2", *CLI_PARAMS])
    assert rc == 0

    def without_folder(report):
        return [ln for ln in report.splitlines() if not ln.startswith("written to")]

    assert without_folder(stdout.getvalue()) == without_folder(release["report"])
    files = sorted(p.relative_to(release["out"]) for p in release["out"].rglob("*.parquet"))
    assert files and files == sorted(p.relative_to(out) for p in out.rglob("*.parquet"))
    for name in files:
        assert (out / name).read_bytes() == (release["out"] / name).read_bytes(), name
    # the workers' analyses came back to this process (the tracks config reused them)
    assert len(track_processing.ANALYSIS_CACHE) >= 9


def test_round_trip_clips(release, tmp_path):
    ds = _load(release["out"], "clips", tmp_path)
    assert set(ds) == {"train", "validation"}
    assert ds["train"].features["label"].names[3] == "Tech House"
    built = HouseXBuilder(config_name="clips", data_dir=[release["a"], release["b"]], cache_dir=str(tmp_path / "b"),
                          **PARAMS)
    built.download_and_prepare()
    ref = built.as_dataset()
    for split in ds:
        got, want = ds[split], ref[split]
        assert len(got) == len(want) > 0
        for col in ("track_id", "label", "soft_label", "clip_start", "clip_end", "drop_index", "fallback", "padded"):
            assert got[col] == want[col], col
        for i in (0, len(got) - 1):
            assert np.array_equal(got[i]["audio"]["array"], want[i]["audio"]["array"])
    rows = ds["train"].to_list() + ds["validation"].to_list()
    by_track = {}
    for r in rows:
        by_track.setdefault(r["track_id"], []).append(r)
        assert abs(sum(r["soft_label"]) - 1) < 1e-6 and r["label"] == int(np.argmax(r["soft_label"]))
        assert r["clip_end"] - r["clip_start"] == pytest.approx(3.0, abs=1e-4)
    assert set(by_track) == {"a0", "a1", "a2", "a3", "a4", "a5", "fb", "b0", "b1"}
    assert all(r["fallback"] for r in by_track["fb"]) and not any(r["fallback"] for r in by_track["a3"])
    # b0 uses the drop file: a 4.5 s section (2 clips) and one clamped to the 16 s track (2 clips)
    assert sorted({r["drop_index"] for r in by_track["b0"]}) == [0, 1] and len(by_track["b0"]) == 4
    assert all(9.0 <= r["clip_start"] and r["clip_end"] <= 16.0 for r in by_track["b0"] if r["drop_index"] == 1)
    # mono at the source rate
    for tid, sr, split in (("a1", 44100, "train"), ("a2", 48000, "validation"), ("a0", 22050, "validation")):
        audio = ds[split][ds[split]["track_id"].index(tid)]["audio"]
        assert audio["sampling_rate"] == sr and audio["array"].shape == (round(3.0 * sr),)


def test_tracks_config_and_split_by_track(release, tmp_path):
    tracks = _load(release["out"], "tracks", tmp_path)
    clips = _load(release["out"], "clips", tmp_path)
    for split in ("train", "validation"):
        assert set(tracks[split]["track_id"]) == set(clips[split]["track_id"])
    assert not set(tracks["train"]["track_id"]) & set(tracks["validation"]["track_id"])
    assert sorted(tracks["validation"]["track_id"]) == ["a0", "a2", "b0"]  # round(0.2 × 14 tracks with audio)
    rows = {r["track_id"]: r for r in tracks["train"].to_list() + tracks["validation"].to_list()}
    assert rows["b0"]["drop_sections"] == [[1.0, 5.5], [9.0, 16.0]] and rows["b0"]["source"] == "rel-b"
    assert rows["a1"]["duration"] == pytest.approx(16.0) and rows["a1"]["genres"] == ["Future House", "Deep House"]
    assert rows["fb"]["drop_fallback"] and rows["a2"]["task_id"] == "3"
    audio = tracks["train"][tracks["train"]["track_id"].index("a1")]["audio"]
    assert audio["sampling_rate"] == 44100 and audio["array"].shape[-1] == 16 * 44100


def test_card_yaml(release):
    text = (release["out"] / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["license"] == "bsd-3-clause" and meta["task_categories"] == ["audio-classification"]
    assert {c["config_name"] for c in meta["configs"]} == {"clips", "tracks"}
    info = {i["config_name"]: i for i in meta["dataset_info"]}
    names = info["clips"]["features"][1]["dtype"]["class_label"]["names"]
    assert names["0"] == "Progressive House" and names["7"] == "Slap House"
    assert sum(s["num_examples"] for s in info["tracks"]["splits"]) == 9
    assert "HouseX-v2" in text and "@misc{housex-v2" in text and "Synthetic data" not in text
    assert sorted(p.name for p in (release["out"] / "clips").iterdir()) == [
        "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]


def test_folder_named_housex_v2_in_cwd_loads_by_name(release, tmp_path, monkeypatch):
    monkeypatch.chdir(release["root"])
    ds = datasets.load_dataset("housex-v2", "clips", cache_dir=str(tmp_path))
    assert ds["train"].num_rows > 0 and "soft_label" in ds["train"].column_names


def test_existing_output_is_refused(release):
    with pytest.raises(FileExistsError, match="output folder exists"):
        export_dataset([release["a"]], release["out"], **PARAMS)


@pytest.fixture()
def tiny(tmp_path) -> Path:
    rel = tmp_path / "tiny"
    make_release(rel, {"t0.flac": None, "t1.flac": None})
    _write(rel, "t0.flac", good_track(20), 22050)
    _write(rel, "t1.flac", good_track(21, loud=(8.0, 10.0)), 22050)  # fallback drop
    return rel


def test_strict_skips_fallback_tracks(tiny, tmp_path):
    b = HouseXBuilder(config_name="clips", data_dir=str(tiny), cache_dir=str(tmp_path / "c"), strict=True,
                      validation_fraction=0.0, **PARAMS)
    b.download_and_prepare()
    assert b.as_dataset()["train"]["track_id"] == ["t0", "t0"]
    assert [s.reason for s in b.summary.skipped] == [SkipReason.STRICT_FALLBACK] == ["fallback drop (strict)"]


def test_export_is_deterministic_atomic_and_overwritable(tiny, tmp_path):
    write_truth(tiny, {"generator": "housex.dataset_script.synthetic", "seed": 0}, [])  # marks a synthetic release
    kw = dict(configs=("clips",), validation_fraction=0.5, progress=False, **PARAMS)
    s1 = export_dataset(str(tiny), tmp_path / "o1", **kw)
    export_dataset(str(tiny), tmp_path / "o2", **kw)
    assert s1.clips == {"train": 2, "validation": 2}
    for split in ("train", "validation"):
        name = f"clips/{split}-00000-of-00001.parquet"
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes()
    assert "Synthetic data" in (tmp_path / "o1" / "README.md").read_text()
    export_dataset(str(tiny), tmp_path / "o1", overwrite=True, **kw)
    assert (tmp_path / "o1" / "README.md").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o1", "o2", "tiny"]  # no temp folders left


def test_card_describes_what_was_built(tiny, tmp_path):
    """The card documents the configs, counts, clip policy and source of this build, nothing else."""
    write_truth(tiny, {"generator": "housex.dataset_script.synthetic", "seed": 7, "sample_rate": 22050,
                       "format": "wav", "duration": [16.0, 16.0], "soundfont": "FluidR3_GM.sf2"}, [{}, {}])
    params = {**PARAMS, "clips_per_section": 1}
    for configs in (("clips",), ("tracks",)):
        out = tmp_path / "-".join(configs)
        export_dataset(str(tiny), out, configs=configs, validation_fraction=0.5, progress=False, **params)
        text = (out / "README.md").read_text()
        prose = " ".join(text.split("---", 2)[2].split())
        documented = set(re.findall(r'load_dataset\("[^"]+", "(\w+)"\)', prose)) | set(re.findall(r"\*\*(\w+)\*\*:", prose))
        assert documented == set(configs), prose
        for config in configs:
            ds = datasets.load_dataset(str(out), config, cache_dir=str(tmp_path / "cache"))
            for split, rows in re.findall(rf"\| {config} \| (\w+) \| (\d+) \|", prose):
                assert ds[split].num_rows == int(rows)
        assert ("1 clip per drop section, at a seeded uniform offset" in prose) == ("clips" in configs)
        assert "clips per drop" not in prose and "sines" not in prose
        assert "sampled instruments" in prose and "`tiny`: 2 tracks, seed 7, 22050 Hz WAV" in prose
        assert "SoundFont FluidR3_GM.sf2" in prose and f"wrote only the `{configs[0]}` config" in prose


def test_build_output_off_a_terminal_is_the_report_without_progress_bars(tiny, tmp_path, capfd):
    """Into a log or a pipe, bars are noise (one line per redraw, two bars interleaved with cursor
    escapes): off a terminal only the report is printed; a terminal still gets its bars."""
    from housex.dataset_script.console import progress_bars_on_terminal_only

    capfd.readouterr()
    assert cli_main(["build", "--data-dir", str(tiny), "--out", str(tmp_path / "o"), "--config", "clips",
                     "--validation-fraction", "0.5", *CLI_PARAMS]) == 0
    out, err = capfd.readouterr()
    assert "tracks read: 2" in out and "%|" not in err + out and "\x1b[" not in err + out, err[-500:]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert progress_bars_on_terminal_only(Terminal()) is True and progress_bars_on_terminal_only(io.StringIO()) is False


def test_failed_build_leaves_nothing(tmp_path):
    rel = tmp_path / "bad"
    make_release(rel, {"c.ogg": None})
    (rel / "c.ogg").write_bytes(b"not audio")
    with pytest.raises(ValueError, match="no usable tracks"):
        export_dataset(rel, tmp_path / "out", progress=False, **PARAMS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli_main(["build", "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "nope: release folder not found" in err.getvalue()


# -- planning and splitting (no audio decoding) ------------------------------------------------
def test_label_modes_in_planning(tmp_path):
    rel = tmp_path / "r"
    make_release(rel, {"s.ogg": None, "c.ogg": None})
    tasks = json.loads((rel / "project-partition-1.json").read_text())
    tasks[1] = make_task(2, "c.ogg", np.eye(8)[4])
    write_export(rel / "project-partition-1.json", tasks)
    for name in ("s.ogg", "c.ogg"):
        (rel / name).write_bytes(b"x")
    summary = BuildSummary()
    clean = plan_tracks([rel], label_mode="clean", summary=summary)
    assert [e.track_id for e in clean] == ["c"] and "filtered by label_mode=clean" in summary.skipped[0].reason
    sharp = plan_tracks([rel], label_mode="sharpen", summary=BuildSummary())
    assert sharp[0].soft_label.tolist() == np.eye(8)[0].tolist() and sharp[0].label == 0
    with pytest.raises(ValueError, match="label_mode"):
        plan_tracks([rel], label_mode="hard", summary=BuildSummary())


def test_split_is_seeded_by_track_and_stratifiable():
    entries = [TrackEntry("s", f"t{i:02d}", str(i), Path(f"t{i}.ogg"), np.eye(8)[i % 4]) for i in range(40)]
    a = split_tracks(entries, validation_fraction=0.25, seed=1)
    assert [e.track_id for e in a["validation"]] == [e.track_id for e in split_tracks(entries[::-1], validation_fraction=0.25, seed=1)["validation"]]
    assert len(a["validation"]) == 10 and not {e.track_id for e in a["train"]} & {e.track_id for e in a["validation"]}
    assert [e.track_id for e in a["validation"]] != [e.track_id for e in split_tracks(entries, validation_fraction=0.25, seed=2)["validation"]]
    strat = split_tracks(entries, validation_fraction=0.2, seed=1, stratify=True)["validation"]
    assert sorted(e.label for e in strat) == [0, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="validation_fraction"):
        split_tracks(entries, validation_fraction=1.0)
