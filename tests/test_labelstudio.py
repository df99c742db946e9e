"""Label Studio both ways: config + pre-annotated tasks (checked by the official label-studio-sdk),
an export as Label Studio writes it after the annotator accepts the predictions (JSON, and CSV made
by the SDK's own converter), and ``housex build`` on it giving soft labels equal to the predictions.

A real Label Studio server is not started: ``pip install label-studio`` (1.23) would downgrade
numpy (2.4 -> 2.2, through its opencv pin) and pyarrow, and pull Django, boto3, google-cloud and
~100 more packages into the environment the model runs in; the SDK's validation of the config,
predictions and annotations (what the server checks on import) runs here offline instead.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from xml.etree import ElementTree

import datasets
import numpy as np
import pytest
import soundfile as sf
from conftest import loud_section_track
from test_inference import tiny_model

from housex.cli import main as housex_main
from housex.dataset_script.genres import GENRES, NUM_GENRES
from housex.dataset_script.labelstudio import LABEL_PATTERNS, AnnotationError, parse_task, read_csv_export
from housex.dataset_script.release import parse_export
from housex.labelstudio import EXPORT_NAMES, labeling_config, prediction_task, snap_to_pattern

sdk = pytest.importorskip("label_studio_sdk", reason="label-studio-sdk is a dev dependency (make setup installs it)")
from label_studio_sdk.converter import Converter  # noqa: E402
from label_studio_sdk.label_interface import LabelInterface  # noqa: E402

CLIP = 3.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("ls-model"), clip_seconds=CLIP)


def _pattern(weights) -> tuple[float, ...]:
    return tuple(sorted((float(w) for w in weights if w > 0), reverse=True))


def test_pre_annotations_snap_to_the_patterns_annotators_use(fixtures_dir):
    real = np.stack([t.label for f in ("partition-1-5.json", "project-4-100-clean.json")
                     for t in parse_export(fixtures_dir / f)])
    shares = Counter(_pattern(y) for y in real[:355])  # partition-1-5
    assert set(Counter(map(_pattern, real))) == set(LABEL_PATTERNS)
    assert {k: round(v / 355, 2) for k, v in shares.items()} == LABEL_PATTERNS
    for y in real:  # an annotator's label is its own pre-annotation
        np.testing.assert_array_equal(snap_to_pattern(y), y)

    # the issue's track: 0.34 / 0.29 / 0.17 / 0.09 as printed (four quarters on the old 0.25 grid)
    issue = [0.336, 0.29, 0.17, 0.094, 0.03, 0.03, 0.03, 0.02]
    assert snap_to_pattern(issue).tolist() == [0.5, 0.25, 0.25, 0, 0, 0, 0, 0]
    assert snap_to_pattern([0.05, 0.9, 0.05, 0, 0, 0, 0, 0]).tolist() == [0, 1.0, 0, 0, 0, 0, 0, 0]
    assert snap_to_pattern([0.45, 0.45, 0.1, 0, 0, 0, 0, 0]).tolist() == [0.5, 0.5, 0, 0, 0, 0, 0, 0]
    assert snap_to_pattern(np.full(8, 1 / 8)).sum() == 1.0
    with pytest.raises(ValueError, match="non-negative"):
        snap_to_pattern([0.5, -0.1, 0.6, 0, 0, 0, 0, 0])

    # every weight vector annotators could give (a real pattern on any genres), to check "nearest"
    candidates = np.array([np.bincount(genres, weights=pattern, minlength=NUM_GENRES)
                           for pattern in LABEL_PATTERNS
                           for genres in itertools.permutations(range(NUM_GENRES), len(pattern))])
    rng = np.random.default_rng(0)
    for alpha in (0.1, 0.3, 1.0, 3.0):  # peaked to flat model outputs
        for p in rng.dirichlet(np.full(NUM_GENRES, alpha), 150):
            w = snap_to_pattern(p)
            assert _pattern(w) in LABEL_PATTERNS and w.sum() == 1.0
            assert np.all(np.diff(w[np.argsort(-p, kind="stable")]) <= 0)  # a likelier genre never gets less
            top = np.flatnonzero(w == w.max())
            assert all(g == np.argmax(p) or p[g] >= 0.25 for g in top), (p, w)  # no 0.09 genre at the top weight
            assert np.abs(w - p).sum() <= np.abs(candidates - p).sum(axis=1).min() + 1e-9

    # a model that agrees with the annotators up to noise gives back their labels and their statistics
    noisy = 0.85 * real + 0.15 * rng.dirichlet(np.ones(NUM_GENRES), len(real))
    snapped = np.stack([snap_to_pattern(p) for p in noisy])
    assert (snapped == real).all(axis=1).mean() >= 0.95
    got = Counter(map(_pattern, snapped[:355]))
    for pattern, share in LABEL_PATTERNS.items():
        assert abs(got[pattern] / 355 - share) <= 0.03, (pattern, got)


def _validate_with_sdk(config: str, tasks: list[dict]) -> None:
    interface = LabelInterface(config)
    interface.validate()  # the server's schema, unique-name and toName checks (raises when invalid)
    for task in tasks:
        for obj in interface.objects:  # every $variable of an object tag is in the task data
            assert not obj.value_is_variable or task["data"].get(obj.value_name) is not None, obj.value_name
        for pred in task.get("predictions", []):  # an export lists prediction ids, an import full ones
            assert isinstance(pred, int) or interface.validate_prediction(pred, return_errors=True) == []
        for ann in task.get("annotations", []):
            assert interface.validate_annotation(ann)
            assert interface.validate_prediction(ann["prediction"], return_errors=True) == []


def test_config_and_prediction_task_are_valid_for_label_studio(capsys):
    assert housex_main(["label-studio", "config"]) == 0
    config = capsys.readouterr().out
    assert config == labeling_config()
    interface = LabelInterface(config)
    assert sorted(c.name for c in interface.controls) == sorted(EXPORT_NAMES)
    assert "Techno" in EXPORT_NAMES and "Tech House" not in EXPORT_NAMES
    # annotators read the genre's name above each field; the field keeps the export's name
    shown = {view.find("Number").get("name"): view.find("Header").get("value")
             for view in ElementTree.fromstring(config).iter("View") if view.find("Number") is not None}
    assert shown == dict(zip(EXPORT_NAMES, GENRES)) and shown["Techno"] == "Tech House"
    for control in interface.controls:
        assert control.tag == "Number" and control.to_name == ["audio"]
        assert (control.attr["min"], control.attr["max"], control.attr["step"]) == ("0", "1", "0.25")
    task = prediction_task("t.ogg", [0.1, 0.6, 0.3, 0, 0, 0, 0, 0], model_version="housex-x", drops=[(20.0, 38.0)])
    _validate_with_sdk(config, [task])
    assert task["predictions"][0]["model_version"] == "housex-x"
    assert task["data"]["drops"] == [[20.0, 38.0]] and "0:20.0-0:38.0" in task["data"]["drops_text"]
    # the validator can fail: a field the config does not have, a value that is not a number
    wrong = copy.deepcopy(task["predictions"][0])
    wrong["result"][0]["from_name"] = "Hardstyle"
    assert LabelInterface(config).validate_prediction(wrong, return_errors=True)
    wrong["result"][0].update(from_name=EXPORT_NAMES[0], value={"number": "lots"})
    assert LabelInterface(config).validate_prediction(wrong, return_errors=True)
    with pytest.raises(Exception, match="toName"):
        LabelInterface(config.replace('toName="audio"', 'toName="player"', 1)).validate()


def accept_predictions(tasks: list[dict]) -> list[dict]:
    """The export Label Studio writes after an annotator submits each task's pre-annotation as is:
    ids assigned, the prediction's result copied into an annotation (origin "prediction")."""
    export = []
    for i, task in enumerate(tasks, 1):
        pred = {**task["predictions"][0], "id": 100 + i, "task": i, "project": 1}
        result = [{**r, "origin": "prediction"} for r in pred["result"]]
        export.append({
            "id": i,
            "annotations": [{
                "id": 200 + i, "completed_by": 1, "result": result, "was_cancelled": False, "ground_truth": False,
                "created_at": f"2026-01-01T00:00:{i:02d}.000000Z", "updated_at": f"2026-01-01T00:00:{i:02d}.000000Z",
                "lead_time": 3.5, "prediction": pred, "result_count": 0, "task": i, "project": 1,
                "parent_prediction": pred["id"], "parent_annotation": None,
            }],
            "file_upload": task["data"]["track"], "drafts": [], "predictions": [pred["id"]],
            "data": task["data"], "meta": {}, "inner_id": i, "total_annotations": 1, "total_predictions": 1,
        })
    return export


