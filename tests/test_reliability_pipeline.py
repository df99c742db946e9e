"""Issue 15: pipeline("audio-classification") on our own dataset's 44.1 kHz clips works out of the box."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from test_inference import tiny_model
from transformers import pipeline

import housex  # noqa: F401  registers the resampling pipeline class
from housex.dataset_script.export import export_dataset
from test_builder import PARAMS, _write, good_track, make_release


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("m16k"), sr=16000, clip_seconds=3.0)


@pytest.fixture(scope="module")
def clips_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    rel = root / "rel"
    make_release(rel, {"t0.flac": None})
    _write(rel, "t0.flac", good_track(20, sr=44100), 44100)
    export_dataset(rel, root / "ds", configs=("clips",), validation_fraction=0.0, progress=False, **PARAMS)
    return root / "ds"


def _expected(model_dir, audio, sr):
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    fe = AutoFeatureExtractor.from_pretrained(model_dir)
    model = AutoModelForAudioClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        logits = model(**fe(audio, sampling_rate=sr, return_tensors="pt")).logits
    return torch.softmax(logits, -1)[0].numpy()


def _scores(result, labels):
    by_label = {r["label"]: r["score"] for r in result}
    return np.array([by_label[name] for name in labels])


def test_pipeline_on_a_dataset_row_and_a_raw_dict_at_44k(model_dir, clips_folder):
    from datasets import load_dataset

    row = load_dataset(str(clips_folder), "clips", split="train")[0]
    classifier = pipeline("audio-classification", model=str(model_dir))
    labels = [classifier.model.config.id2label[i] for i in range(8)]
    samples = row["audio"].get_all_samples()
    audio = samples.data.numpy().mean(axis=0)
    assert samples.sample_rate == 44100
    expected = _expected(model_dir, audio, 44100)  # the feature extractor's own resampling
    got_row = _scores(classifier(row["audio"], top_k=None), labels)
    got_raw = _scores(classifier({"raw": audio, "sampling_rate": 44100}, top_k=None), labels)
    got_array = _scores(classifier({"array": audio, "sampling_rate": 44100}, top_k=None), labels)
    np.testing.assert_allclose(got_row, expected, atol=1e-5)
    np.testing.assert_allclose(got_raw, expected, atol=1e-5)
    np.testing.assert_allclose(got_array, expected, atol=1e-5)


def test_pipeline_on_a_file_at_another_rate(model_dir, tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, good_track(3, sr=44100)[: 44100 * 3], 44100)
    classifier = pipeline("audio-classification", model=str(model_dir))
    assert len(classifier(str(path), top_k=None)) == 8


def test_import_housex_alone_makes_the_resampling_pipeline_the_task_class():
    import subprocess
    import sys

    code = ("import housex\nfrom transformers.pipelines import PIPELINE_REGISTRY\n"
            "print(PIPELINE_REGISTRY.supported_tasks['audio-classification']['impl'].__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "ResamplingAudioClassificationPipeline", out.stderr
