"""HouseX-v2 metric: the paper's sharpened-label scores plus soft-label scores, as an `evaluate` module.

Load it by path (no Hub fetch): ``evaluate.load("path/to/trainer/housex_metric.py")``.

The module is self-contained (numpy, scipy, scikit-learn, datasets, evaluate only) so that it can be
copied into evaluate's module cache or a Hub Space as is.  One import per line: evaluate's
dependency scan misreads combined imports.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.special import softmax
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix
from sklearn.metrics import precision_recall_fscore_support
from sklearn.metrics import top_k_accuracy_score

# Canonical class order (index = class id), as dataset_script.genres.GENRES.
GENRES = (
    "Progressive House",
    "Future House",
    "Bass House",
    "Tech House",
    "Deep House",
    "Bigroom",
    "Future Rave",
    "Slap House",
)

_DESCRIPTION = """\
Scores for 8-way house sub-genre classification with soft (multi-genre) targets.

Sharpened scores (as the HouseX paper): the target of each example is the one-hot of its largest
weight, a tie going to the LAST tied genre in canonical order; the prediction is the argmax of the
predicted distribution.  Reported: accuracy, precision/recall/F1 weighted and macro over the 8
classes (zero_division=0), and the 8x8 confusion matrix (rows = target, columns = prediction).

Soft scores (compare the predicted distribution with the full soft target):
mean KL(target || prediction) in nats, mean Jensen-Shannon distance (base 2, in [0, 1]),
top-2 accuracy (sharpened target among the two most probable classes) and the expected
calibration error of the top-1 confidence (equal-width bins over (0, 1]).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions: (N, C) logits or probabilities.
    references: (N, C) soft targets (non-negative; each row is renormalised to sum 1) or (N,)
        class ids.
    prediction_type: "logits" (softmax is applied), "probs" (rows renormalised), or "auto"
        (probabilities when every row is non-negative and sums to 1 within 1e-4, else logits).
    n_bins: number of equal-width confidence bins for the expected calibration error.
Returns:
    dict with accuracy, precision_weighted, recall_weighted, f1_weighted, precision_macro,
    recall_macro, f1_macro, confusion_matrix (list of lists), kl_divergence, js_distance,
    top2_accuracy, ece, num_examples.
Example:
    >>> metric = evaluate.load("trainer/housex_metric.py")
    >>> metric.compute(predictions=[[2.0, 0, 0, 0, 0, 0, 0, 0]], references=[[1, 0, 0, 0, 0, 0, 0, 0]])["accuracy"]
    1.0
"""

_CITATION = """\
@misc{housex2022,
  title = {HouseX: A Fine-grained House Music Dataset and its Potential in the Music Industry},
  author = {Xinyu Li},
  year = {2022}
}
"""

# Probabilities below this are clipped before logs so that KL stays finite.
_EPS = 1e-12


def sharpen_ids(probs: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """(N, C) -> (N,) index of the row maximum, a tie going to the LAST tied index."""
    p = np.asarray(probs, dtype=np.float64)
    is_max = p >= p.max(axis=-1, keepdims=True) - tol
    return p.shape[-1] - 1 - np.argmax(is_max[..., ::-1], axis=-1)


def to_probabilities(predictions: np.ndarray, prediction_type: str = "auto") -> np.ndarray:
    """(N, C) logits or probabilities -> (N, C) float64 probabilities."""
    x = np.asarray(predictions, dtype=np.float64)
    if prediction_type == "auto":
        looks_like_probs = np.all(x >= 0) and np.allclose(x.sum(axis=-1), 1.0, atol=1e-4)
        prediction_type = "probs" if looks_like_probs else "logits"
    if prediction_type == "logits":
        return softmax(x, axis=-1)
    if prediction_type == "probs":
        if np.any(x < 0):
            raise ValueError("prediction_type='probs' but predictions contain negative values")
        return x / np.clip(x.sum(axis=-1, keepdims=True), _EPS, None)
    raise ValueError(f"prediction_type must be 'logits', 'probs' or 'auto', got {prediction_type!r}")


def to_soft_targets(references: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) class ids or (N, C) weights -> (N, C) float64 rows summing to 1."""
    r = np.asarray(references)
    if r.ndim == 1:
        ids = r.astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(f"references: class ids must lie in [0, {num_classes}), got {ids.min()}..{ids.max()}")
        return np.eye(num_classes)[ids]
    t = r.astype(np.float64)
    if t.shape[-1] != num_classes:
        raise ValueError(f"references have {t.shape[-1]} columns, predictions have {num_classes}")
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError("references: soft targets must be finite and non-negative")
    sums = t.sum(axis=-1, keepdims=True)
    if np.any(sums <= 0):
        raise ValueError("references: a soft target row sums to 0")
    return t / sums


