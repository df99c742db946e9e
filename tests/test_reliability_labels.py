"""Issue 15: odd and hostile annotation exports end as a named error or a deliberate result,
never a silently wrong label."""

from __future__ import annotations

import json

import numpy as np
import pytest

from housex.dataset_script.genres import LabelError, normalize, weights_to_vector
from housex.dataset_script.labelstudio import AnnotationError, make_task
from housex.dataset_script.release import parse_export, write_export


def _export(tmp_path, result, *, name="partition-odd.json"):
    task = make_task(7, "song.ogg", np.eye(8)[0])
    task["annotations"][0]["result"] = result
    path = tmp_path / name
    write_export(path, [task])
    return path


def _number(name, w):
    return {"from_name": name, "to_name": "audio", "type": "number", "value": {"number": w}}


def test_overflowing_weights_are_an_error_naming_the_task(tmp_path):
    # 1e308 * 8 is inf: renormalising would give all zeros and argmax 'Slap House'.
    path = _export(tmp_path, [_number(g, 1e308) for g in ("Bigroom", "Techno", "Deep House")])
    with pytest.raises(LabelError, match=r"partition-odd.json task 7: .*overflow"):
        parse_export(path)


def test_same_genre_twice_overflowing_is_an_error():
    with pytest.raises(LabelError, match="overflow"):
        weights_to_vector([("Techno", 1.7e308), ("Tech House", 1.7e308)], where="t")


def test_normalize_refuses_a_vector_whose_sum_overflows():
    with pytest.raises(LabelError, match="sum to inf"):
        normalize(np.full(8, 1e308), where="t")


def test_json_true_is_not_a_weight(tmp_path):
    path = _export(tmp_path, [_number("Bigroom", True)])
    with pytest.raises(LabelError, match=r"task 7: weight of 'Bigroom' is a boolean \(True\)"):
        parse_export(path)


def test_string_weight_reports_the_string_not_nan(tmp_path):
    path = _export(tmp_path, [_number("Bigroom", "0.5"), _number("Deep House", 0.5)])
    with pytest.raises(LabelError, match=r"weight of 'Bigroom' is a str \('0.5'\), expected a number"):
        parse_export(path)


def test_export_with_a_byte_order_mark_is_read(tmp_path):
    task = make_task(3, "song.ogg", np.eye(8)[4])
    path = tmp_path / "partition-bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([task]).encode("utf-8"))
    (track,) = parse_export(path)
    assert track.label.tolist() == np.eye(8)[4].tolist()


def test_a_comment_box_result_does_not_discard_the_task(tmp_path):
    comment = {"from_name": "comment", "to_name": "audio", "type": "textarea", "value": {"text": ["nice drop"]}}
    path = _export(tmp_path, [_number("Techno", 0.75), comment, _number("Future House", 0.25)])
    (track,) = parse_export(path)
    assert track.label[3] == 0.75 and track.label[1] == 0.25


def test_only_non_number_results_is_an_error(tmp_path):
    comment = {"from_name": "comment", "to_name": "audio", "type": "textarea", "value": {"text": ["?"]}}
    with pytest.raises(AnnotationError, match="task 7: annotation has no number"):
        parse_export(_export(tmp_path, [comment]))


def test_zero_weight_unknown_genre_is_ignored(tmp_path):
    path = _export(tmp_path, [_number("Bigroom", 1), _number("Dubstep", 0)])
    (track,) = parse_export(path)
    assert track.label.tolist() == np.eye(8)[5].tolist()


def test_unknown_genre_with_weight_is_still_an_error(tmp_path):
    with pytest.raises(LabelError, match="unknown genre name 'Dubstep'"):
        parse_export(_export(tmp_path, [_number("Bigroom", 0.5), _number("Dubstep", 0.5)]))
