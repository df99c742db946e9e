"""Issue 15: odd input to predict / timeline / plot / the track pipeline ends as a named error or a
documented result with a note: never a traceback, a hang, a silently wrong label, or a lost file."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess

import numpy as np
import pytest
import soundfile as sf
from conftest import loud_section_track
from test_inference import tiny_model
from transformers import pipeline

import housex  # noqa: F401  registers the pipeline tasks
from housex.cli import main as housex_main
from housex.inference import AudioInputError, classify_track

SR = 16000
CLIP = 3.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("m"), sr=SR, clip_seconds=CLIP)


def _track(seconds=12.0, sr=SR, channels=1, seed=0):
    y = loud_section_track(seconds=seconds, sr=sr, loud=(0.25 * seconds, 0.9 * seconds), channels=channels, seed=seed)
    return y[:, 0] if channels == 1 else y  # (samples,) or (samples, channels): the soundfile layout


def _cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = housex_main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _predict_json(model_dir, *paths):
    code, out, err = _cli("predict", *paths, "--model", model_dir, "--json")
    return code, json.loads(out), err


# ---------------------------------------------------------------- predict: files that cannot be classified


def _bad_files(folder):
    sf.write(folder / "one_sample.wav", np.array([0.5], np.float32), SR)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.mp3").write_text("this is not audio\n" * 50)
    sf.write(folder / "zeros.wav", np.zeros(SR * 10, np.float32), SR)
    sf.write(folder / "dc.wav", np.full(SR * 10, -0.4, np.float32), SR, subtype="FLOAT")
    nan = _track().astype(np.float32)
    nan[100] = np.nan
    sf.write(folder / "nan.wav", nan, SR, subtype="FLOAT")
    (folder / "a_folder.wav").mkdir()
    return {
        "one_sample.wav": "need at least 1 s",
        "empty.wav": "audio file is empty (0 bytes)",
        "text.mp3": "cannot decode audio",
        "zeros.wav": "silent",
        "dc.wav": "silent",
        "nan.wav": "NaN or infinite",
        "a_folder.wav": "audio file not found",
        "missing.flac": "audio file not found",
    }


def test_predict_names_each_unusable_file_and_keeps_the_good_one(model_dir, tmp_path):
    expected = _bad_files(tmp_path)
    sf.write(tmp_path / "good.wav", _track(), SR)
    paths = [tmp_path / n for n in expected] + [tmp_path / "good.wav"]
    code, results, err = _predict_json(model_dir, *paths)
    assert code == 2 and "Traceback" not in err
    by_name = {r["source"].rsplit("/", 1)[-1]: r for r in results}
    for name, why in expected.items():
        assert why in by_name[name]["error"], (name, by_name[name])
        assert f"{name}" in by_name[name]["error"]
    assert by_name["good.wav"]["genre"] and "error" not in by_name["good.wav"]
    assert sum(line.startswith("housex predict: error: ") for line in err.splitlines()) == len(expected)


# ---------------------------------------------------------------- predict: odd files that classify, with notes


def test_predict_odd_but_valid_files(model_dir, tmp_path):
    names = {"mono_8k.wav": (_track(sr=8000), 8000), "six_channels.flac": (_track(channels=6), SR),
             "naïve mix – b side.flac": (_track(seed=3), SR), "short_2s.wav": (_track(2.0), SR)}
    for name, (y, sr) in names.items():
        sf.write(tmp_path / name, y, sr)
    code, results, err = _predict_json(model_dir, *[tmp_path / n for n in names])
    assert code == 0, err
    by_name = {r["source"].rsplit("/", 1)[-1]: r for r in results}
    assert set(by_name) == set(names)
    for r in results:
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-4
    assert by_name["short_2s.wav"]["padded"] and "shorter than one" in by_name["short_2s.wav"]["notes"][0]


def test_predict_notes_a_truncated_wav_and_a_hot_float_file(model_dir, tmp_path):
    y = _track(24.0)
    sf.write(tmp_path / "cut.wav", y, SR, subtype="PCM_16")
    data = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 8 * SR * 2])
    sf.write(tmp_path / "hot.wav", _track() * 100.0, SR, subtype="FLOAT")
    code, (cut, hot), err = _predict_json(model_dir, tmp_path / "cut.wav", tmp_path / "hot.wav")
    assert code == 0, err
    assert any("truncated file: header says 24.0 s, the data holds 8.0 s" in n for n in cut["notes"])
    assert cut["duration"] == pytest.approx(8.0)
    assert any("above full scale" in n and "+40" in n for n in hot["notes"])
    code, out, _ = _cli("predict", tmp_path / "cut.wav", "--model", model_dir)
    assert "note: truncated file" in out
    # a loud master encoded lossily: its decoder overshoots full scale, as they do; no note for that
    sf.write(tmp_path / "master.wav", np.clip(_track() * 8, -1, 1), SR, subtype="PCM_16")
    for codec, name in (("libvorbis", "master.ogg"), ("libmp3lame", "master.mp3")):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(tmp_path / "master.wav"), "-c:a", codec,
                        str(tmp_path / name)], check=True)
    code, lossy, err = _predict_json(model_dir, tmp_path / "master.ogg", tmp_path / "master.mp3")
    assert code == 0, err
    from housex.dataset_script.audio import load_audio

    for r in lossy:
        assert np.abs(load_audio(r["source"])[0]).max() > 10 ** (1 / 20), r["source"]  # it does overshoot
        assert not any("full scale" in n for n in r["notes"]), r


def test_predict_with_a_dataset_folder_as_model_is_one_line(tmp_path):
    folder = tmp_path / "ds"
    (folder / "clips").mkdir(parents=True)
    (folder / "README.md").write_text("---\n---\n")
    sf.write(tmp_path / "t.wav", _track(), SR)
    code, out, err = _cli("predict", tmp_path / "t.wav", "--model", folder)
    assert code == 2 and err.strip() == f"housex predict: error: {folder}: not a model folder " \
        "(expected config.json and model.safetensors written by save_pretrained)"


def test_predict_on_a_truncated_ogg_notes_it(model_dir, tmp_path):
    sf.write(tmp_path / "src.wav", _track(24.0), SR)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(tmp_path / "src.wav"), str(tmp_path / "c.ogg")],
                   check=True)
    data = (tmp_path / "c.ogg").read_bytes()
    (tmp_path / "c.ogg").write_bytes(data[: len(data) // 2])
    code, (r,), err = _predict_json(model_dir, tmp_path / "c.ogg")
    assert code == 0, err
    assert any("end-of-stream page" in n for n in r["notes"])


# ---------------------------------------------------------------- the track pipeline's input kinds


def test_track_pipeline_accepts_raw_array_dicts_and_a_decoder(model_dir, tmp_path):
    from torchcodec.decoders import AudioDecoder

    y = _track(seconds=10.0, sr=22050, channels=2).T  # (2, samples) at another rate than the model's
    sf.write(tmp_path / "t.wav", y.T, 22050, subtype="FLOAT")
    expected = classify_track(y, model_dir, sampling_rate=22050).probabilities
    classify = pipeline("housex-track-classification", model=str(model_dir))
    inputs = [{"raw": y, "sampling_rate": 22050}, {"array": y, "sampling_rate": 22050},
              AudioDecoder(str(tmp_path / "t.wav"))]
    for value in inputs:
        got = classify(value)
        assert np.allclose([got["probabilities"][g] for g in got["probabilities"]], expected, atol=1e-5)
    with pytest.raises(ValueError, match="disagrees"):
        classify({"raw": y, "sampling_rate": 22050}, sampling_rate=16000)
    with pytest.raises(ValueError, match="expected .'raw' or 'array'"):
        classify({"audio": y, "sampling_rate": 22050})


def test_track_pipeline_on_silence_is_a_named_error(model_dir):
    classify = pipeline("housex-track-classification", model=str(model_dir))
    with pytest.raises(AudioInputError, match="silent"):
        classify({"raw": np.full(SR * 5, 0.25, np.float32), "sampling_rate": SR})


# ---------------------------------------------------------------- timeline and plot outputs


def test_timeline_on_a_file_shorter_than_a_window(model_dir, tmp_path):
    sf.write(tmp_path / "short.wav", _track(2.0), SR)
    code, out, err = _cli("timeline", tmp_path / "short.wav", "--model", model_dir, "--no-progress")
    assert code == 0, err
    assert (tmp_path / "short-timeline.csv").is_file() and (tmp_path / "short-timeline.json").is_file()


@pytest.mark.parametrize("where", ["over_the_mix", "in_the_model"])
def test_timeline_never_writes_over_the_mix_or_into_the_model(model_dir, tmp_path, where):
    mix = tmp_path / "set.csv"  # a mix whose name ends like an output
    sf.write(tmp_path / "set.wav", _track(), SR)
    mix.write_bytes((tmp_path / "set.wav").read_bytes())
    before = sorted(p.name for p in model_dir.iterdir())
    prefix = tmp_path / "set" if where == "over_the_mix" else model_dir / "tl"
    code, _, err = _cli("timeline", mix, "--model", model_dir, "--out", prefix, "--no-progress")
    assert code == 2 and err.startswith("housex timeline: error: --out ") and len(err.strip().splitlines()) == 1
    assert mix.read_bytes() == (tmp_path / "set.wav").read_bytes()
    assert sorted(p.name for p in model_dir.iterdir()) == before


def test_plot_never_writes_over_its_input(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"confusion_matrix": np.eye(8, dtype=int).tolist()}))
    text = metrics.read_text()
    code, _, err = _cli("plot", "confusion", "--metrics", metrics, "--out", metrics)
    assert code == 2 and "is the input" in err and metrics.read_text() == text
    rel = tmp_path / "rel"
    rel.mkdir()
    code, _, err = _cli("plot", "spectrograms", "--data-dir", rel, "--out", rel / "s.png")
    assert code == 2 and "lies inside the input folder" in err and not (rel / "s.png").exists()