def confidence_bins(confidence: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """(N,) top-1 confidences -> (N,) bin of each: bin b holds (b/n, (b+1)/n]; exactly 0 falls into bin 0."""
    return np.clip(np.ceil(np.asarray(confidence) * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def expected_calibration_error(probs: np.ndarray, target_ids: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-1 confidence: sum over bins (lo, hi] of |B|/N * |accuracy(B) - confidence(B)|."""
    confidence = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == target_ids).astype(np.float64)
    bins = confidence_bins(confidence, n_bins)
    ece = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def top_k_hits(target_ids: np.ndarray, probs: np.ndarray, k: int = 2) -> np.ndarray:
    """(N,) bool: the target among the ``k`` most probable classes, equal scores ranked as
    ``sklearn.metrics.top_k_accuracy_score`` ranks them (the higher class id first)."""
    ranked = np.argsort(probs, axis=1, kind="mergesort")[:, ::-1][:, :k]
    return (ranked == np.asarray(target_ids)[:, None]).any(axis=1)


def example_scores(probs: np.ndarray, targets: np.ndarray) -> dict:
    """Per-example terms of the scores (the means of ``housex_scores`` and the bootstrap's sums):
    target_id (sharpened), predicted_id (argmax), kl_divergence, js_distance, top2 (bool) and
    confidence (top-1 probability), each (N,).  ``probs`` and ``targets``: (N, C) rows summing to 1."""
    target_ids = sharpen_ids(targets)
    return {
        "target_id": target_ids,
        "predicted_id": probs.argmax(axis=-1),
        "kl_divergence": rel_entr(targets, np.clip(probs, _EPS, 1.0)).sum(axis=-1),
        "js_distance": jensenshannon(targets, probs, axis=-1, base=2),
        "top2": top_k_hits(target_ids, probs, k=min(2, probs.shape[-1])),
        "confidence": probs.max(axis=-1),
    }


def housex_scores(predictions, references, prediction_type: str = "auto", n_bins: int = 15) -> dict:
    """All scores as a plain dict; see ``_KWARGS_DESCRIPTION``."""
    probs = to_probabilities(predictions, prediction_type)
    if probs.ndim != 2:
        raise ValueError(f"predictions must be (N, C), got shape {probs.shape}")
    num_classes = probs.shape[-1]
    targets = to_soft_targets(references, num_classes)
    if len(targets) != len(probs):
        raise ValueError(f"{len(probs)} predictions but {len(targets)} references")
    if len(probs) == 0:
        raise ValueError("no examples to score")
    y_true = sharpen_ids(targets)
    y_pred = probs.argmax(axis=-1)
    labels = list(range(num_classes))
    out: dict = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("weighted", "macro"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        out[f"precision_{average}"] = float(p)
        out[f"recall_{average}"] = float(r)
        out[f"f1_{average}"] = float(f)
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    terms = example_scores(probs, targets)
    out["kl_divergence"] = float(terms["kl_divergence"].mean())
    out["js_distance"] = float(np.mean(terms["js_distance"]))
    out["top2_accuracy"] = float(top_k_accuracy_score(y_true, probs, k=min(2, num_classes), labels=labels))
    out["ece"] = expected_calibration_error(probs, y_true, n_bins=n_bins)
    out["num_examples"] = int(len(probs))
    return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HouseXMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("float64")),
                        "references": datasets.Sequence(datasets.Value("float64")),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("float64")),
                        "references": datasets.Value("int64"),
                    }
                ),
            ],
        )

    def _compute(self, predictions, references, prediction_type: str = "auto", n_bins: int = 15):
        return housex_scores(
            np.asarray(predictions, dtype=np.float64),
            np.asarray(references),
            prediction_type=prediction_type,
            n_bins=n_bins,
        )
