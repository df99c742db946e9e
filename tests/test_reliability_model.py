"""Issue 15: a corrupt model folder is one line naming the folder and file, from predict and timeline."""

from __future__ import annotations

import contextlib
import io
import shutil

import pytest
import soundfile as sf
from conftest import loud_section_track
from test_inference import tiny_model

from housex.cli import main as housex_main


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("m"), clip_seconds=3.0)


@pytest.fixture(scope="module")
def track(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "track.wav"
    sf.write(path, loud_section_track(seconds=40.0, sr=16000), 16000)
    return path


def _truncate(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _cut_header(folder):
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:20])


CORRUPTIONS = {
    "truncated weights": (_truncate, "model.safetensors is"),
    "empty weights": (lambda f: (f / "model.safetensors").write_bytes(b""), "model.safetensors is not a complete"),
    "cut header": (_cut_header, "model.safetensors is not a complete"),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), "no model.safetensors"),
    "broken config": (lambda f: (f / "config.json").write_text("{not json"), "config.json is not valid JSON"),
    "config is a list": (lambda f: (f / "config.json").write_text("[]"), "config.json must hold a JSON object"),
    "broken extractor": (lambda f: (f / "preprocessor_config.json").write_text(""), "preprocessor_config.json is not valid JSON"),
    "wrong model type": (lambda f: (f / "config.json").write_text('{"model_type": "nonsense"}'), "cannot load the model"),
}


@pytest.mark.parametrize("command", ["predict", "timeline"])
@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_model_folder_is_one_line(good_model, track, tmp_path, kind, command):
    folder = tmp_path / "model"
    shutil.copytree(good_model, folder)
    corrupt, message = CORRUPTIONS[kind]
    corrupt(folder)
    argv = [command, str(track), "--model", str(folder)]
    if command == "timeline":
        argv += ["--out", str(tmp_path / "tl")]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = housex_main(argv)
    text = err.getvalue().strip()
    assert code == 2, text
    assert len(text.splitlines()) == 1 and "Traceback" not in text, text
    assert str(folder) in text and message in text, text
