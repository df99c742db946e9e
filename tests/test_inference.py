"""Whole-track and DJ-set inference, the predict/timeline/plot commands.

A randomly initialised tiny model (saved with ``save_pretrained``) checks decoding, resampling,
drop-based aggregation, the short/silent-input contract and the written files.  The timeline
recovery test trains a tiny model with the real ``Trainer`` on three single-genre synthetic tracks
and checks that the timeline of their concatenation finds the three genres at the right times.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import loud_section_track

import housex
from housex.cli import main as housex_main
from housex.dataset_script.genres import GENRES, LABEL2ID, NUM_GENRES
from housex.inference import (
    AudioInputError,
    classify_track,
    load_classifier,
    segment_windows,
    smooth_probabilities,
    timeline,
    window_starts,
)
from housex.modeling import HouseXConfig, HouseXFeatureExtractor, HouseXForAudioClassification

TRACK_SECONDS = 40.0
LOUD = (20.0, 38.0)  # the drop that loud_section_track puts in
CLIP = 3.0


def tiny_model(folder, *, sr=16000, n_mels=16, clip_seconds=7.5, patch_hop=32, seed=0, backbone="resnet18",
               backbone_kwargs=None):
    """A randomly initialised tiny HouseX model + feature extractor written with save_pretrained."""
    torch.manual_seed(seed)
    config = HouseXConfig(backbone=backbone, backbone_head="replace", backbone_kwargs=backbone_kwargs,
                          patch_size=n_mels, patch_hop=patch_hop, d_model=32, num_attention_heads=2,
                          intermediate_size=64, hidden_dropout_prob=0.0)
    model = HouseXForAudioClassification(config)
    fe = HouseXFeatureExtractor(sampling_rate=sr, n_fft=512, hop_length=256, n_mels=n_mels, clip_seconds=clip_seconds)
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # 3 s clips keep the suite fast; the window length always comes from the feature extractor.
    return tiny_model(tmp_path_factory.mktemp("tiny-model"), clip_seconds=CLIP)


def _run_cli(capsys, *argv):
    code = housex_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------
# pure helpers


def test_window_starts_cover_the_whole_signal():
    s = window_starts(20.0, 7.5, 2.5)
    assert s[0] == 0 and s[-1] == pytest.approx(12.5) and np.allclose(np.diff(s), 2.5)
    assert window_starts(21.0, 7.5, 2.5)[-1] == pytest.approx(13.5)  # last window ends at the end
    assert window_starts(3.0, 7.5, 2.5).tolist() == [0.0]  # shorter than a clip: one padded window
    with pytest.raises(ValueError, match="hop_seconds"):
        window_starts(20.0, 7.5, 0)


def _confident(ids, p=0.9):
    x = np.full((len(ids), NUM_GENRES), (1 - p) / (NUM_GENRES - 1), np.float32)
    x[np.arange(len(ids)), ids] = p
    return x


def test_short_segments_merge_into_neighbours_and_smoothing_keeps_distributions():
    ids = [0] * 10 + [3] * 2 + [0] * 5 + [5] * 12
    probs = _confident(ids)
    assert segment_windows(probs, 1) == [(0, 10), (10, 12), (12, 17), (17, 29)]
    assert segment_windows(probs, 4) == [(0, 17), (17, 29)]  # the 2-window blip joins its genre
    blip = _confident([1] * 6 + [4] + [1] * 6)
    median = smooth_probabilities(blip, 3, "median")
    assert (median.argmax(1) == 1).all()
    for method in ("median", "mean"):
        assert np.allclose(smooth_probabilities(blip, 5, method).sum(1), 1, atol=1e-6)
    with pytest.raises(ValueError, match="smoothing"):
        smooth_probabilities(blip, 3, "gaussian")


# --------------------------------------------------------------------------------------------
# whole tracks: formats, sample rates, API == CLI


def _write_formats(folder):
    """The same 40 s track with one loud section, as WAV/FLAC/OGG/MP3/M4A at 22.05/44.1/48 kHz."""
    files = {}
    for sr, fmt in ((22050, "wav"), (44100, "flac"), (48000, "ogg")):
        path = folder / f"track-{sr}.{fmt}"
        sf.write(path, loud_section_track(TRACK_SECONDS, sr), sr)
        files[path.name] = (path, sr)
    source = folder / "track-44100.flac"
    for ext, codec in (("mp3", ["-c:a", "libmp3lame", "-b:a", "192k"]), ("m4a", ["-c:a", "aac", "-b:a", "160k"])):
        path = folder / f"track-44100-ffmpeg.{ext}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), *codec, str(path)], check=True, timeout=60)
        files[path.name] = (path, 44100)
    return files


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI not installed (make setup installs it)")
def test_predict_reads_every_format_and_rate_and_finds_the_drop(model_dir, tmp_path, capsys):
    files = _write_formats(tmp_path)
    code, out, err = _run_cli(capsys, "predict", *(p for p, _ in files.values()), "--model", model_dir, "--json",
                              "--batch-size", "3")
    assert code == 0, err
    results = json.loads(out)
    assert [r["source"] for r in results] == [str(p) for p, _ in files.values()]
    for r in results:
        # lossy codecs add encoder delay/padding: a few tens of ms
        assert r["duration"] == pytest.approx(TRACK_SECONDS, abs=0.1), r["source"]
        assert not r["fallback"] and not r["padded"]
        assert len(r["drops"]) == 1, r["source"]
        drop = r["drops"][0]
        assert drop["start"] == pytest.approx(LOUD[0], abs=1.0) and drop["end"] == pytest.approx(LOUD[1], abs=1.0)
        assert len(drop["clip_starts"]) == 4
        assert all(drop["start"] <= s <= drop["end"] - CLIP for s in drop["clip_starts"])
        probs = np.array(list(r["probabilities"].values()))
        assert list(r["probabilities"]) == list(GENRES)
        assert probs.sum() == pytest.approx(1.0, abs=1e-5) and r["genre"] == GENRES[int(probs.argmax())]

    # Text output names every track with per-track and per-drop genres.
    code, out, _ = _run_cli(capsys, "predict", files["track-22050.wav"][0], "--model", model_dir)
    assert code == 0 and "track:" in out and "drop 1 0:" in out


def test_array_input_equals_file_input_and_same_seed_same_result(model_dir, tmp_path):
    y = loud_section_track(TRACK_SECONDS, 22050)  # (samples, channels)
    path = tmp_path / "t.wav"
    sf.write(path, y, 22050, subtype="FLOAT")
    model, fe = load_classifier(model_dir)
    from_file = classify_track(path, model, fe, seed=3)
    from_array = classify_track(y.T, model, fe, sampling_rate=22050, seed=3)
    np.testing.assert_allclose(from_file.probabilities, from_array.probabilities, atol=1e-6)
    assert from_file.drops[0].clip_starts == from_array.drops[0].clip_starts
    other_seed = classify_track(path, model, fe, seed=4)
    assert other_seed.drops[0].clip_starts != from_file.drops[0].clip_starts
    # The lazy top-level API is the same function.
    assert housex.classify_track is classify_track
    with pytest.raises(ValueError, match="sampling_rate is required"):
        classify_track(y.T, model, fe)
    with pytest.raises(ValueError, match="transpose"):
        classify_track(y, model, fe, sampling_rate=22050)


# --------------------------------------------------------------------------------------------
# short / silent input: the documented contract


def test_silent_and_too_short_tracks_give_a_clear_message(model_dir, tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((20 * 16000, 2), np.float32), 16000)
    blip = tmp_path / "blip.wav"
    sf.write(blip, loud_section_track(0.5, 16000, loud=(0.1, 0.4)), 16000)
    short = tmp_path / "short.flac"
    sf.write(short, loud_section_track(2.0, 44100, loud=(0.5, 1.5)), 44100)
    good = tmp_path / "good.wav"
    sf.write(good, loud_section_track(TRACK_SECONDS, 16000), 16000)

    code, out, err = _run_cli(capsys, "predict", silent, blip, short, good, "--model", model_dir, "--json")
    assert code == 2  # some tracks failed, the others are still reported
    assert f"{silent}: audio is silent" in err
    assert f"{blip}: only 0.50 s of audio; need at least 1 s" in err
    results = {r["source"]: r for r in json.loads(out)}
    assert "error" in results[str(silent)] and "error" in results[str(blip)]
    padded = results[str(short)]
    assert padded["padded"] and padded["duration"] == pytest.approx(2.0) and "zero-padded" in padded["notes"][0]
    assert sum(padded["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert not results[str(good)]["padded"]

    model, fe = load_classifier(model_dir)
    with pytest.raises(AudioInputError, match="silent"):
        timeline(silent, model, fe)
    code, _, err = _run_cli(capsys, "predict", tmp_path / "missing.wav", "--model", model_dir)
    assert code == 2 and "missing.wav: audio file not found" in err
    code, _, err = _run_cli(capsys, "predict", good, "--model", tmp_path / "no-model")
    assert code == 2 and "not a model folder" in err


def test_track_without_a_drop_uses_the_fallback_and_says_so(model_dir, tmp_path):
    rng = np.random.default_rng(0)
    n = 30 * 16000
    # A steady 40 dB crescendo: no 15 s stretch stays within 1.5 dB of the loudest part.
    ramp = (10 ** np.linspace(-2, 0, n) * 0.3 * rng.standard_normal(n)).astype(np.float32)
    path = tmp_path / "crescendo.wav"
    sf.write(path, ramp, 16000)
    pred = classify_track(path, model_dir)
    assert pred.fallback and len(pred.drops) == 1
    assert "no drop detected" in pred.notes[0]
    assert "fallback section" in pred.format()
