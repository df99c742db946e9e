"""Issue 15: one bad or odd audio file never kills a build nor passes without a word.

One release holds a good track next to a 768 kHz WAV, a WAV whose data chunk is cut, an OGG cut
in the middle, a DC-offset-only file, a digitally silent one, a float WAV peaking at +40 dBFS, a
6-channel 8 kHz file, a file with a unicode name and spaces, and audio the export does not list.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf
from test_builder import PARAMS, _write, good_track, make_release

from housex.dataset_script.audio import truncation
from housex.dataset_script.build_report import NOTE_CLIPPED, NOTE_TRUNCATED, NOTE_UNLISTED, SkipReason
from housex.dataset_script.export import export_dataset

SR = 22050


def _cut_wav(path, y, sr, keep_seconds):
    """A PCM WAV whose header promises all of ``y`` but whose data stops after ``keep_seconds``."""
    sf.write(path, y, sr, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + int(keep_seconds * sr) * 2])


def _cut_ogg(path, y, sr):
    """An Ogg Vorbis file (written by FFmpeg) cut in the middle."""
    wav = path.with_suffix(".src.wav")
    sf.write(wav, y, sr)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), str(path)], check=True)
    wav.unlink()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def odd_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd")
    rel = root / "rel"
    names = ["good.flac", "hi_rate.wav", "cut.wav", "cut_ogg.ogg", "dc.wav", "zeros.wav", "hot.wav",
             "six_ch_8k.wav", "naïve track é.flac"]
    make_release(rel, {n: None for n in names})
    _write(rel, "good.flac", good_track(0), SR)
    _write(rel, "hi_rate.wav", good_track(1, sr=768000)[: 768000 * 5], 768000)
    long = np.concatenate([good_track(2), good_track(3)])  # 32 s in the header
    _cut_wav(rel / "cut.wav", long, SR, keep_seconds=16)
    _cut_ogg(rel / "cut_ogg.ogg", long, SR)
    _write(rel, "dc.wav", np.full(SR * 16, 0.3, np.float32), SR, subtype="FLOAT")
    _write(rel, "zeros.wav", np.zeros(SR * 16, np.float32), SR)
    _write(rel, "hot.wav", good_track(4) * 100.0, SR, subtype="FLOAT")  # peaks near +40 dBFS
    _write(rel, "six_ch_8k.wav", good_track(5, sr=8000, channels=6), 8000)
    _write(rel, "naïve track é.flac", good_track(6), SR)
    _write(rel, "stray.flac", good_track(7), SR)  # not in the export
    (rel / "notes.txt").write_text("not audio")
    return rel


@pytest.fixture(scope="module")
def built(odd_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "ds"
    summary = export_dataset(odd_release, out, configs=("clips",), validation_fraction=0.0, progress=False, **PARAMS)
    return summary, out


def _skips(summary):
    return {s.name: s for s in summary.skipped}


def test_a_768_khz_file_is_a_named_skip_not_a_dead_build(built):
    summary, out = built
    skip = _skips(summary)["hi_rate.wav"]
    assert skip.reason is SkipReason.UNSUPPORTED_RATE and "768000 Hz" in skip.detail
    assert "sampling rate above 192 kHz" in summary.format()
    assert (out / "clips").is_dir()


def test_silent_and_dc_only_files_are_silent_skips(built):
    skips = _skips(built[0])
    assert skips["dc.wav"].reason is SkipReason.SILENT
    assert skips["zeros.wav"].reason is SkipReason.SILENT


def test_truncated_wav_and_ogg_are_kept_with_a_note(built):
    summary, _ = built
    assert set(summary.notes[NOTE_TRUNCATED]) == {"rel/cut_ogg.ogg", "rel/cut.wav"}
    text = summary.format()
    assert "note: 2 × truncated audio" in text and "rel/cut.wav" in text


def test_audio_above_full_scale_is_noted_as_clipped(built):
    assert built[0].notes[NOTE_CLIPPED] == ["rel/hot.wav"]


def test_unlisted_audio_is_counted_and_named(built):
    summary, _ = built
    assert summary.notes[NOTE_UNLISTED] == ["rel/stray.flac"]  # notes.txt is no audio
    assert "note: 1 × audio files in a release folder that its export does not list" in summary.format()


def test_odd_but_valid_files_are_built(built):
    summary, _ = built
    skipped = set(_skips(summary))
    for name in ("good.flac", "six_ch_8k.wav", "naïve track é.flac", "cut.wav", "hot.wav"):
        assert name not in skipped


def test_strict_skips_truncated_audio(odd_release, tmp_path):
    summary = export_dataset(odd_release, tmp_path / "ds", configs=("clips",), validation_fraction=0.0,
                             progress=False, strict=True, **PARAMS)
    skips = _skips(summary)
    assert skips["cut.wav"].reason is SkipReason.TRUNCATED and "header says 32.0 s" in skips["cut.wav"].detail
    assert skips["cut_ogg.ogg"].reason is SkipReason.TRUNCATED


def test_truncation_reads_the_header(tmp_path):
    y = good_track(9)
    sf.write(tmp_path / "full.wav", y, SR)
    sf.write(tmp_path / "full.flac", y, SR)
    sf.write(tmp_path / "full.ogg", y, SR)
    for name in ("full.wav", "full.flac", "full.ogg"):
        assert truncation(tmp_path / name, 16.0) == ""
    assert truncation(tmp_path / "full.flac", 8.0) == "header says 16.0 s, the data holds 8.0 s"


def test_an_unexpected_error_on_one_track_is_a_skip_with_its_class(tmp_path, monkeypatch):
    # a library failing on one file's clips (injected into soundfile: our code runs for real)
    rel = tmp_path / "rel"
    make_release(rel, {"ok.flac": None, "boom.flac": None})
    _write(rel, "ok.flac", good_track(0), SR)
    _write(rel, "boom.flac", good_track(1, sr=32000), 32000)
    real_write = sf.write

    def write(file, data, samplerate, *args, **kwargs):
        if samplerate == 32000:
            raise RuntimeError("encoder exploded")
        return real_write(file, data, samplerate, *args, **kwargs)

    monkeypatch.setattr(sf, "write", write)
    summary = export_dataset(rel, tmp_path / "ds", configs=("clips",), validation_fraction=0.0, progress=False,
                             **PARAMS)
    skip = _skips(summary)["boom.flac"]
    assert skip.reason is SkipReason.UNEXPECTED
    assert skip.detail.endswith("boom.flac: RuntimeError: encoder exploded")
    assert summary.tracks == {"train": 1}


def test_the_detector_judges_silence_without_the_dc_offset():
    from housex.dataset_script.drops import detect_drops

    options = dict(min_seconds=4.0, skip_seconds=2.0)
    assert detect_drops(np.full(SR * 16, 0.5, np.float32), SR, **options).reason.startswith("silent")
    music = good_track(0)[:, 0] + np.float32(0.3)  # music riding on a DC offset is still music
    offset = detect_drops(music, SR, **options)
    assert offset.sections and not offset.fallback  # (the loudness itself still includes the offset)
