"""Issue 26, very long inputs (scaled down; the 3-hour mix and its peak RSS and times are
``bench/bench_long.py``'s): a file is decoded, mixed down and resampled a block at a time with the
whole-file result, and a mix's timeline and cues are its prefix's where they overlap."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from test_inference import tiny_model

from housex.dataset_script.audio import load_audio, to_mono
from housex.track_audio import read_audio

SR = 16000


@pytest.mark.parametrize("rate, channels, target", [(44100, 2, 22050), (16000, 1, 16000), (48000, 6, 16000)])
def test_read_audio_a_block_at_a_time_is_the_whole_file_read(tmp_path, rate, channels, target):
    rng = np.random.default_rng(rate)
    seconds = 2.5 * (1 << 20) / rate  # two and a half decoding blocks
    y = (0.3 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32)
    path = tmp_path / "long.flac"
    sf.write(path, y, rate, subtype="PCM_16")
    mono, _, notes = read_audio(path, None, target, min_seconds=1.0)
    whole, sr = load_audio(path)
    expected = to_mono(whole)
    if sr != target:
        import soxr

        expected = soxr.resample(expected, sr, target, quality="HQ").astype(np.float32)
    np.testing.assert_array_equal(mono, expected)
    assert notes == []


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    """Three synthetic 60 s tracks back to back at 16 kHz, and the file of its first 100 s."""
    from housex.dataset_script.synthetic import plan_track, render_track

    folder = tmp_path_factory.mktemp("long-mix")
    parts = [render_track(plan_track(5, i, duration=(60.0, 60.0), fallback_share=0.0), sr=SR).mean(axis=1) for i in range(3)]
    mono = np.concatenate(parts).astype(np.float32)
    sf.write(folder / "mix.flac", mono, SR)
    sf.write(folder / "prefix.flac", mono[: SR * 100], SR)
    return folder / "mix.flac", folder / "prefix.flac", tiny_model(folder / "model", clip_seconds=3.0,
                                                                  backbone="patch_cnn_small")


@pytest.mark.slow
def test_timeline_and_cues_of_a_mix_are_its_prefixs_where_they_overlap(mix):
    from housex.cues import set_cues

    path, prefix, model = mix
    options = dict(hop_seconds=2.5, smooth_seconds=7.5, min_segment_seconds=10.0)
    tl, cues = set_cues(path, model, **options)
    tl_p, cues_p = set_cues(prefix, model, **options)
    # every window of the prefix but its last (placed to end with the file): the same probabilities
    n = len(tl_p.window_starts) - 1
    np.testing.assert_array_equal(tl.window_starts[:n], tl_p.window_starts[:n])
    np.testing.assert_array_equal(tl.probabilities[:n], tl_p.probabilities[:n])
    # smoothed probabilities, segments and beats away from the prefix's end (smoothing and beat
    # tracking look ahead): the same
    k = n - tl.settings["smooth_windows"]
    np.testing.assert_array_equal(tl.smoothed[:k], tl_p.smoothed[:k])
    margin = 100.0 - 30.0
    assert ([(s.start, s.genre) for s in tl.segments if s.start < margin]
            == [(s.start, s.genre) for s in tl_p.segments if s.start < margin])
    beats = cues.grid.beats[cues.grid.beats < margin]
    # within 0.1 ms: the onset envelope's dB floor is relative to the loudest frame of the whole file
    np.testing.assert_allclose(beats, cues_p.grid.beats[cues_p.grid.beats < margin], rtol=0, atol=1e-4)
    assert len(beats) > 100
