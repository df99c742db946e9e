"""Issue 15: bad training options and outputs are one line naming the option, before anything is written."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import pytest
from test_builder import PARAMS, _write, good_track, make_release

from housex.dataset_script.export import export_dataset
from housex.trainer.run import main as run_main


def _run(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run_main([str(a) for a in argv])
    return code, err.getvalue().strip()


@pytest.fixture(scope="module")
def tracks_only(tmp_path_factory):
    """A dataset folder with the tracks config only and one split (train)."""
    root = tmp_path_factory.mktemp("train-rel")
    rel = root / "rel"
    make_release(rel, {"t0.flac": None})
    _write(rel, "t0.flac", good_track(0), 22050)
    export_dataset(rel, root / "ds", configs=("tracks",), validation_fraction=0.0, progress=False, **PARAMS)
    return root


BAD_OPTIONS = [
    ("--per_device_train_batch_size", "0", "an integer ≥ 1"),
    ("--per_device_eval_batch_size", "-2", "an integer ≥ 1"),
    ("--gradient_accumulation_steps", "0", "an integer ≥ 1"),
    ("--learning_rate", "nan", "≥ 0"),
    ("--learning_rate", "inf", "≥ 0"),
    ("--num_train_epochs", "-1", "≥ 0"),
    ("--weight_decay", "-0.1", "≥ 0"),
    ("--max_grad_norm", "nan", "≥ 0"),
    ("--adam_epsilon", "0", "> 0"),
    ("--adam_beta2", "1", "in [0, 1)"),
    ("--max_steps", "0", "-1 (use num_train_epochs) or an integer ≥ 1"),
    ("--step_lr_gamma", "0", "> 0"),
    ("--clip_seconds", "0", "> 0"),
    ("--clip_seconds", "nan", "> 0"),
    ("--patch_hop", "0", "an integer ≥ 1"),
    ("--n_mels", "-4", "an integer ≥ 1"),
    ("--hidden_dropout_prob", "1.5", "in [0, 1)"),
    ("--max_train_samples", "0", "an integer ≥ 1"),
    ("--selection_fraction", "1", "in (0, 1)"),
]


@pytest.mark.parametrize("option,value,what", BAD_OPTIONS)
def test_bad_numeric_training_option_is_one_line_naming_it(tmp_path, option, value, what):
    out = tmp_path / "run"
    code, err = _run(["--dataset_name", tmp_path / "nowhere", "--output_dir", out, "--do_train", option, value])
    assert code == 2
    assert err.splitlines() == [f"trainer/run.py: error: {option}: must be {what}, got {err.rsplit('got ', 1)[1]}"]
    assert not out.exists()


CHECKPOINT_SELECTION_ERRORS = [
    (["--checkpoint_selection", "best"], "--checkpoint_selection: must be one of holdout, last, validation, got best"),
    (["--checkpoint_selection", "validation"],
     "--checkpoint_selection validation chooses the best checkpoint, but load_best_model_at_end is false (the final "
     "weights would be scored: that is --checkpoint_selection last); set --load_best_model_at_end true with an "
     "eval_strategy and save_strategy"),
    (["--checkpoint_selection", "holdout"], "--checkpoint_selection holdout chooses the best checkpoint, but"),
    (["--checkpoint_selection", "last", "--load_best_model_at_end", "true", "--eval_strategy", "epoch",
      "--save_strategy", "epoch"],
     "--checkpoint_selection last scores the final weights, but load_best_model_at_end is true: add "
     "--load_best_model_at_end false"),
]


@pytest.mark.parametrize("options,message", CHECKPOINT_SELECTION_ERRORS)
def test_contradictory_checkpoint_selection_is_one_line(tmp_path, options, message):
    out = tmp_path / "run"
    code, err = _run(["--dataset_name", tmp_path / "nowhere", "--output_dir", out, "--do_train", *options])
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"trainer/run.py: error: {message}")
    assert not out.exists()


def test_zero_epochs_cannot_train(tmp_path):
    code, err = _run(["--dataset_name", tmp_path, "--output_dir", tmp_path.parent / "r0", "--do_train",
                      "--num_train_epochs", "0"])
    assert code == 2 and "--num_train_epochs: must be > 0 to train" in err


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_output_dir_never_in_or_over_the_dataset(tracks_only, where):
    ds = tracks_only / "ds"
    before = sorted(p.name for p in ds.rglob("*"))
    out = {"same": ds, "inside": ds / "run", "parent": tracks_only}[where]
    code, err = _run(["--dataset_name", ds, "--output_dir", out, "--do_train"])
    assert code == 2 and err.startswith("trainer/run.py: error: --output_dir ") and len(err.splitlines()) == 1
    assert sorted(p.name for p in ds.rglob("*")) == before
    assert not (ds / "run").exists()


def test_output_dir_inside_a_release_folder_is_refused(tracks_only):
    rel = tracks_only / "rel"
    code, err = _run(["--release_dirs", rel, "--output_dir", rel / "run", "--do_train"])
    assert code == 2 and "lies inside the input folder" in err
    assert not (rel / "run").exists()


def test_dataset_without_the_clips_config_is_a_named_error(tracks_only, tmp_path):
    code, err = _run(["--dataset_name", tracks_only / "ds", "--output_dir", tmp_path / "run", "--do_train"])
    assert code == 2 and len(err.splitlines()) == 1 and "clips" in err, err


def test_dataset_with_one_split_is_a_named_error(tracks_only, tmp_path):
    code, err = _run(["--dataset_name", tracks_only / "ds", "--dataset_config_name", "tracks",
                      "--output_dir", tmp_path / "run", "--do_train"])
    assert code == 2 and "has no split 'validation' (has train)" in err, err


def test_offline_imagenet_weights_are_one_line_in_command_line_terms(tmp_path, monkeypatch):
    """--backbone_pretrained true with no network: the way out is --backbone_weights_path, not
    HouseXConfig(...) (the Python wording stays for Python users of the model class)."""
    from housex.trainer.arguments import ModelArguments
    from housex.trainer.train import build_feature_extractor, build_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached ImageNet file: the fetch must go online
    model_args = ModelArguments(backbone="resnet18", backbone_pretrained=True, n_mels=32, d_model=32,
                                num_attention_heads=2, intermediate_size=64)
    with pytest.raises(OSError) as info:
        build_model(model_args, build_feature_extractor(model_args), None)
    message = str(info.value)
    assert message.startswith("--backbone_pretrained true: could not fetch the ImageNet weights of 'resnet18'")
    assert "--backbone_weights_path /path/to/resnet18-" in message and "HouseXConfig" not in message, message


def test_errors_under_accelerate_launch_reach_the_user_as_one_line(tmp_path):
    """The demo's launch command (accelerate launch --quiet ... -m housex.trainer.run): a run that stops
    on an error prints its one line, not the launcher's CalledProcessError traceback around it again."""
    from housex.commands.demo import train_command
    from housex.trainer import CONFIGS_DIR

    cmd = train_command(CONFIGS_DIR / "cpu.yaml", tmp_path / "no-such-dataset", tmp_path / "run")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and len(lines) == 1, done.stderr
    assert lines[0].startswith("trainer/run.py: error: ") and "no-such-dataset" in lines[0]