def _soft_labels(dataset_dir) -> dict[str, list[float]]:
    ds = datasets.load_dataset(str(dataset_dir), "tracks")
    return {ex["track_id"]: ex["soft_label"] for split in ds.values() for ex in split}


def test_round_trip_tasks_export_build_gives_the_predictions(model_dir, tmp_path, capsys):
    audio = tmp_path / "new-tracks"
    audio.mkdir()
    for k in range(3):
        sf.write(audio / f"track-{k}.flac", loud_section_track(40.0, 22050, seed=k) * (0.5 + 0.2 * k), 22050)
    tasks_json = tmp_path / "tasks.json"
    code = housex_main(["label-studio", "tasks", str(audio), "--model", str(model_dir), "--out", str(tasks_json),
                        "--drop-file", str(tmp_path / "detected_drops.json"), "--upload-prefix", "/data/upload/7/"])
    assert code == 0, capsys.readouterr().err
    tasks = json.loads(tasks_json.read_text())
    assert [t["data"]["track"] for t in tasks] == ["track-0.flac", "track-1.flac", "track-2.flac"]
    _validate_with_sdk(labeling_config(), tasks)
    versions = {t["predictions"][0]["model_version"] for t in tasks}
    assert len(versions) == 1 and versions.pop().startswith("housex-")
    predicted = {}
    for t in tasks:
        assert t["data"]["audio"] == "/data/upload/7/" + t["data"]["track"]
        (a, b), = t["data"]["drops"]  # the loud section 20-38 s is the one drop
        assert a == pytest.approx(20.0, abs=1.0) and b == pytest.approx(38.0, abs=1.0)
        weights = {r["from_name"]: r["value"]["number"] for r in t["predictions"][0]["result"]}
        assert list(weights) == list(EXPORT_NAMES) and sum(weights.values()) == 1.0
        predicted[t["data"]["track"][:-5]] = [weights[n] for n in EXPORT_NAMES]

    export = accept_predictions(tasks)
    _validate_with_sdk(labeling_config(), export)
    release = tmp_path / "release-json"
    release.mkdir()
    for f in audio.iterdir():
        (release / f.name).write_bytes(f.read_bytes())
    (release / "project-7-partition.json").write_text(json.dumps(export))

    # The same export as Label Studio's CSV export, written by the SDK's converter (what the server runs).
    release_csv = tmp_path / "release-csv"
    release_csv.mkdir()
    for f in audio.iterdir():
        (release_csv / f.name).write_bytes(f.read_bytes())
    config_file = tmp_path / "config.xml"
    config_file.write_text(labeling_config())
    Converter(str(config_file), project_dir=str(tmp_path)).convert_to_csv(
        str(release / "project-7-partition.json"), str(release_csv / "project-7-partition.csv"), is_dir=False, sep=",")
    header = (release_csv / "project-7-partition.csv").read_text().splitlines()[0]
    assert '"Techno"' in header and '"audio"' in header and '"annotation_id"' in header
    assert [t.label.tolist() for t in parse_export(release_csv / "project-7-partition.csv")] == \
        [t.label.tolist() for t in parse_export(release / "project-7-partition.json")]

    for rel in (release, release_csv):
        out = tmp_path / f"built-{rel.name}"
        code = housex_main(["build", "--data-dir", str(rel), "--out", str(out), "--config", "tracks",
                            "--clip-seconds", str(CLIP), "--quiet"])
        assert code == 0, capsys.readouterr().err
        labels = _soft_labels(out)
        assert sorted(labels) == sorted(predicted)
        for track_id, weights in predicted.items():
            np.testing.assert_allclose(labels[track_id], weights, atol=1e-7, err_msg=f"{rel.name} {track_id}")


