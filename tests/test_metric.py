"""The local evaluate metric: sharpened scores vs scikit-learn, soft scores vs hand-computed values."""

from __future__ import annotations

import math

import evaluate
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from housex.dataset_script.genres import NUM_GENRES, sharpen_ids
from housex.trainer import METRIC_FILE

METRIC_PATH = str(METRIC_FILE)


@pytest.fixture(scope="module")
def metric():
    # Loaded by path: must work with HF_HUB_OFFLINE=1 (set in conftest).
    return evaluate.load(METRIC_PATH)


def _row(**weights) -> list[float]:
    v = [0.0] * NUM_GENRES
    for k, w in weights.items():
        v[int(k[1:])] = w
    return v


def test_sharpened_scores_match_sklearn_with_ties_to_last(metric):
    rng = np.random.default_rng(7)
    patterns = [(1.0,), (0.75, 0.25), (0.5, 0.5), (0.5, 0.25, 0.25)]
    targets, expected_ids = [], []
    for i in range(60):
        pattern = patterns[i % len(patterns)]
        genres = rng.choice(NUM_GENRES, size=len(pattern), replace=False)
        t = np.zeros(NUM_GENRES)
        t[genres] = pattern
        targets.append(t)
        # Hand rule: the max weight; on a 0.5/0.5 tie the LATER genre in canonical order.
        top = [g for g, w in zip(genres, pattern) if w == max(pattern)]
        expected_ids.append(max(top))
    targets = np.array(targets)
    logits = rng.normal(size=(60, NUM_GENRES))
    y_true = np.array(expected_ids)
    np.testing.assert_array_equal(sharpen_ids(targets), y_true)  # same rule as genres.py
    y_pred = logits.argmax(axis=1)

    out = metric.compute(predictions=logits, references=targets)
    assert out["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    for average in ("weighted", "macro"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=range(NUM_GENRES), average=average, zero_division=0
        )
        assert out[f"precision_{average}"] == pytest.approx(p)
        assert out[f"recall_{average}"] == pytest.approx(r)
        assert out[f"f1_{average}"] == pytest.approx(f)
    assert out["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=range(NUM_GENRES)).tolist()
    assert out["num_examples"] == 60

    # Class ids as references give the same sharpened scores as their one-hot rows.
    by_ids = metric.compute(predictions=logits, references=y_true)
    assert by_ids["f1_weighted"] == pytest.approx(out["f1_weighted"])


def test_tie_goes_to_last_genre_not_first(metric):
    # Target 0.5/0.5 on genres 1 and 2 -> class 2; predicting 2 is correct, predicting 1 is not.
    t = [_row(g1=0.5, g2=0.5)]
    assert metric.compute(predictions=[_row(g2=0.9, g1=0.1)], references=t)["accuracy"] == 1.0
    assert metric.compute(predictions=[_row(g1=0.9, g2=0.1)], references=t)["accuracy"] == 0.0
    cm = metric.compute(predictions=[_row(g1=0.9, g2=0.1)], references=t)["confusion_matrix"]
    assert cm[2][1] == 1  # rows are targets, columns predictions


def test_soft_scores_against_hand_computed_values(metric):
    targets = [
        _row(g0=1.0),
        _row(g0=0.5, g1=0.5),  # tie -> class 1
        _row(g2=0.75, g3=0.25),
        _row(g7=1.0),
        _row(g4=1.0),
    ]
    probs = [
        _row(g0=0.8, g1=0.2),  # correct, conf 0.8
        _row(g0=0.6, g1=0.4),  # wrong (target 1), class 1 in top-2, conf 0.6
        _row(g2=0.25, g3=0.75),  # wrong, class 2 in top-2, conf 0.75
        _row(g0=0.1, g7=0.9),  # correct, conf 0.9
        _row(g0=0.5, g1=0.3, g4=0.2),  # wrong, class 4 not in top-2, conf 0.5
    ]
    out = metric.compute(predictions=probs, references=targets, prediction_type="probs", n_bins=3)

    kl = [
        math.log(1 / 0.8),
        0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.4),
        0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.75),
        math.log(1 / 0.9),
        math.log(1 / 0.2),
    ]
    assert out["kl_divergence"] == pytest.approx(sum(kl) / 5)

    def lg(x):
        return math.log2(x)

    # JS divergence (base 2) = 0.5 KL(t||m) + 0.5 KL(p||m), m = (t + p) / 2; distance = sqrt.
    js_div = [
        0.5 * lg(1 / 0.9) + 0.5 * (0.8 * lg(0.8 / 0.9) + 0.2 * lg(0.2 / 0.1)),
        0.5 * (0.5 * lg(0.5 / 0.55) + 0.5 * lg(0.5 / 0.45)) + 0.5 * (0.6 * lg(0.6 / 0.55) + 0.4 * lg(0.4 / 0.45)),
        0.5 * (0.75 * lg(0.75 / 0.5) + 0.25 * lg(0.25 / 0.5)) + 0.5 * (0.25 * lg(0.25 / 0.5) + 0.75 * lg(0.75 / 0.5)),
        0.5 * lg(1 / 0.95) + 0.5 * (0.1 * lg(0.1 / 0.05) + 0.9 * lg(0.9 / 0.95)),
        0.5 * lg(1 / 0.6) + 0.5 * (0.5 * lg(0.5 / 0.25) + 0.3 * lg(0.3 / 0.15) + 0.2 * lg(0.2 / 0.6)),
    ]
    assert out["js_distance"] == pytest.approx(sum(math.sqrt(d) for d in js_div) / 5)
    assert out["top2_accuracy"] == pytest.approx(4 / 5)
    assert out["accuracy"] == pytest.approx(2 / 5)
    # Bins (0,1/3], (1/3,2/3], (2/3,1]: {0.6 wrong, 0.5 wrong} and {0.8 ok, 0.75 wrong, 0.9 ok}.
    ece = 2 / 5 * abs(0.0 - 0.55) + 3 / 5 * abs(2 / 3 - (0.8 + 0.75 + 0.9) / 3)
    assert out["ece"] == pytest.approx(ece)


