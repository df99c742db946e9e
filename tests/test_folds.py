"""Cross-validation folds: housex build --folds K (a stratified group K-fold by track, seeded; a build
without it unchanged), training on K-1 folds with --fold k, housex grid --folds K and --seeds, and the
table pooling the folds so that every track is scored once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_trainer import SEED, tiny  # noqa: F401  (tiny: the trainer tests' session fixture)

from housex.cli import main as housex

FOLDS = 3


@pytest.fixture(scope="session")
def folded(tiny, tmp_path_factory) -> Path:
    """The tiny release built with --folds 3 (same options as the trainer tests' export)."""
    release = tiny[0]
    out = tmp_path_factory.mktemp("folds") / "dataset"
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
        assert Counter(per_track.values()) == {0: 8, 1: 8, 2: 8}
        # stratified: each genre's 3 tracks go to 3 different folds
        labels = dict(zip(clips["track_id"], clips["label"]))
        for genre in set(labels.values()):
            assert sorted(per_track[t] for t in labels if labels[t] == genre) == [0, 1, 2]
    # seeded: the same seed, the same folds; another seed, others
    entries = [TrackEntry("r", f"t{i:02d}", str(i), Path("x"), np.eye(8)[i % 8]) for i in range(40)]
    assert assign_folds(entries, 5, seed=1) == assign_folds(list(reversed(entries)), 5, seed=1)
    assert assign_folds(entries, 5, seed=1) != assign_folds(entries, 5, seed=2)
    with pytest.raises(ValueError, match="only 3 usable tracks"):
        assign_folds(entries[:3], 5)


def test_build_folds_option_is_checked(tmp_path, capsys):
    assert housex(["build", "--data-dir", str(tmp_path), "--out", str(tmp_path / "x"), "--folds", "1"]) == 2
    assert "--folds: must be >= 2" in capsys.readouterr().err
