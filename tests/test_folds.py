"""Cross-validation folds: housex build --folds K (a stratified group K-fold by track, seeded; a build
without it unchanged), training on K-1 folds with --fold k, housex grid --folds K and --seeds, and the
table pooling the folds so that every track is scored once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_trainer import SEED, tiny  # noqa: F401  (tiny: the trainer tests' session fixture)

from housex.cli import main as housex

FOLDS = 2


@pytest.fixture(scope="session")
def folded(tiny, tmp_path_factory) -> Path:
    """The tiny release built with --folds 2 (same options as the trainer tests' export)."""
    release = tiny[0]
    # named by its fold count: datasets caches a local folder by its name and card YAML, which a
    # different fold count does not change
    out = tmp_path_factory.mktemp("folds") / f"housex-folds{FOLDS}"
    assert housex(["build", "--data-dir", str(release), "--out", str(out), "--seed", str(SEED), "--clip-seconds", "2",
                   "--clips-per-section", "2", "--folds", str(FOLDS), "--quiet"]) == 0
    return out


def test_build_folds_are_stratified_by_track_and_leave_the_split_alone(tiny, folded):
    import datasets

    from housex.dataset_script.build_plan import TrackEntry, assign_folds

    plain = tiny[3]  # the same release and options, built without --folds
    for config in ("clips", "tracks"):
        with_folds = datasets.load_dataset(str(folded), config)
        for split in ("train", "validation"):
            a, b = with_folds[split], datasets.load_dataset(str(plain), "clips")[split] if config == "clips" else None
            if b is not None:  # the same rows, one more column
                assert a.column_names == b.column_names + ["fold"]
                assert a["track_id"] == b["track_id"] and a["clip_start"] == b["clip_start"]
            folds_of = {}
            for track, fold in zip(a["track_id"], a["fold"]):
                assert folds_of.setdefault(track, fold) == fold  # every clip of a track in one fold
        clips = datasets.concatenate_datasets([with_folds["train"], with_folds["validation"]])
        per_track = dict(zip(clips["track_id"], clips["fold"]))
        assert sorted(Counter(per_track.values())) == list(range(FOLDS))
        assert Counter(per_track.values()) == {0: 12, 1: 12}
        # stratified: each genre's 3 tracks are in both folds
        labels = dict(zip(clips["track_id"], clips["label"]))
        for genre in set(labels.values()):
            assert {per_track[t] for t in labels if labels[t] == genre} == {0, 1}
    # seeded: the same seed, the same folds; another seed, others
    entries = [TrackEntry("r", f"t{i:02d}", str(i), Path("x"), np.eye(8)[i % 8]) for i in range(40)]
    assert assign_folds(entries, 5, seed=1) == assign_folds(list(reversed(entries)), 5, seed=1)
    assert assign_folds(entries, 5, seed=1) != assign_folds(entries, 5, seed=2)
    with pytest.raises(ValueError, match="only 3 usable tracks"):
        assign_folds(entries[:3], 5)


def test_build_folds_option_is_checked(tmp_path, capsys):
    assert housex(["build", "--data-dir", str(tmp_path), "--out", str(tmp_path / "x"), "--folds", "1"]) == 2
    assert "--folds: must be >= 2" in capsys.readouterr().err


def test_grid_over_seeds_and_folds_and_the_pooled_table(tiny, folded, tmp_path, capsys):
    import datasets

    from housex.trainer.predictions import read_predictions

    settings = yaml.safe_load(tiny[1].read_text())
    for key in ("release_dirs", "build_dir", "build_options"):  # the dataset comes from --dataset
        settings.pop(key)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "cv"
    argv = ["grid", "--dataset", str(folded), "--out", str(out), "--config", str(config), "--backbones",
            "shufflenet_v2_x0_5", "--features", "mel", "--labels", "soft", "--seeds", "1", "2",
            "--folds", str(FOLDS), "--train-args", "--max_steps 1"]
    assert housex(argv) == 0
    grid = json.loads((out / "grid.json").read_text())
    assert [(r["seed"], r["fold"]) for r in grid["runs"]] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    # --fold k: fold k of both splits validates, every other track trains
    built = datasets.load_dataset(str(folded), "clips")
    clips = datasets.concatenate_datasets([built["train"], built["validation"]])
    fold_of = dict(zip(clips["track_id"], clips["fold"]))
    run = read_predictions(out / "shufflenet_v2_x0_5-mel-soft-seed2-fold1")
    assert {fold_of[t] for t in run.track_ids} == {1} and len(run) == sum(f == 1 for f in clips["fold"])
    assert (run.row_info["seed"], run.row_info["fold"], run.row_info["num_folds"]) == (2, 1, FOLDS)
    metrics = json.loads((out / "shufflenet_v2_x0_5-mel-soft-seed2-fold1" / "metrics.json").read_text())
    assert metrics["num_train_clips"] == len(clips) - len(run) and metrics["split"] == "folds"
    card = (out / "shufflenet_v2_x0_5-mel-soft-seed2-fold1" / "README.md").read_text()
    assert "Fold 1 of 2 (cross-validation; the other folds trained)" in card
    assert yaml.safe_load(card.split("---")[1])["model-index"][0]["results"][0]["dataset"]["split"] == "fold 1"
    assert "seeds 1, 2 averaged" in (out / "table.md").read_text()

    # the table pools the folds (every clip scored once) and averages the seeds
    capsys.readouterr()
    assert housex(["table", str(out), "--out", str(tmp_path / "table"), "--resamples", "200"]) == 0
    shown = capsys.readouterr().out
    table = json.loads((tmp_path / "table" / "table.json").read_text())
    (row,) = table["rows"]
    assert table["groups"][0]["num_clips"] == len(clips) and table["groups"][0]["num_tracks"] == 24
    assert row["seeds"] == [1, 2] and row["folds"] == FOLDS
    seed_f1 = []
    for seed in (1, 2):
        parts = [read_predictions(out / f"shufflenet_v2_x0_5-mel-soft-seed{seed}-fold{k}") for k in range(FOLDS)]
        from housex.trainer.predictions import metrics_from_predictions, pool_predictions

        seed_f1.append(metrics_from_predictions(pool_predictions(parts), bootstrap=None)["f1_weighted"])
    assert row["over_seeds"]["f1_weighted"]["mean"] == pytest.approx(np.mean(seed_f1))
    assert row["over_seeds"]["f1_weighted"]["sd"] == pytest.approx(np.std(seed_f1, ddof=1))
    assert "F1 over seeds" in shown and " ± " in shown

    # a fold count the dataset does not have, a dataset without folds: one line each
    assert housex([*argv, "--folds", "3"]) == 2  # the last --folds wins
    err = capsys.readouterr().err.strip()
    assert f"grid --folds 3: the dataset {str(folded)!r} has 2 folds" in err and len(err.splitlines()) == 1
    assert housex(["grid", "--dataset", str(tiny[3]), "--out", str(tmp_path / "nofolds"), "--config", str(config),
                   "--backbones", "shufflenet_v2_x0_5", "--features", "mel", "--labels", "soft", "--folds", "2"]) == 2
    assert "has no folds (build it with housex build --folds 2)" in capsys.readouterr().err
    assert not (tmp_path / "nofolds").exists() or not any((tmp_path / "nofolds").iterdir())  # nothing trained
    from housex.trainer.arguments import parse_args
    from housex.trainer.train import main

    with pytest.raises(ValueError, match="has no 'fold' column"):
        main(*parse_args([str(config), "--dataset_name", str(tiny[3]), "--fold", "0", "--output_dir",
                          str(tmp_path / "x")]))
    with pytest.raises(ValueError, match=r"--fold 2: dataset .* has folds 0\.\.1"):
        main(*parse_args([str(config), "--dataset_name", str(folded), "--fold", "2", "--output_dir",
                          str(tmp_path / "x")]))


def test_a_rebuilt_or_same_named_folder_never_loads_a_stale_copy(tiny, tmp_path):
    """datasets caches a local folder under its name and config only: a rebuild whose splits have the same
    sizes (another fold count) loaded the previous build's rows, and so did another folder of the same name.
    The build forgets the cached copies; the project's loader keys the cache on the files."""
    import datasets

    from housex.trainer.data import load_clips_dataset

    release = tiny[0]
    common = ["--data-dir", str(release), "--seed", str(SEED), "--clip-seconds", "2", "--clips-per-section", "2",
              "--config", "clips", "--quiet", "--overwrite"]
    here, there = tmp_path / "a" / "housex-v2", tmp_path / "b" / "housex-v2"
    for k in (3, 2):  # the same folder rebuilt: same split sizes, other folds
        assert housex(["build", "--out", str(here), "--folds", str(k), *common]) == 0
        assert sorted(set(datasets.load_dataset(str(here), "clips")["train"]["fold"])) == list(range(k))
        assert sorted(set(load_clips_dataset(here)["train"]["fold"])) == list(range(k))
    assert housex(["build", "--out", str(there), "--folds", "3", *common]) == 0
    assert sorted(set(load_clips_dataset(there)["train"]["fold"])) == [0, 1, 2]
    assert sorted(set(load_clips_dataset(here)["train"]["fold"])) == [0, 1]


def test_more_folds_than_any_genre_has_tracks_is_one_clear_error():
    from housex.dataset_script.build_plan import TrackEntry, assign_folds

    entries = [TrackEntry("r", f"t{i:02d}", str(i), Path("x"), np.eye(8)[i % 4]) for i in range(8)]  # 2 a genre
    assert sorted(set(assign_folds(entries, 2, seed=0).values())) == [0, 1]
    with pytest.raises(ValueError, match=r"folds=3: no genre has 3 usable tracks \(at most 2\)"):
        assign_folds(entries, 3, seed=0)
