"""``housex review``: a known-wrong label ranks first; the page is valid HTML and plays existing files."""

from __future__ import annotations

import csv
from html.parser import HTMLParser

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import loud_section_track
from test_inference import tiny_model

from housex.cli import main as housex_main
from housex.dataset_script.genres import GENRES, NUM_GENRES
from housex.dataset_script.labelstudio import make_task
from housex.dataset_script.release import write_export
from housex.inference import classify_track, load_classifier
from housex.review import kl_divergence, rank_disagreements

CLIP = 3.0


def test_kl_and_ranking_order():
    labels = np.array([[1, 0, 0], [0.5, 0.5, 0], [0, 0, 1], [1, 0, 0]], dtype=float)
    probs = np.array([[0.5, 0.25, 0.25], [0.5, 0.5, 0], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])
    kl = kl_divergence(labels, probs)
    np.testing.assert_allclose(kl, [np.log(2), 0, np.log(4), np.log(2)], atol=1e-9)
    order, _, mismatch = rank_disagreements(labels, probs)
    assert order.tolist() == [2, 0, 3, 1] and mismatch.tolist() == [False, False, True, False]
    # equal KL: the sharpened mismatch goes first
    order, _, _ = rank_disagreements(np.array([[1.0, 0], [0, 1.0]]), np.array([[0.6, 0.4], [0.4, 0.6]]))
    assert order.tolist() == [0, 1]
    order, _, mismatch = rank_disagreements(np.array([[0.5, 0.5], [1.0, 0]]), np.array([[0.9, 0.1], [0.6, 0.4]]))
    assert mismatch.tolist() == [True, False]  # the tie 0.5/0.5 sharpens to the LAST genre


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.audio, self.rows, self.options = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "audio":
            self.audio.append(a["src"])
        elif tag == "tr" and "data-label" in a:
            self.rows.append(a)
        elif tag == "option":
            self.options.append(a["value"])


def test_review_puts_the_known_wrong_label_first(tmp_path, capsys):
    html5lib = pytest.importorskip("html5lib", reason="html5lib is a dev dependency (make setup installs it)")
    model_dir = tiny_model(tmp_path / "model", clip_seconds=CLIP)
    # A confident model: its outputs scaled up (a real trained model is confident on clear tracks).
    model, fe = load_classifier(model_dir)
    with torch.no_grad():
        model.classifier.weight.mul_(40.0)
        model.classifier.bias.mul_(40.0)
    model.save_pretrained(model_dir)

    release = tmp_path / "release"
    release.mkdir()
    tasks, wrong_track = [], "track-2"
    for k in range(5):
        name = f"track-{k}.wav"
        sf.write(release / name, loud_section_track(40.0, 16000, seed=k, channels=1)[:, 0] * (0.3 + 0.15 * k), 16000)
        probs = classify_track(release / name, model, fe).probabilities
        label = np.zeros(NUM_GENRES)
        # every track is labelled with the model's genre, except one: the genre the model rates least
        label[int(np.argmin(probs)) if name.startswith(wrong_track) else int(np.argmax(probs))] = 1.0
        tasks.append(make_task(k + 1, name, label))
    write_export(release / "partition-1.json", tasks)
    built = tmp_path / "built"
    assert housex_main(["build", "--data-dir", str(release), "--out", str(built), "--config", "clips",
                        "--clip-seconds", str(CLIP), "--validation-fraction", "0", "--quiet"]) == 0

    out = tmp_path / "review"
    code = housex_main(["review", "--dataset", str(built), "--model", str(model_dir), "--out", str(out),
                        "--split", "train", "--top", "6"])
    assert code == 0, capsys.readouterr().err
    with open(out / "review.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and [int(r["rank"]) for r in rows] == list(range(1, 7))
    assert rows[0]["track_id"] == wrong_track
    wrong_rows = [i for i, r in enumerate(rows) if r["track_id"] == wrong_track]
    assert wrong_rows == list(range(len(wrong_rows))) and len(wrong_rows) == 4  # its 4 clips lead the list
    assert all(r["mismatch"] == "1" for r in rows[:4])
    kls = [float(r["kl"]) for r in rows]
    assert kls == sorted(kls, reverse=True)
    assert float(rows[0]["clip_start"]) >= 19.0 and float(rows[0]["clip_end"]) == pytest.approx(
        float(rows[0]["clip_start"]) + CLIP, abs=1e-3)

    page = (out / "index.html").read_text(encoding="utf-8")
    html5lib.HTMLParser(strict=True).parse(page)  # raises on any HTML parse error
    parsed = _Collect()
    parsed.feed(page)
    assert len(parsed.audio) == 6 and parsed.audio == [r["audio"] for r in rows]
    for src in parsed.audio:
        info = sf.info(out / src)  # the file exists and is audio of one clip
        assert info.duration == pytest.approx(CLIP, abs=0.05)
    assert parsed.rows[0]["data-label"] == rows[0]["label_genre"] and parsed.rows[0]["data-mismatch"] == "1"
    assert parsed.options == ["", *GENRES]
    assert wrong_track in page and "mismatches only" in page
