"""Synthetic release generator: labels, genre mixing, determinism, real-format output, build path."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from housex.dataset_script import synthetic
from housex.dataset_script.genres import GENRES, LabelError, sharpen_ids, soft_label_pattern
from housex.dataset_script.release import find_release_files, parse_export


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def small_release(tmp_path_factory):
    """Four ~30 s tracks drawn from two genres (so that a split has both classes)."""
    out = tmp_path_factory.mktemp("synth") / "release"
    freqs = {"Progressive House": 1, "Tech House": 1}
    records = synthetic.generate_release(out, 4, seed=3, duration=(28, 32), progress=False, genre_frequencies=freqs)
    return out, records


def test_label_statistics_match_the_real_export():
    labels = synthetic.sample_labels(1000, seed=123)
    shares = collections.Counter(soft_label_pattern(lab) for lab in labels)
    for pattern, expected in synthetic.LABEL_PATTERNS.items():
        assert abs(shares[pattern] / 1000 - expected) <= 0.05, (pattern, shares[pattern])
    assert sum(shares.values()) == 1000 and set(shares) <= set(synthetic.LABEL_PATTERNS)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0)
    # the commonest mixed pairs are the ones the real data mixes
    pairs = collections.Counter(tuple(sorted(GENRES[i] for i in np.argsort(-lab)[:2])) for lab in labels
                                if soft_label_pattern(lab)[0] < 1)
    top = {p for p, _ in pairs.most_common(4)}
    assert ("Future House", "Progressive House") in top
    assert len(top & {("Future House", "Progressive House"), ("Bass House", "Future House"),
                      ("Future House", "Tech House"), ("Deep House", "Tech House"), ("Bass House", "Tech House")}) >= 3


def test_genre_frequencies_are_configurable():
    labels = synthetic.sample_labels(300, seed=1, genre_frequencies={"Bigroom": 1.0})
    single = labels[labels.max(axis=1) == 1.0]
    assert len(single) > 150 and np.all(sharpen_ids(single) == GENRES.index("Bigroom"))
    default = synthetic.sample_labels(2000, seed=2)
    primary = np.bincount(sharpen_ids(default[default.max(axis=1) == 1.0]), minlength=8)
    assert primary.argmax() == GENRES.index("Progressive House") and primary.argmin() == GENRES.index("Bigroom")
    with pytest.raises(LabelError, match="Dubstep"):
        synthetic.sample_labels(3, seed=0, genre_frequencies={"Dubstep": 1.0})
    with pytest.raises(ValueError, match="genre_frequencies"):
        synthetic.genre_frequency_vector([1.0, 2.0])


def test_parts_are_drawn_from_the_genres_by_weight():
    label = np.zeros(8)
    deep, bigroom = GENRES.index("Deep House"), GENRES.index("Bigroom")
    label[deep], label[bigroom] = 0.75, 0.25
    plans = [synthetic.plan_track(9, i, label=label) for i in range(300)]
    sources = [s for p in plans for s in p.sources.values()]
    assert set(sources) == {"Deep House", "Bigroom"}
    share = sources.count("Deep House") / len(sources)
    assert abs(share - 0.75) < 0.02, share
    groups = len(synthetic.PART_GROUPS)
    for p in plans:
        # 7.5 of 10 groups, rounded either way; the signature parts always from the top genre
        assert list(p.sources.values()).count("Deep House") in (7, 8)
        assert p.sources["bass"] == p.sources["lead"] == "Deep House"
    # the drawn parameters follow the source genre's profile (Bigroom: pitched kick, no bass part)
    for p in plans[:60]:
        if p.sources["drums"] == "Bigroom":
            assert p.params["kick"] in synthetic.GENRE_PROFILES["Bigroom"]["kick"]
        if p.sources["tempo"] == "Deep House":
            assert 117 - 1.5 <= p.bpm <= 123 + 1.5
        assert p.params["bass"] in synthetic.GENRE_PROFILES["Deep House"]["bass"]

    # a tie shares the signature parts and the groups evenly; three genres get 5 / 3 / 2
    tie = np.zeros(8)
    tie[deep], tie[bigroom] = 0.5, 0.5
    for i in range(40):
        p = synthetic.plan_track(9, i, label=tie)
        assert {p.sources["bass"], p.sources["lead"]} == {"Deep House", "Bigroom"}
        assert list(p.sources.values()).count("Deep House") == groups // 2
    three = np.zeros(8)
    three[deep], three[bigroom], three[GENRES.index("Slap House")] = 0.5, 0.25, 0.25
    for i in range(40):
        p = synthetic.plan_track(9, i, label=three)
        counts = sorted((list(p.sources.values()).count(g) for g in ("Deep House", "Bigroom", "Slap House")), reverse=True)
        assert counts == [5, 3, 2] and p.sources["bass"] == p.sources["lead"] == "Deep House"
    one = np.zeros(8)
    one[bigroom] = 1.0
    assert set(synthetic.plan_track(9, 0, label=one).sources.values()) == {"Bigroom"}


def test_one_genre_tracks_have_signature_pairs_no_other_genre_has():
    genres = list(synthetic.GENRE_PROFILES)
    for i, a in enumerate(genres):
        for b in genres[i + 1:]:
            assert not synthetic.signature_pairs(a) & synthetic.signature_pairs(b), (a, b)
    for g in genres:
        one = np.zeros(8)
        one[GENRES.index(g)] = 1.0
        pairs = [(p.params["bass"], p.params["lead"]) for p in (synthetic.plan_track(3, i, label=one) for i in range(200))]
        assert set(pairs) == synthetic.signature_pairs(g), g  # every pair drawn, and only those
        own = pairs.count((synthetic.GENRE_PROFILES[g]["bass"][0], synthetic.GENRE_PROFILES[g]["lead"][0]))
        assert 0.4 < own / len(pairs) < 0.7, (g, own)  # 1/2-9/16 both signature parts, the rest one alternate
    # a tie may pair two genres' alternates: the rule is for one genre's own pair
    tie = np.zeros(8)
    tie[GENRES.index("Tech House")] = tie[GENRES.index("Bass House")] = 0.5
    drawn = {(p.params["bass"], p.params["lead"]) for p in (synthetic.plan_track(3, i, label=tie) for i in range(200))}
    assert ("offbeat_saw", None) in drawn or ("reese", "stab") in drawn


def test_arrangement_has_two_long_loud_drops():
    rng = np.random.default_rng(0)
    for total in (48, 64, 80):
        sections = synthetic.plan_arrangement(total, rng, short_drops=False, lead_in_bars=10)
        assert sections[0][2] + sections[1][2] >= 10  # drop 1 after the detector's skipped intro
        names = [s[0] for s in sections]
        assert names == ["intro", "build1", "drop1", "breakdown", "build2", "drop2", "outro"]
        assert sum(s[2] for s in sections) == total
        assert all(16 <= s[2] <= 32 for s in sections if s[0].startswith("drop"))
        assert [s[1] for s in sections] == list(np.cumsum([0] + [s[2] for s in sections[:-1]]))


def test_release_is_in_the_real_export_format(small_release):
    out, records = small_release
    export, drops = find_release_files(out)
    assert export.name == synthetic.EXPORT_NAME and drops is None  # the truth file is not a drop file
    tracks = parse_export(export)
    assert [t.audio_name for t in tracks] == [r["audio"] for r in records]
    for t, r in zip(tracks, records):
        assert (out / t.audio_name).is_file()
        expected = np.array([r["label"].get(g, 0.0) for g in GENRES])
        np.testing.assert_allclose(t.label, expected)
    raw = json.loads(export.read_text())
    assert {res["from_name"] for res in raw[0]["annotations"][0]["result"]} == {*GENRES[:3], "Techno", *GENRES[4:]}
    truth = synthetic.read_truth(out)
    assert truth == records and all(r["drop_sections"] and r["bpm"] > 0 for r in truth)


def test_audio_is_stereo_44k_mastered_under_the_ceiling(small_release):
    from housex.dataset_script.synthetic.master import CEILING_DB

    out, records = small_release
    y, sr = sf.read(out / records[0]["audio"], dtype="float32")
    assert sr == 44100 and y.ndim == 2 and y.shape[1] == 2
    assert abs(len(y) / sr - records[0]["duration"]) < 0.01
    assert 0.9 < np.max(np.abs(y)) <= 10 ** (CEILING_DB / 20) + 1 / 32768
    assert np.std(y[:, 0] - y[:, 1]) > 1e-3  # real stereo, not duplicated mono


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    # genres with sampled instruments (piano, Rhodes, strings, guitar): FluidSynth in other processes too
    organic = {"Progressive House": 1, "Deep House": 1}
    a = synthetic.generate_release(tmp_path / "a", 2, seed=11, duration=(20, 24), progress=False, genre_frequencies=organic)
    assert all(r["params"]["organic"] or r["params"]["lead"] in ("piano", "epiano", "vocal") for r in a)
    synthetic.generate_release(tmp_path / "b", 2, seed=11, duration=(20, 24), progress=False, workers=2,
                               genre_frequencies=organic)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    synthetic.generate_release(tmp_path / "c", 2, seed=12, duration=(20, 24), progress=False, genre_frequencies=organic)
    assert set(_digests(tmp_path / "a").values()).isdisjoint(
        v for k, v in _digests(tmp_path / "c").items() if k.endswith(".flac"))


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="format"):
        synthetic.generate_release(tmp_path, 1, 0, fmt="mp3", progress=False)
    with pytest.raises(ValueError, match="duration"):
        synthetic.generate_release(tmp_path, 1, 0, duration=(50, 20), progress=False)
    with pytest.raises(ValueError, match="n_tracks"):
        synthetic.generate_release(tmp_path, 0, 0, progress=False)
    for bad in (8000, 192000, 22050.5):
        with pytest.raises(ValueError, match=r"sample rate .*16000 to 96000 Hz"):
            synthetic.generate_release(tmp_path, 1, 0, sr=bad, progress=False)
    assert not any(tmp_path.iterdir())  # refused before anything is written


def test_drop_detector_finds_the_generator_drops():
    from housex.dataset_script.drops import detect_drops

    plan = synthetic.plan_track(5, 0, duration=(95, 95), fallback_share=0.0)
    y = synthetic.render_track(plan)
    found = detect_drops(y.mean(axis=1), synthetic.SAMPLE_RATE)
    assert not found.fallback and len(found.sections) == 2
    for (a, b), (c, d) in zip(found.sections, plan.drop_sections()):
        inter = max(0.0, min(b, d) - max(a, c))
        assert inter / (max(b, d) - min(a, c)) > 0.8, (found.sections, plan.drop_sections())
    short = synthetic.plan_track(5, 1, duration=(95, 95), fallback_share=1.0)
    assert detect_drops(synthetic.render_track(short).mean(axis=1), synthetic.SAMPLE_RATE).fallback


def test_synth_build_load_dataset_and_probe(small_release, tmp_path):
    """The real path: release folder → housex build (export_dataset) → load_dataset → linear probe."""
    import datasets

    from housex.cli import main
    from housex.trainer.baselines.probe import linear_probe
    from housex.trainer.predictions import metrics_from_predictions, read_predictions

    release, records = small_release
    out = tmp_path / "built"
    assert main(["build", "--data-dir", str(release), "--out", str(out), "--config", "clips", "--quiet",
                 "--validation-fraction", "0.5"]) == 0
    ds = datasets.load_dataset(str(out), "clips")
    n_clips = ds["train"].num_rows + ds["validation"].num_rows
    assert n_clips >= 4 * len(records)
    assert set(ds["train"]["track_id"]).isdisjoint(ds["validation"]["track_id"])
    assert {GENRES[i] for i in ds["train"]["label"]} <= {"Progressive House", "Tech House"}
    result = linear_probe(ds, n_mels=32, source=str(out))
    assert result["num_train_clips"] == ds["train"].num_rows and result["num_clips"] == ds["validation"].num_rows
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["f1_weighted"] <= 1.0
    # two decoding processes, the same figures (a fresh process: Dataset.map forks its workers; its
    # own datasets cache, or it would reuse the features mapped above)
    probe_dir = tmp_path / "probe"
    subprocess.run([sys.executable, "-m", "housex.cli", "probe", "--dataset", str(out), "--n-mels", "32",
                    "--workers", "2", "--out", str(probe_dir)], check=True, capture_output=True,
                   env={**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "datasets-cache")})
    assert list((tmp_path / "datasets-cache").rglob("cache-*_of_00002.arrow"))  # written by two workers
    assert json.loads((probe_dir / "metrics.json").read_text()) == json.loads(json.dumps(result))
    # scored like every other row: metrics.json is a function of predictions.parquet
    predictions = read_predictions(probe_dir)
    assert predictions.row_info["kind"] == "linear probe" and len(predictions) == ds["validation"].num_rows
    assert json.loads(json.dumps(metrics_from_predictions(predictions))).items() <= result.items()


def test_probe_names_the_row_it_cannot_decode():
    import datasets

    from housex.trainer.baselines.probe import dataset_features

    good = io.BytesIO()
    sf.write(good, np.random.default_rng(0).uniform(-0.5, 0.5, 8000), 8000, format="FLAC")
    features = datasets.Features({"audio": datasets.Audio(decode=False), "label": datasets.ClassLabel(names=list(GENRES))})
    cells = [{"bytes": good.getvalue(), "path": None}, {"bytes": b"fLaC-not-really", "path": None}]
    ds = datasets.Dataset.from_dict({"audio": cells, "label": [0, 1]}, features=features)
    assert dataset_features(ds.select([0]), n_mels=16)[0].shape == (1, 16)
    with pytest.raises(ValueError, match=r"split validation row 1: audio cannot be decoded"):
        dataset_features(ds, n_mels=16, split_name="validation")


def test_synth_cli_writes_release_and_previews(tmp_path):
    from housex.cli import main
    from housex.commands import synth

    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--tracks", "1", "--seed", "4", "--duration", "20", "20",
                 "--format", "ogg", "--no-progress"]) == 0
    assert len(list(out.glob("*.ogg"))) == 1 and (out / synthetic.EXPORT_NAME).is_file()
    again = tmp_path / "cli-again"
    assert main(["synth", "--out", str(again), "--tracks", "1", "--seed", "4", "--duration", "20", "20",
                 "--format", "ogg", "--no-progress"]) == 0
    assert _digests(out) == _digests(again)  # OGG bytes are reproducible too
    assert main(["synth", "--out", str(out), "--tracks", "0", "--seed", "4"]) == 2
    # at the model's rate: the same plan (labels, drops, loudness target), a 22.05 kHz file
    half = tmp_path / "cli-22k"
    assert main(["synth", "--out", str(half), "--tracks", "1", "--seed", "4", "--duration", "20", "20",
                 "--sample-rate", "22050", "--no-progress"]) == 0
    truth = json.loads((half / synthetic.TRUTH_NAME).read_text())
    assert truth["sample_rate"] == 22050 and sf.info(next(half.glob("*.flac"))).samplerate == 22050
    # WAV (the demo's): the FLAC's 16-bit samples, to the last bit (libsndfile's FLAC and WAV writers
    # round float to int differently)
    wav = tmp_path / "cli-wav"
    assert main(["synth", "--out", str(wav), "--tracks", "1", "--seed", "4", "--duration", "20", "20",
                 "--sample-rate", "22050", "--format", "wav", "--no-progress"]) == 0
    assert sf.info(next(wav.glob("*.wav"))).format == "WAV"
    pcm = [sf.read(next(folder.glob(pattern)), dtype="int16")[0].astype(np.int32) for folder, pattern in
           ((wav, "*.wav"), (half, "*.flac"))]
    assert pcm[0].shape == pcm[1].shape and np.abs(pcm[0] - pcm[1]).max() <= 1
    full = json.loads((out / synthetic.TRUTH_NAME).read_text())["tracks"][0]
    assert {k: truth["tracks"][0][k] for k in ("label", "drop_sections", "params")} == \
        {k: full[k] for k in ("label", "drop_sections", "params")}
    assert main(["synth", "--out", str(tmp_path / "cli-8k"), "--tracks", "1", "--sample-rate", "8000", "--no-progress"]) == 2
    pngs = synth.write_previews(tmp_path / "preview", seed=0, duration=20.0)
    assert len(pngs) == 8 and all(p.stat().st_size > 10_000 for p in pngs)


def test_effects_are_pedalboard_s_and_keep_length_and_loop_steady_state():
    import pedalboard

    from housex.dataset_script.synthetic import dsp

    sr = 44100
    x = (np.random.default_rng(2).standard_normal((sr, 2)) * 0.1).astype(np.float32)
    x[: sr // 2] = 0.0  # exact silence (the case the denormal guard is for)
    direct = pedalboard.Pedalboard([pedalboard.LowpassFilter(800.0)])(x, sr)
    np.testing.assert_allclose(dsp.lowpass(x, 800.0, sr, order=1), direct, atol=1e-7)
    for ds in (2, 3, 4):  # zero-order-hold resampling drops a sample or two for some factors: not kept
        assert dsp.bitcrush(x, sr, bits=6, downsample=ds).shape == x.shape
    # a loop's effect in its steady state: as if the loop had been playing for a while already
    steady = dsp.delay_loop(x, sr, 0.25, feedback=0.3, mix=0.5)
    long_run = dsp.effects(np.concatenate([x] * 6), sr, [pedalboard.Delay(0.25, 0.3, 0.5)])[-sr:]
    assert steady.shape == x.shape and np.max(np.abs(steady - long_run)) < 0.01 * np.max(np.abs(long_run))
    assert np.max(np.abs(steady[: sr // 4])) > 0.01  # the echo of the loop's end wraps round to its start
    saw = dsp.saw(440.0, sr, sr)
    assert abs(saw.mean()) < 0.01 and np.max(np.abs(saw)) < 1.1


def test_sampled_instruments_are_deterministic_whatever_was_played_before():
    from housex.dataset_script.synthetic import sampled

    sr = 44100
    a = sampled.render_note(0, 60, 20000, 30000, sr)
    sampled.render_note(48, 67, 12345, 40001, sr)  # another instrument and note in between
    b = sampled.render_note(0, 60, 20000, 30000, sr)
    assert a.shape == (30000, 2) and a.dtype == np.float32 and np.array_equal(a, b)
    assert np.max(np.abs(a[:20000])) > 0.02 and np.max(np.abs(a[-1000:])) < 0.5 * np.max(np.abs(a))  # plays, releases
    for kind, programs in sampled.PROGRAMS.items():  # every instrument the generator uses sounds, each differently
        notes = [sampled.render_note(p, 60, 8000, 9000, sr) for p in programs]
        assert all(np.sqrt(np.mean(n**2)) > 1e-3 for n in notes), kind
        assert not np.allclose(notes[0], notes[1]), kind


def test_a_missing_soundfont_is_one_clear_error(tmp_path, monkeypatch, capsys):
    from housex.cli import main
    from housex.dataset_script.synthetic import sampled

    monkeypatch.setenv(sampled.SOUNDFONT_ENV, str(tmp_path / "nope.sf2"))
    with pytest.raises(sampled.SoundFontMissing, match="nope.sf2: no such SoundFont"):
        sampled.render_note(0, 60, 100, 200, 44100)
    assert main(["synth", "--out", str(tmp_path / "r"), "--tracks", "1", "--no-progress"]) == 2
    assert "nope.sf2: no such SoundFont file" in capsys.readouterr().err
    assert not list((tmp_path / "r").glob("*.flac"))


def test_organic_parts_are_played_by_the_sampled_instruments():
    from housex.dataset_script.synthetic import dsp, sampled, voices
    from housex.dataset_script.synthetic.loop import Loop

    plan = synthetic.preview_plan(0, "Progressive House", 30.0)
    lp = Loop(plan, synthetic.SAMPLE_RATE, np.random.default_rng(0))
    variant = plan.params["sample_variant"]
    for sound, kind, pan in ((voices.LEADS["piano"], "piano", None), (voices.LEADS["epiano"], "epiano", None),
                             (voices.LEADS["horn"], "brass", None), (voices.LEADS["vocal"], "choir", None),
                             (voices.CHORDS["strings"], "strings", None), (voices.CHORDS["piano"], "piano", None),
                             (voices.ORGANIC["guitar"], "guitar", 0.35), (voices.ORGANIC["piano"], "piano", -0.3)):
        y = sound.voice(lp, float(dsp.midi_to_hz(57)), 6000)
        note = sampled.render_note(sampled.PROGRAMS[kind][variant % 2], 57, 6000, y.shape[0], synthetic.SAMPLE_RATE)
        np.testing.assert_array_equal(y, note if pan is None else dsp.pan(note.mean(axis=1), pan))


def test_tracks_are_mastered_to_their_drop_loudness_under_the_ceiling():
    import pyloudnorm

    from housex.dataset_script.synthetic import master

    sr = synthetic.SAMPLE_RATE
    for genre in ("Bigroom", "Deep House", "Tech House"):
        plan = synthetic.preview_plan(2, genre, 70.0)
        y = synthetic.render_track(plan)
        assert np.max(np.abs(y)) <= 10 ** (master.CEILING_DB / 20) + 1e-6  # nothing over the limiter's ceiling
        a, b = plan.drop_sections()[0]
        drop = y[int((a + 1) * sr): int((b - 1) * sr)].astype(np.float64)
        assert abs(pyloudnorm.Meter(sr).integrated_loudness(drop) - plan.params["drop_lufs"]) < 1.0, genre
        assert -11.0 < pyloudnorm.Meter(sr).integrated_loudness(y.astype(np.float64)) < -4.0, genre
        assert np.array_equal(y, synthetic.render_track(plan))


def test_demo_checks_the_disk_before_it_synthesises(tmp_path):
    from housex.cli import main
    from housex.commands.demo import check_disk, disk_needed

    # the default demo measured 14 GB of release + 1.3 GB of dataset: the estimate covers both
    assert 15.3e9 < disk_needed(1440, (70.0, 100.0)) < 20e9
    assert disk_needed(720, (70.0, 100.0)) == pytest.approx(disk_needed(1440, (70.0, 100.0)) / 2, rel=1e-6)
    # the demo's own 22.05 kHz release (7.3 GB measured for 1440 tracks) takes half
    assert disk_needed(1440, (70.0, 100.0), 22050) == pytest.approx(disk_needed(1440, (70.0, 100.0)) / 2, rel=1e-6)
    # as WAV: 4 bytes a stereo frame (the demo's 1600 tracks: a 12.0 GB release)
    assert 12.0e9 < disk_needed(1600, (70.0, 100.0), 22050, "wav") < 15e9
    check_disk(tmp_path, needed=10, free=11)
    with pytest.raises(RuntimeError, match=r"needs about 18\.4 GB of free disk .* 2\.0 GB are free"):
        check_disk(tmp_path, needed=disk_needed(1440, (70.0, 100.0)), free=2_000_000_000)
    # through the CLI: a demo far larger than any disk stops before writing a single track
    rc = main(["demo", "--out", str(tmp_path / "out"), "--dataset", str(tmp_path / "ds"), "--tracks", "100000000"])
    assert rc != 0 and not (tmp_path / "out" / "release").exists()


def test_demo_truth_lines_lay_the_tracks_end_to_end_with_their_labels(small_release):
    """The demo prints, beside its predictions, what the generator put in the held-out track and mix."""
    from housex.commands.demo import truth_lines

    out, records = small_release
    tracks = [out / r["audio"] for r in records[:2]]
    lines = truth_lines(out, tracks)
    assert len(lines) == 2
    first = sf.info(tracks[0]).duration
    assert lines[0].startswith("  0:00.0 - ") and lines[1].startswith(f"  {int(first // 60)}:{first % 60:04.1f} - ")
    for line, record in zip(lines, records):
        top = max(record["label"], key=record["label"].get)
        assert line.split("  ", 2)[2].startswith(f"{top} {record['label'][top]:.2f}"), (line, record["label"])
    assert truth_lines(out.parent, tracks) == []  # not a synthetic release: nothing to print
