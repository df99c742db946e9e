"""predictions.parquet: one format for every row; checked on write and read, written atomically;
metrics.json figures recomputed from it."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from housex.trainer import predictions as P


def sample(n_tracks: int = 12, clips: int = 3, seed: int = 0, answers: bool = False) -> dict:
    """Arguments of write_predictions for ``n_tracks`` tracks of ``clips`` clips (random but valid)."""
    rng = np.random.default_rng(seed)
    n = n_tracks * clips
    track_ids = np.repeat([f"track{t:03d}" for t in range(n_tracks)], clips)
    labels = np.zeros((n_tracks, 8))
    labels[np.arange(n_tracks), rng.integers(0, 8, n_tracks)] = 1.0
    labels[::3] = 0.75 * labels[::3] + 0.25 * np.roll(labels[::3], 1, axis=1)
    soft = np.repeat(labels, clips, axis=0)
    out = {"clip_ids": [f"{t}@{i:.3f}-{i + 2:.3f}" for i, t in enumerate(track_ids)], "track_ids": track_ids,
           "soft_labels": soft}
    if answers:
        parsed = rng.random(n) > 0.2
        probs = np.eye(8)[rng.integers(0, 8, n)] * parsed[:, None]
        return {**out, "probabilities": probs, "parsed": parsed}
    return {**out, "probabilities": rng.dirichlet(np.full(8, 0.5), n)}


def test_round_trip_keeps_columns_order_row_info_and_extra_columns(tmp_path):
    args = sample(answers=True)
    raw = [f"answer {i}" for i in range(len(args["clip_ids"]))]
    path = P.write_predictions(tmp_path / "run", **args, extra_columns={"raw_answer": raw},
                               row_info={"model": "m", "kind": "MLLM", "split": "validation"})
    assert path == tmp_path / "run" / P.PREDICTIONS_FILE
    assert [p.name for p in (tmp_path / "run").iterdir()] == [P.PREDICTIONS_FILE]  # no temporary file left
    p = P.read_predictions(tmp_path / "run")
    assert list(p.clip_ids) == args["clip_ids"] and list(p.track_ids) == list(args["track_ids"])
    np.testing.assert_array_equal(p.soft_labels, args["soft_labels"])
    np.testing.assert_array_equal(p.probabilities, args["probabilities"])
    np.testing.assert_array_equal(p.parsed, args["parsed"])
    assert list(p.extra["raw_answer"]) == raw and p.is_answers
    assert p.row_info == {"model": "m", "kind": "MLLM", "split": "validation"}
    # row.json beside the file names (or renames) the row
    (tmp_path / "run" / P.ROW_FILE).write_text(json.dumps({"model": "renamed", "dataset": "housex-v2"}))
    assert P.read_predictions(path).row_info == {"model": "renamed", "kind": "MLLM", "split": "validation",
                                                 "dataset": "housex-v2"}
    # what a user's own script writes with pandas (variable-length lists) reads the same
    table = pa.table({"clip_id": args["clip_ids"], "track_id": list(args["track_ids"]),
                      "soft_label": args["soft_labels"].tolist(), "probabilities": args["probabilities"].tolist(),
                      "parsed": args["parsed"].tolist()})
    pq.write_table(table, tmp_path / "mine.parquet")
    mine = P.read_predictions(tmp_path / "mine.parquet")
    np.testing.assert_array_equal(mine.probabilities, p.probabilities)
    assert mine.fingerprint() == p.fingerprint() and mine.row_info == {}


def test_fingerprint_and_order_identify_the_scored_clips():
    a = P.make_predictions(**sample())
    shuffled = a._take(np.random.default_rng(1).permutation(len(a)))
    assert shuffled.fingerprint() == a.fingerprint()
    back = shuffled.in_order(a.clip_ids)
    np.testing.assert_array_equal(back.probabilities, a.probabilities)
    assert a._take(np.arange(len(a) - 1)).fingerprint() != a.fingerprint()
    other = sample()
    other["soft_labels"] = np.roll(other["soft_labels"], 1, axis=1)
    assert P.make_predictions(**other).fingerprint() != a.fingerprint()


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(probabilities=a["probabilities"][:, :7]), "probabilities has shape (36, 7), expected (36, 8)"),
    (lambda a: a["probabilities"].__setitem__((3, 0), np.nan), "probabilities row 3 is not finite"),
    (lambda a: a["probabilities"].__setitem__((4, 0), 3.0), "probabilities row 4 (track001@4.000-6.000) sums to"),
    (lambda a: a["soft_labels"].__setitem__(5, -a["soft_labels"][5]), "soft_label row 5 has a negative value"),
    (lambda a: a["soft_labels"].__setitem__(6, 0.0), "soft_label row 6 (track002@6.000-8.000) sums to 0"),
    (lambda a: a.update(track_ids=a["track_ids"][:-1]), "track_id has 35 entries, expected 36"),
    (lambda a: a["clip_ids"].__setitem__(1, a["clip_ids"][0]), "clip_id 'track000@0.000-2.000' appears 2 times"),
    (lambda a: a.update(track_ids=[""] * 36), "track_id row 0 is '', expected a non-empty string"),
    (lambda a: a.update(parsed=np.ones(36)), "parsed must be 36 booleans"),
])
def test_bad_predictions_are_refused_naming_the_field_and_nothing_is_written(tmp_path, change, message):
    args = sample()
    args["probabilities"] = args["probabilities"].copy()
    change(args)
    with pytest.raises(ValueError, match="^" + str(tmp_path / P.PREDICTIONS_FILE).replace("\\", "\\\\") + ": .*"
                       ) as info:
        P.write_predictions(tmp_path, **args)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    args = sample()
    P.write_predictions(tmp_path, **args, row_info={"model": "first"})

    def fail(*a, **k):
        raise OSError("No space left on device")

    monkeypatch.setattr(pq, "write_table", fail)
    with pytest.raises(OSError):
        P.write_predictions(tmp_path, **sample(seed=1), row_info={"model": "second"})
    assert [p.name for p in tmp_path.iterdir()] == [P.PREDICTIONS_FILE]
    assert P.read_predictions(tmp_path).row_info == {"model": "first"}


def test_unreadable_files_are_one_line_errors(tmp_path):
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="x.parquet: not a Parquet file"):
        P.read_predictions(tmp_path / "x.parquet")
    pq.write_table(pa.table({"clip_id": ["a"], "track_id": ["t"], "probabilities": [[1.0] + [0.0] * 7]}),
                   tmp_path / "y.parquet")
    with pytest.raises(ValueError, match="y.parquet: column 'soft_label' missing"):
        P.read_predictions(tmp_path / "y.parquet")
    with pytest.raises(FileNotFoundError, match="no such file"):
        P.read_predictions(tmp_path / "empty-folder")


def test_metrics_are_the_metric_modules_and_track_level_means_clips(tmp_path):
    import evaluate

    from housex.trainer import METRIC_FILE

    args = sample()
    p = P.make_predictions(**args)
    m = P.metrics_from_predictions(p)
    want = evaluate.load(str(METRIC_FILE)).compute(predictions=args["probabilities"], references=args["soft_labels"],
                                                   prediction_type="probs")
    assert {k: m[k] for k in want} == want
    assert m["num_tracks"] == 12 and m["clips_fingerprint"] == p.fingerprint()
    # track level by hand: mean of 3 clips' probabilities against the track's label
    probs = args["probabilities"].reshape(12, 3, 8).mean(axis=1)
    labels = args["soft_labels"][::3]
    from housex.dataset_script.genres import sharpen_ids

    assert m["track_level"]["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == sharpen_ids(labels)))
    kl = np.sum(labels * np.log(np.where(labels > 0, labels, 1) / probs), axis=1).mean()
    assert m["track_level"]["kl_divergence"] == pytest.approx(kl)
    assert m["track_level"]["num_tracks"] == 12


def test_answer_rows_count_unparsed_as_wrong():
    args = sample(answers=True)
    p = P.make_predictions(**args)
    m = P.metrics_from_predictions(p)
    from housex.dataset_script.genres import sharpen_ids

    y = sharpen_ids(args["soft_labels"])
    chosen = args["probabilities"].argmax(1)
    assert m["accuracy"] == pytest.approx(np.mean(args["parsed"] & (chosen == y)))
    assert m["num_unparsed"] == int((~args["parsed"]).sum())
    assert len(m["confusion_matrix"]) == 8 and len(m["confusion_matrix"][0]) == 9
    assert sum(row[8] for row in m["confusion_matrix"]) == m["num_unparsed"]
    assert set(m["track_level"]) == {"accuracy", "f1_weighted", "num_tracks"}


def test_seed_average_and_fold_pool():
    a, b = P.make_predictions(**sample(seed=0)), P.make_predictions(**sample(seed=1))
    mean = P.average_predictions([a, b._take(np.arange(len(b))[::-1])])
    np.testing.assert_allclose(mean.probabilities, (a.probabilities + b.probabilities) / 2)
    first, second = a._take(np.arange(0, 18)), a._take(np.arange(18, 36))
    pooled = P.pool_predictions([second, first])
    assert pooled.fingerprint() == a.fingerprint()
    with pytest.raises(ValueError, match="appears 2 times"):
        P.pool_predictions([first, first])
