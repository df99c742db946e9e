"""Review of disagreements: the clips where label and model disagree most, as static HTML + CSV.

``review(dataset_dir, model, out_dir)`` classifies the ``clips`` config of an exported dataset
(``housex build --out DIR``) with ``housex.inference.classify_clips`` (the one inference path),
ranks the clips by KL(label ‖ prediction), then by sharpened mismatch (the label's top genre is
not the prediction's; ties of KL only), and writes into ``out_dir``:

* ``index.html``: opens from disk (no server): a filter per genre (label or prediction) and for
  mismatches only; one row per clip with an audio player, the label and prediction bars, the
  track id and the clip times;
* ``review.csv``: the same rows (rank, track, times, KL, mismatch, both distributions);
* ``audio/``: the clips' audio as stored in the dataset (FLAC), which the page plays.

The report is written beside ``out_dir`` and swapped in whole (a kill or a full disk leaves the
previous report as it was); a second run into the same folder is refused while one runs.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset_script.genres import GENRES, sharpen_ids
from .dataset_script.safe_write import (OutputLock, apply_umask, check_free_space, disk_full_error, is_disk_full,
                                        remove_stale_temp_files, replace_folder, temp_prefix)

GENRE_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7")
EPS = 1e-12


def kl_divergence(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """KL(label ‖ prediction) per row of (N, C) arrays, in nats (0·log 0 = 0; predictions floored at 1e-12)."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(y > 0, y * (np.log(np.clip(y, EPS, None)) - np.log(p)), 0.0)
    return terms.sum(-1)