def test_csv_export_cells_and_errors(tmp_path):
    path = tmp_path / "export.csv"
    names = ",".join(f'"{n}"' for n in EXPORT_NAMES)
    row = lambda tid, ann, created, nums: ",".join(  # noqa: E731
        [f'"/data/upload/1/{tid}.ogg"', f"{ann}", f'"{created}"', str(tid)] + [f'"{c}"' for c in nums])
    one = ['[{""number"": 1}]'] + ['[{""number"": 0}]'] * 7
    half = ['[{""number"": 0.5}]', '{""number"": 0.5}'] + ["0"] * 6  # LS cell, JSON object, bare number
    path.write_text("\n".join([
        f'"audio","annotation_id","created_at","id",{names}',
        row(1, 11, "2026-01-02", one),
        row(1, 10, "2026-01-01", half),  # older annotation of task 1: used first, as in JSON
        row(2, "", "", [""] * 8),  # a task nobody annotated
    ]) + "\n")
    tasks = read_csv_export(path)
    assert [t["id"] for t in tasks] == ["1", "2"] and tasks[1]["annotations"] == []
    assert parse_task(tasks[0], export_file=path.name).label.tolist() == [0.5, 0.5, 0, 0, 0, 0, 0, 0]
    with pytest.raises(AnnotationError, match="task 2: no annotations"):
        parse_export(path)
    bad = tmp_path / "bad.csv"
    bad.write_text(f'"audio","id",{names}\n"/x/a.ogg",1,"lots"' + ",0" * 7 + "\n")
    with pytest.raises(AnnotationError, match=r"bad.csv line 2 \(task 1\) column 'Progressive House'"):
        read_csv_export(bad)
    (tmp_path / "noaudio.csv").write_text(f'"id",{names}\n1' + ",0" * 8 + "\n")
    with pytest.raises(AnnotationError, match="no 'audio' column"):
        read_csv_export(tmp_path / "noaudio.csv")
    assert GENRES[3] == "Tech House" and EXPORT_NAMES[3] == "Techno"