def test_logits_are_softmaxed_and_auto_detects_probabilities(metric):
    t = [_row(g1=1.0)]
    logits = [[0.0, math.log(3.0)] + [-1e9] * (NUM_GENRES - 2)]  # softmax -> 0.25 / 0.75
    out = metric.compute(predictions=logits, references=t)
    assert out["kl_divergence"] == pytest.approx(math.log(1 / 0.75))
    probs = [_row(g0=0.25, g1=0.75)]
    assert metric.compute(predictions=probs, references=t)["kl_divergence"] == pytest.approx(math.log(1 / 0.75))
    # Forced 'logits' on the same numbers is a different (softer) distribution.
    forced = metric.compute(predictions=probs, references=t, prediction_type="logits")
    assert forced["kl_divergence"] > 1.0


def test_bad_inputs_raise_clear_errors(metric):
    with pytest.raises(ValueError, match="prediction_type"):
        metric.compute(predictions=[_row(g0=1.0)], references=[_row(g0=1.0)], prediction_type="scores")
    with pytest.raises(ValueError, match="non-negative"):
        metric.compute(predictions=[_row(g0=1.0)], references=[_row(g0=-1.0, g1=2.0)])
    with pytest.raises(ValueError, match="class ids"):
        metric.compute(predictions=[_row(g0=1.0)], references=[9])


def test_metric_module_keeps_the_canonical_genre_order():
    # The metric file is self-contained (evaluate.load copies it alone), so it carries its own copy.
    import importlib.util

    from housex.dataset_script.genres import GENRES

    spec = importlib.util.spec_from_file_location("housex_metric_copy", METRIC_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert tuple(module.GENRES) == tuple(GENRES)
