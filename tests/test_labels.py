"""Genres, label modes and the Label-Studio / drop-file parsers on the real upstream exports."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest

from housex.dataset_script.genres import (
    GENRES,
    LabelError,
    apply_label_mode,
    genre_id,
    normalize,
    sharpen,
    sharpen_ids,
    soft_label_pattern,
)
from housex.dataset_script.labelstudio import AnnotationError, make_task, resolve_in_folder, safe_audio_name
from housex.dataset_script.release import find_release_files, parse_export, read_drop_file, write_export


def test_upstream_exports_parse_with_paper_statistics(fixtures_dir):
    tracks = parse_export(fixtures_dir / "partition-1-5.json")
    clean = parse_export(fixtures_dir / "project-4-100-clean.json")
    assert (len(tracks), len(clean)) == (355, 100)
    patterns = Counter(soft_label_pattern(t.label) for t in tracks)
    assert patterns[(1.0,)] == 246
    assert patterns[(0.75, 0.25)] == 66
    assert patterns[(0.5, 0.5)] == 29
    assert patterns[(0.5, 0.25, 0.25)] == 14
    assert sum(patterns.values()) == 355
    for t in tracks + clean:
        assert t.label.shape == (8,) and abs(t.label.sum() - 1) < 1e-9
        assert "/" not in t.audio_name and t.audio_name.endswith(".ogg")
    # the export names Tech House "Techno": it must land on class 3
    assert sum(t.label[3] > 0 for t in tracks) > 0


def test_upstream_drop_file(fixtures_dir):
    drops = read_drop_file(fixtures_dir / "detected_drops.json")
    assert len(drops) > 100
    name, sections = next(iter(drops.items()))
    assert "/" not in name and sections and all(0 <= a < b for a, b in sections)


@pytest.mark.parametrize(
    "name, gid",
    [("Techno", 3), ("Tech House", 3), ("big room", 5), ("Big Room", 5), ("BIGROOM", 5), ("future-house", 1),
     ("Slap  House", 7), ("progressive house", 0)],
)
def test_genre_aliases(name, gid):
    assert genre_id(name) == gid


def test_unknown_genre_names_the_place():
    with pytest.raises(LabelError, match=r"x.json task 3: unknown genre name 'Dubstep'"):
        genre_id("Dubstep", where="x.json task 3")


def test_label_modes_and_ties_go_to_last():
    soft = np.array([0.5, 0, 0, 0.5, 0, 0, 0, 0])
    assert sharpen_ids(soft) == 3  # tie Progressive/Tech → the later one
    assert sharpen(soft).tolist() == np.eye(8)[3].tolist()
    assert sharpen_ids(np.array([[0.25, 0.25, 0.5, 0, 0, 0, 0, 0], [0.1 + 0.2 + 0.2, 0.5, 0, 0, 0, 0, 0, 0]])).tolist() == [2, 1]
    assert apply_label_mode(soft, "soft").tolist() == soft.tolist()
    assert apply_label_mode(soft, "clean") is None
    assert apply_label_mode(np.eye(8)[6], "clean").tolist() == np.eye(8)[6].tolist()
    with pytest.raises(ValueError, match="label mode"):
        apply_label_mode(soft, "hard")


def test_renormalise_warns_and_bad_weights_raise():
    with pytest.warns(UserWarning, match="sum to 2"):
        v = normalize([1, 1, 0, 0, 0, 0, 0, 0], where="t")
    assert v.tolist()[:2] == [0.5, 0.5]
    for bad, msg in (([0] * 8, "all genre weights are zero"), ([-1, 2, 0, 0, 0, 0, 0, 0], "negative"),
                     ([np.nan, 1, 0, 0, 0, 0, 0, 0], "NaN")):
        with pytest.raises(LabelError, match=msg):
            normalize(bad, where="t")


def _export_with(tmp_path, result):
    task = make_task(7, "song.ogg", np.eye(8)[0])
    task["annotations"][0]["result"] = result
    path = tmp_path / "partition-bad.json"
    write_export(path, [make_task(1, "ok.ogg", np.eye(8)[1]), task])
    return path


@pytest.mark.parametrize(
    "result, msg",
    [
        ([{"from_name": "Dubstep", "value": {"number": 1}}], "unknown genre name 'Dubstep'"),
        ([{"from_name": "Bigroom", "value": {"number": -1}}, {"from_name": "Deep House", "value": {"number": 1}}], "negative"),
        ([{"from_name": "Bigroom", "value": {"number": 0}}], "all genre weights are zero"),
        ([{"from_name": "Bigroom", "value": {"number": "many"}}], "nan"),
        ([{"from_name": "Bigroom"}], "without from_name/value.number"),
        ([], "empty result"),
    ],
)
def test_bad_annotations_name_file_and_task(tmp_path, result, msg):
    path = _export_with(tmp_path, result)
    with pytest.raises((AnnotationError, LabelError)) as err:
        parse_export(path)
    assert "partition-bad.json task 7" in str(err.value)
    assert msg.lower() in str(err.value).lower()


def test_renormalised_task_warns(tmp_path):
    path = _export_with(tmp_path, [{"from_name": "Bigroom", "value": {"number": 3}},
                                   {"from_name": "Techno", "value": {"number": 1}}])
    with pytest.warns(UserWarning, match="partition-bad.json task 7.*renormalised"):
        tracks = parse_export(path)
    assert tracks[1].label[5] == pytest.approx(0.75) and tracks[1].label[3] == pytest.approx(0.25)


def test_not_json_and_not_a_list(tmp_path):
    (tmp_path / "a.json").write_text("{oops")
    with pytest.raises(AnnotationError, match="a.json: not valid JSON"):
        parse_export(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"id": 1}))
    with pytest.raises(AnnotationError, match="b.json: expected a JSON list"):
        parse_export(tmp_path / "b.json")


@pytest.mark.parametrize(
    "upload",
    ["../../etc/passwd", "/data/upload/1/../../../x.ogg", "..", "..\\..\\win.ini", "a/..", "", "x\x00.ogg", "/data/upload/"],
)
def test_traversal_names_refused(upload):
    with pytest.raises(AnnotationError):
        safe_audio_name(upload, where="exp.json task 1")


def test_upload_paths_map_to_basenames(tmp_path):
    assert safe_audio_name("/data/upload/4/1a9df172-Kaaze_-_Dive.ogg") == "1a9df172-Kaaze_-_Dive.ogg"
    assert safe_audio_name("C:\\music\\a b.ogg") == "a b.ogg"
    (tmp_path / "rel").mkdir()
    assert resolve_in_folder(tmp_path / "rel", "/x/y/z.ogg") == (tmp_path / "rel" / "z.ogg").resolve()
    # a symlink inside the folder that points outside it is refused too
    (tmp_path / "secret.ogg").write_bytes(b"x")
    os.symlink(tmp_path / "secret.ogg", tmp_path / "rel" / "link.ogg")
    with pytest.raises(AnnotationError, match="resolves outside"):
        resolve_in_folder(tmp_path / "rel", "link.ogg")


def test_find_release_files(tmp_path, fixtures_dir):
    rel = tmp_path / "r"
    rel.mkdir()
    with pytest.raises(AnnotationError, match="found none"):
        find_release_files(rel)
    (rel / "partition-1.json").write_text("[]")
    (rel / "detected_drops.json").write_text("[]")
    assert [p.name if p else None for p in find_release_files(rel)] == ["partition-1.json", "detected_drops.json"]
    (rel / "partition-2.json").write_text("[]")
    with pytest.raises(AnnotationError, match="exactly one"):
        find_release_files(rel)
    with pytest.raises(AnnotationError, match="not found"):
        find_release_files(tmp_path / "missing")


def test_bad_drop_file(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps([{"audio_path": "a.ogg", "drop_sections": [[5, 2]]}]))
    with pytest.raises(AnnotationError, match="d.json entry 0: bad drop section"):
        read_drop_file(tmp_path / "d.json")
    (tmp_path / "e.json").write_text(json.dumps([{"audio_path": "../a.ogg", "drop_sections": []}]))
    with pytest.raises(AnnotationError, match="e.json entry 0"):
        read_drop_file(tmp_path / "e.json")


def test_genre_order_is_canonical():
    assert GENRES == ("Progressive House", "Future House", "Bass House", "Tech House", "Deep House",
                      "Bigroom", "Future Rave", "Slap House")
