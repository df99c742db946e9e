"""housex table and housex compare on prediction folders: intervals in every cell, best and
not-significantly-worse marks, refusal of mixed clip sets, paired differences with p-values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from housex.cli import main as housex
from housex.trainer import predictions as P


def model_run(folder: Path, skill: float, seed: int, n_tracks: int = 60, clips: int = 4, tracks_offset: int = 0,
              **row_info) -> P.Predictions:
    """A run folder with only predictions.parquet: a model right on a track with probability ``skill``
    (its clips share the track's fate, as real clips do)."""
    truth = np.random.default_rng(123)  # the same dataset for every run
    genre = truth.integers(0, 8, n_tracks)
    rng = np.random.default_rng(seed)
    knows = rng.random(n_tracks) < skill
    guess = np.where(knows, genre, (genre + rng.integers(1, 8, n_tracks)) % 8)
    track = np.repeat(np.arange(n_tracks), clips)
    probs = rng.dirichlet(np.ones(8), len(track)) * 0.4
    probs[np.arange(len(track)), guess[track]] += 0.6
    ids = [f"t{t + tracks_offset:03d}@{2 * (i % clips):.3f}-{2 * (i % clips) + 2:.3f}" for i, t in enumerate(track)]
    P.write_predictions(folder, clip_ids=ids, track_ids=[f"t{t + tracks_offset:03d}" for t in track],
                        soft_labels=np.eye(8)[genre[track]], probabilities=probs,
                        row_info={"dataset": "housex-v2", "split": "validation", **row_info})
    return P.read_predictions(folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    model_run(root / "strong", 0.85, 1, model="strong", kind="HouseX", features="mel", labels="soft")
    model_run(root / "strong-too", 0.84, 2, model="strong too", kind="HouseX", features="mel", labels="hard")
    model_run(root / "weak", 0.3, 3, model="weak", kind="peer model")
    model_run(root / "mine", 0.5, 4)  # no row info beyond the dataset: named by its folder
    (root / "mine" / P.ROW_FILE).write_text(json.dumps({"model": "my model", "kind": "my kind"}))
    (root / "running").mkdir()
    return root


def test_table_cells_carry_intervals_marks_and_the_clip_set(runs, tmp_path, capsys):
    out = tmp_path / "table"
    sources = [runs / n for n in ("weak", "mine", "strong", "running", "strong-too")]
    assert housex(["table", *map(str, sources), "--out", str(out), "--resamples", "500"]) == 0
    shown = capsys.readouterr().out
    table = json.loads((out / "table.json").read_text())
    rows = table["rows"]
    assert [r["model"] for r in rows] == ["strong", "strong too", "weak", "my model"]  # by kind, then given order
    assert table["pending"] == [str(runs / "running")]
    group = table["groups"][0]
    assert (group["dataset"], group["split"], group["num_clips"], group["num_tracks"]) == ("housex-v2", "validation",
                                                                                          240, 60)
    assert f"240 clips of 60 tracks (clips fingerprint `{group['clips_fingerprint']}`)" in shown
    strong, strong_too, weak = rows[0], rows[1], rows[2]
    for row in rows:  # every row carries its dataset, split, clip count and the clips' fingerprint
        assert (row["dataset"], row["split"], row["num_clips"], row["clips_fingerprint"]) == (
            "housex-v2", "validation", 240, group["clips_fingerprint"])
    metrics = P.metrics_from_predictions(P.read_predictions(runs / "strong"), P.Bootstrap(resamples=500))
    assert strong["f1_weighted"] == metrics["f1_weighted"]
    assert strong["intervals"]["f1_weighted"] == metrics["intervals"]["f1_weighted"]  # the same resamples
    assert strong["track_f1_weighted"] == metrics["track_level"]["f1_weighted"]
    best = max(rows, key=lambda r: r["f1_weighted"])
    assert best["marks"]["f1_weighted"] == "best" and best["p_values"]["f1_weighted"] is None
    assert strong_too["marks"]["f1_weighted"] in ("best", "not worse")  # 0.85 vs 0.84: not told apart
    assert weak["marks"]["f1_weighted"] is None and weak["p_values"]["f1_weighted"] < 0.05
    # markdown cells: `0.756 [0.731, 0.780]`, bold best, italic not worse
    line = next(ln for ln in shown.splitlines() if ln.startswith("| weak "))
    cells = [c.strip() for c in line.strip("|").split("|")]
    lo, hi = weak["intervals"]["f1_weighted"]
    assert cells[7] == f"{weak['f1_weighted']:.3f} [{lo:.3f}, {hi:.3f}]"
    assert re.search(r"\| \*\*0\.\d{3}\*\* \[0\.\d{3}, 0\.\d{3}\] \|", shown)
    assert re.search(r"\| \*0\.\d{3}\* \[0\.\d{3}, 0\.\d{3}\] \|", shown)
    assert "Holm-corrected" in shown and "Pending (not finished yet)" in shown
    # the paper's plain layout
    assert housex(["table", *map(str, sources[:3]), "--out", str(tmp_path / "plain"), "--no-intervals",
                   "--resamples", "500"]) == 0
    plain = capsys.readouterr().out
    line = next(ln for ln in plain.splitlines() if ln.startswith("| weak "))
    assert [c.strip() for c in line.strip("|").split("|")][7] == f"{weak['f1_weighted']:.3f}"
    # same seed, same table; another seed, other intervals
    again = tmp_path / "again"
    assert housex(["table", *map(str, sources), "--out", str(again), "--resamples", "500"]) == 0
    assert (again / "table.json").read_text() == (out / "table.json").read_text().replace(str(out), str(again))
    assert housex(["table", *map(str, sources), "--out", str(again), "--resamples", "500", "--bootstrap-seed", "1"]) == 0
    assert json.loads((again / "table.json").read_text())["rows"][0]["intervals"] != strong["intervals"]


def test_rows_of_different_clips_are_refused_or_grouped(runs, tmp_path, capsys):
    model_run(tmp_path / "other", 0.9, 5, n_tracks=8, model="other data", dataset="elsewhere")
    model_run(tmp_path / "subset", 0.9, 6, n_tracks=59, model="subset")  # max_eval_samples-style subset
    argv = ["table", str(runs / "strong"), str(tmp_path / "other"), str(runs / "weak"), "--out", str(tmp_path / "t"),
            "--resamples", "200"]
    assert housex(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2 different sets of clips" in err and "--allow-mixed" in err
    assert "housex-v2 validation (240 clips" in err and "elsewhere validation (32 clips" in err
    assert housex(["table", str(runs / "strong"), str(tmp_path / "subset"), "--out", str(tmp_path / "t")]) == 2
    assert "different sets of clips" in capsys.readouterr().err
    assert housex([*argv, "--allow-mixed"]) == 0
    shown = capsys.readouterr().out
    table = json.loads((tmp_path / "t" / "table.json").read_text())
    assert [[r["model"] for r in g["rows"]] for g in table["groups"]] == [["strong", "weak"], ["other data"]]
    assert shown.count("Dataset `") == 2 and "Dataset `elsewhere`, split `validation`: 32 clips of 8 tracks" in shown
    assert table["groups"][1]["rows"][0]["marks"]["f1_weighted"] == "best"  # marked within its own table only


def test_sources_the_table_no_longer_guesses(tmp_path, capsys):
    (tmp_path / "probe.json").write_text(json.dumps({"n_mels": 64, "n_train": 10, "accuracy": 0.5}))
    old = tmp_path / "old-run"
    old.mkdir()
    (old / "metrics.json").write_text("{}")
    for source, message in ((tmp_path / "probe.json", "not a source of the table"),
                            (old, "metrics.json but no predictions.parquet"),
                            (tmp_path / "nothing", "no such run folder or predictions file")):
        assert housex(["table", str(source), "--out", str(tmp_path / "t")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_compare_identical_swapped_and_mismatched_runs(runs, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    assert housex(["compare", str(runs / "strong"), str(runs / "strong"), "--json", str(out), "--resamples", "500"]) == 0
    same = json.loads(out.read_text())
    for key, f in same["figures"].items():
        assert f["difference"] == 0 and f["interval"] == [0, 0] and f["p_value"] == 1.0, key
    assert "paired cluster bootstrap over tracks" in same["test"]
    # the same predictions with Progressive House's and Future House's probabilities swapped
    p = P.read_predictions(runs / "strong")
    probs = p.probabilities.copy()
    probs[:, [0, 1]] = probs[:, [1, 0]]
    P.write_predictions(tmp_path / "swapped", clip_ids=p.clip_ids, track_ids=p.track_ids, soft_labels=p.soft_labels,
                        probabilities=probs[::-1][::-1])
    capsys.readouterr()
    assert housex(["compare", str(runs / "strong"), str(tmp_path / "swapped"), "--json", str(out),
                   "--resamples", "500"]) == 0
    shown = capsys.readouterr().out
    swapped = json.loads(out.read_text())["figures"]
    for key in ("accuracy", "f1_weighted", "track_accuracy"):
        f = swapped[key]
        assert f["difference"] < 0 and f["interval"][1] < 0 and f["p_value"] < 0.01, key
    assert swapped["kl_divergence"]["difference"] > 0 and swapped["kl_divergence"]["p_value"] < 0.01
    assert "| f1_weighted |" in shown and "kl_divergence (lower is better)" in shown
    # different clips: one line counting the missing clips on each side
    model_run(tmp_path / "shifted", 0.8, 7, tracks_offset=2)
    assert housex(["compare", str(runs / "strong"), str(tmp_path / "shifted")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "scored different clips: 8 of A's 240 clips are missing from B, 8 of B's 240 from A" in err


def test_the_demos_table_prints_every_figure_with_its_interval(runs):
    from housex.commands.demo import DEMO_FIGURES, results_table

    model = P.metrics_from_predictions(P.read_predictions(runs / "strong"), P.Bootstrap(resamples=200))
    probe = P.metrics_from_predictions(P.read_predictions(runs / "weak"), P.Bootstrap(resamples=200))
    text = results_table(model, probe)
    assert "240 clips of 60 tracks; 95% intervals: cluster bootstrap over tracks, 200 resamples, seed 0" in text
    lines = text.splitlines()[3:]
    assert len(lines) == len(DEMO_FIGURES)
    lo, hi = model["intervals"]["f1_weighted"]
    f1 = next(ln for ln in lines if ln.startswith("| F1 (weighted) "))
    assert f"{model['f1_weighted']:.3f} [{lo:.3f}, {hi:.3f}]" in f1
    lo, hi = probe["track_level_intervals"]["f1_weighted"]
    track = next(ln for ln in lines if ln.startswith("| track F1 (weighted) "))
    assert f"{probe['track_level']['f1_weighted']:.3f} [{lo:.3f}, {hi:.3f}]" in track