def rank_disagreements(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, kl, mismatch)``: clip indices by KL descending, then mismatch first, then index."""
    kl = kl_divergence(labels, probs)
    mismatch = np.asarray(sharpen_ids(labels)) != np.asarray(sharpen_ids(probs))
    order = np.lexsort((np.arange(len(kl)), ~mismatch, -kl))
    return order, kl, mismatch


@dataclass
class ReviewRow:
    rank: int
    index: int
    track_id: str
    clip_start: float
    clip_end: float
    kl: float
    mismatch: bool
    label: np.ndarray
    prediction: np.ndarray
    audio: str

    @property
    def label_genre(self) -> str:
        return GENRES[int(sharpen_ids(self.label))]

    @property
    def predicted_genre(self) -> str:
        return GENRES[int(sharpen_ids(self.prediction))]


def review(
    dataset_dir: str | os.PathLike,
    model,
    out_dir: str | os.PathLike,
    *,
    feature_extractor=None,
    split: str = "validation",
    top: int | None = 50,
    batch_size: int = 16,
    device: str | None = None,
) -> list[ReviewRow]:
    """Rank the clips of ``split`` by disagreement and write the report (see the module doc)."""
    import datasets

    from .inference import classify_clips, label_names, load_classifier
    from .trainer.data import load_clips_dataset
    from .track_audio import decoded_mono

    model, feature_extractor = load_classifier(model, feature_extractor, device=device)
    if list(label_names(model)) != list(GENRES):
        raise ValueError(f"model labels {label_names(model)} are not the 8 HouseX genres in order")
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: dataset folder not found (write one with `housex build --out DIR`)")
    ds = load_clips_dataset(folder, "clips", splits=[split])[split]
    if len(ds) == 0:
        raise ValueError(f"{folder}: the {split} split has no clips")
    decoded = ds.cast_column("audio", datasets.Audio(sampling_rate=int(feature_extractor.sampling_rate), num_channels=1))
    probs = classify_clips((decoded_mono(ex["audio"]) for ex in decoded), model, feature_extractor, batch_size,
                           device=device)
    labels = np.asarray(ds["soft_label"], dtype=np.float64)
    order, kl, mismatch = rank_disagreements(labels, probs)
    if top is not None:
        order = order[:top]

    raw = ds.cast_column("audio", datasets.Audio(decode=False))
    examples = [raw[i] for i in order.tolist()]
    with OutputLock(out_dir):
        return _write_report(Path(out_dir), examples, order, kl, mismatch, labels, probs,
                             title=f"{folder.name} / {split}: {len(examples)} of {len(ds)} clips")


REPORT_FILES = {"index.html", "review.csv", "audio"}


def _write_report(out: Path, examples: list[dict], order, kl, mismatch, labels, probs, *, title: str) -> list[ReviewRow]:
    """The report, written into a temporary folder beside ``out`` and swapped in whole: a kill or a
    full disk leaves the previous report as it was (and nothing else behind)."""
    if out.exists() and not (out.is_dir() and {p.name for p in out.iterdir()} <= REPORT_FILES):
        raise FileExistsError(f"{out}: holds files that are not a review report; choose a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out.parent, out.name)
    needed = sum(len(ex["audio"]["bytes"]) for ex in examples) + 2000 * (len(examples) + 1)  # clips, CSV and HTML rows
    check_free_space(out.parent, needed, f"the review report {out.name}")
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out), dir=out.parent))
    apply_umask(tmp)
    try:
        (tmp / "audio").mkdir()
        rows = []
        for rank, (i, ex) in enumerate(zip(order.tolist(), examples), 1):
            name = f"{rank:04d}-{Path(ex['audio'].get('path') or f'clip{i}.flac').name}"
            (tmp / "audio" / name).write_bytes(ex["audio"]["bytes"])
            rows.append(ReviewRow(rank, i, ex["track_id"], float(ex["clip_start"]), float(ex["clip_end"]), float(kl[i]),
                                  bool(mismatch[i]), labels[i], probs[i].astype(np.float64), f"audio/{name}"))
        write_csv(rows, tmp / "review.csv")
        write_html(rows, tmp / "index.html", title=title)
        replace_folder(tmp, out)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(e):
            raise disk_full_error(out.parent, f"the review report {out.name}", needed,
                                  after=f"{out.name} is as it was and nothing was left behind") from None
        raise
    return rows


def write_csv(rows: list[ReviewRow], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "track_id", "clip_start", "clip_end", "kl", "mismatch", "label_genre", "predicted_genre",
                    "audio", *(f"label {g}" for g in GENRES), *(f"prediction {g}" for g in GENRES)])
        for r in rows:
            w.writerow([r.rank, r.track_id, f"{r.clip_start:.3f}", f"{r.clip_end:.3f}", f"{r.kl:.6f}", int(r.mismatch),
                        r.label_genre, r.predicted_genre, r.audio, *(f"{v:.4f}" for v in r.label),
                        *(f"{v:.4f}" for v in r.prediction)])
    return path


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>HouseX review: {{ title }}</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: middle; }
.bar { display: flex; width: 260px; height: 14px; background: #eee; }
.bar span { display: block; height: 100%; }
.legend span { display: inline-block; padding: 0 6px; margin-right: 4px; color: #fff; border-radius: 3px; }
tr.hidden { display: none; }
</style>
</head>
<body>
<h1>Label / prediction disagreements</h1>
<p>{{ title }}. Ranked by KL(label &#8214; prediction), then by sharpened mismatch.</p>
<p class="legend">{% for g in genres %}<span style="background: {{ colours[loop.index0] }}">{{ g }}</span>{% endfor %}</p>
<p>
<label for="genre">Genre (label or prediction): </label>
<select id="genre"><option value="">all</option>{% for g in genres %}<option value="{{ g }}">{{ g }}</option>{% endfor %}</select>
<label><input type="checkbox" id="mismatch"> mismatches only</label>
</p>
<table id="rows">
<thead><tr><th>#</th><th>track</th><th>clip</th><th>audio</th><th>label</th><th>prediction</th><th>KL</th></tr></thead>
<tbody>
{% for r in rows %}<tr data-label="{{ r.label_genre }}" data-pred="{{ r.predicted_genre }}" data-mismatch="{{ 1 if r.mismatch else 0 }}">
<td>{{ r.rank }}</td><td>{{ r.track_id }}</td><td>{{ "%.2f"|format(r.clip_start) }}&ndash;{{ "%.2f"|format(r.clip_end) }} s</td>
<td><audio controls preload="none" src="{{ r.audio }}"></audio></td>
<td>{{ bar(r.label) }}{{ r.label_genre }}</td>
<td>{{ bar(r.prediction) }}{{ r.predicted_genre }}{% if r.mismatch %} &#10007;{% endif %}</td>
<td>{{ "%.3f"|format(r.kl) }}</td>
</tr>
{% endfor %}</tbody>
</table>
<script>
function applyFilter() {
  var g = document.getElementById("genre").value, m = document.getElementById("mismatch").checked;
  document.querySelectorAll("#rows tbody tr").forEach(function (tr) {
    var show = (!g || tr.dataset.label === g || tr.dataset.pred === g) && (!m || tr.dataset.mismatch === "1");
    tr.classList.toggle("hidden", !show);
  });
}
document.getElementById("genre").addEventListener("change", applyFilter);
document.getElementById("mismatch").addEventListener("change", applyFilter);
</script>
</body>
</html>
"""


def write_html(rows: list[ReviewRow], path: Path, *, title: str) -> Path:
    """The static page (jinja2, autoescaped): one row per clip, filters in plain JavaScript."""
    import jinja2
    from markupsafe import Markup, escape

    def bar(dist) -> Markup:
        spans = "".join(
            f'<span style="width: {100 * float(p):.1f}%; background: {c}" title="{escape(g)} {float(p):.2f}"></span>'
            for g, p, c in zip(GENRES, dist, GENRE_COLOURS) if p > 0.0005
        )
        return Markup(f'<div class="bar">{spans}</div>')

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.from_string(_TEMPLATE).render(rows=rows, genres=GENRES, colours=GENRE_COLOURS, title=title, bar=bar)
    path.write_text(html, encoding="utf-8")
    return path
