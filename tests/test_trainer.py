"""The trainer: arguments, loss on soft/hard labels, an end-to-end run that pipeline() loads,
offline push_to_hub, resume == uninterrupted, DDP with 2 CPU processes, and the Table-3 grid.

All runs use one tiny release (24 sine tracks with a drop file, 2 s clips) built once per session,
a ShuffleNetV2-x0.5 on 32x32 patches and a handful of steps.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from housex.dataset_script.genres import NUM_GENRES
from housex.dataset_script.labelstudio import make_task
from housex.dataset_script.release import write_drop_file, write_export

ROOT = Path(__file__).resolve().parents[1]
SEED = 0


def make_tiny_release(folder: Path, n_tracks: int = 24, sr: int = 16000, seconds: float = 6.0) -> Path:
    """Sine tracks whose pitch encodes the genre, a third with 0.75/0.25 soft labels, a drop file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    t = np.arange(int(seconds * sr)) / sr
    tasks, drops = [], {}
    for i in range(n_tracks):
        g = i % NUM_GENRES
        label = np.zeros(NUM_GENRES)
        label[g] = 1.0
        if i % 3 == 1:
            label[g], label[(g + 1) % NUM_GENRES] = 0.75, 0.25
        y = 0.5 * np.sin(2 * np.pi * 110.0 * 2 ** (g / 2) * t) + 0.05 * rng.standard_normal(t.size)
        name = f"track{i:02d}.flac"
        sf.write(folder / name, y.astype(np.float32), sr)
        tasks.append(make_task(i + 1, name, label))
        drops[name] = [(0.5, 5.5)]
    write_export(folder / "tiny-partition.json", tasks)
    write_drop_file(folder / "tiny-detected.json", drops, prefix="/data/upload/1/")
    return folder


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(release folder, tiny YAML config, built DatasetDict, exported dataset folder), session-wide."""
    from housex.dataset_script.builder import HouseXBuilder
    from housex.dataset_script.export import export_dataset

    root = tmp_path_factory.mktemp("trainer")
    release = make_tiny_release(root / "release")
    cache = root / "dataset-cache"
    config = {
        "do_train": True,
        "do_eval": True,
        "release_dirs": [str(release)],
        "build_dir": str(cache),
        "build_options": "clip_seconds=2,clips_per_section=2",
        "backbone": "shufflenet_v2_x0_5",  # a ResNet18 step costs ~6x the CPU on these patches
        "backbone_head": "replace",
        "n_mels": 32,
        "patch_hop": 32,
        "d_model": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "sampling_rate": 16000,
        "n_fft": 512,
        "hop_length": 256,
        "optim": "adamw_torch",
        "learning_rate": 1e-3,
        "weight_decay": 0.0,
        "step_lr_step_size": 2,
        "step_lr_gamma": 0.5,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "max_steps": 3,
        "eval_strategy": "no",
        "save_strategy": "no",
        "logging_steps": 1,
        "report_to": "none",
        "use_cpu": True,
        "ddp_find_unused_parameters": False,
        "dataloader_num_workers": 0,
        "seed": SEED,
        "output_dir": str(root / "unused"),
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    # Build once here (same options as the runs: they then reuse the cache).
    builder = HouseXBuilder(config_name="clips", data_dir=[str(release)], cache_dir=str(cache), seed=SEED,
                            clip_seconds=2.0, clips_per_section=2)
    builder.download_and_prepare()
    exported = root / "exported"
    export_dataset([release], exported, configs=("clips",), seed=SEED, clip_seconds=2.0, clips_per_section=2,
                   progress=False)
    return release, path, builder.as_dataset(), exported


def _run(config: Path, *argv, callbacks=None, **overrides):
    from housex.trainer.arguments import parse_args
    from housex.trainer.train import main

    model_args, data_args, training_args = parse_args([str(config), *argv], **overrides)
    return main(model_args, data_args, training_args, callbacks=callbacks)


# ------------------------------------------------------------------------------------------
def test_config_file_then_command_line_precedence(tiny, tmp_path):
    from housex.trainer.arguments import parse_args

    _, config, _, _ = tiny
    m, d, t = parse_args([str(config), "--n_mels", "48", "--bf16", "auto"], label_mode="sharpen", n_mels=40)
    assert m.n_mels == 48  # command line beats overrides beats the file
    assert d.label_mode == "sharpen"
    assert t.learning_rate == pytest.approx(1e-3) and t.step_lr_step_size == 2
    assert t.bf16 is (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset_name: x\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*learning_rat"):
        parse_args([str(bad)])
    with pytest.raises(ValueError, match="label_mode"):
        parse_args([str(config), "--label_mode", "fuzzy"])
    # paper: best checkpoint by accuracy on validation itself (its Table 3's protocol); the CPU demo: by
    # weighted F1 (the demo's target) and peer models by accuracy, on held-out training tracks
    for shipped, metric, chosen_on in (("paper.yaml", "accuracy", "validation"), ("cpu.yaml", "f1_weighted", "holdout"),
                                       ("peer.yaml", "accuracy", "holdout")):
        m, d, t = parse_args([str(ROOT / "trainer" / "configs" / shipped), "--dataset_name", "x"])
        assert t.metric_for_best_model == metric and t.load_best_model_at_end and t.checkpoint_selection == chosen_on
    m, d, t = parse_args([str(ROOT / "trainer" / "configs" / "paper.yaml"), "--dataset_name", "x"])
    assert (m.backbone, m.d_model, m.num_hidden_layers, m.num_attention_heads) == ("resnet152", 768, 1, 6)
    assert (t.learning_rate, t.step_lr_step_size, t.step_lr_gamma, t.per_device_train_batch_size,
            t.num_train_epochs, t.weight_decay) == (1e-4, 256, 0.9, 4, 5, 0.0)


def test_model_card_names_the_backbone_and_lists_only_hub_datasets(tmp_path):
    """patch_cnn_small is this package's CNN, not a torchvision model; a local dataset folder is no
    Hub dataset for the card's ``datasets:`` (a Hub id is)."""
    from housex.modeling import HouseXConfig, HouseXFeatureExtractor
    from housex.trainer.card import build_model_card

    local = tmp_path / "housex-v2"
    local.mkdir()
    metrics = {"accuracy": 0.5, "f1_weighted": 0.4, "num_eval_clips": 10, "num_tracks": 5}
    cards = {}
    for backbone, source in (("patch_cnn_small", str(local)), ("resnet18", "someone/housex-v2")):
        card = build_model_card(metrics={**metrics, "dataset": source}, model_config=HouseXConfig(backbone=backbone),
                                feature_extractor=HouseXFeatureExtractor(), label_mode="soft", class_weights=False,
                                training={}, synthetic=False, model_name="m", repo_id=None)
        cards[backbone] = (card.data.to_dict(), " ".join(str(card).split()))
    data, text = cards["patch_cnn_small"]
    assert "datasets" not in data and "torchvision" not in text
    assert "encoded by `patch_cnn_small`, this package's own small CNN" in text
    assert "Trained on: the local dataset folder `housex-v2`" in text
    data, text = cards["resnet18"]
    assert data["datasets"] == ["someone/housex-v2"] and "encoded by a torchvision `resnet18`" in text
    assert "Trained on: `someone/housex-v2`" in text


def test_loss_on_soft_and_hard_labels_and_class_weights():
    from housex.modeling import HouseXConfig, HouseXForAudioClassification
    from housex.trainer.data import class_weights_from_targets, training_targets

    soft = np.array([[0.75, 0.25, 0, 0, 0, 0, 0, 0], [0, 0.5, 0.5, 0, 0, 0, 0, 0], [0, 0, 0, 1.0, 0, 0, 0, 0]])
    hard = training_targets(soft, "sharpen")
    np.testing.assert_array_equal(hard, [0, 2, 3])  # 0.5/0.5 tie -> the later genre
    assert hard.dtype == np.int64
    assert training_targets(soft, "soft").dtype == np.float32

    torch.manual_seed(SEED)
    config = HouseXConfig(backbone="resnet18", backbone_head="replace", patch_size=16, patch_hop=16, d_model=16,
                          num_attention_heads=2, intermediate_size=32)
    model = HouseXForAudioClassification(config).eval()
    x = torch.rand(3, 3, 16, 32)
    with torch.no_grad():
        logp = torch.log_softmax(model(x).logits.double(), -1).numpy()
        soft_loss = model(x, labels=torch.tensor(training_targets(soft, "soft"))).loss.item()
        hard_loss = model(x, labels=torch.tensor(hard)).loss.item()
    assert soft_loss == pytest.approx(-(soft * logp).sum(1).mean(), rel=1e-5)
    assert hard_loss == pytest.approx(-logp[np.arange(3), hard].mean(), rel=1e-5)

    # Class weights ∝ 1 / summed soft counts (normalised to mean 1 over the classes present).
    weights = np.array(class_weights_from_targets(soft, NUM_GENRES))
    counts = soft.sum(0)
    present = counts > 0
    np.testing.assert_allclose(weights[present] * counts[present], (weights[present] * counts[present])[0])
    assert weights[present].mean() == pytest.approx(1.0) and np.all(weights[~present] == 0)
    model.config.class_weights = weights.tolist()
    with torch.no_grad():
        weighted = model(x, labels=torch.tensor(training_targets(soft, "soft"))).loss.item()
    assert weighted == pytest.approx(-(soft * weights * logp).sum(1).mean(), rel=1e-5)


def test_end_to_end_run_saves_a_folder_that_pipeline_loads(tiny, tmp_path):
    from transformers import pipeline

    release, config, _, exported = tiny
    out = tmp_path / "housex-tiny"
    # The exported folder through load_dataset(folder, "clips"); push_to_hub offline (HF_HUB_OFFLINE=1
    # in conftest) must fail with a clear error AFTER everything is saved locally.
    with pytest.raises(RuntimeError, match=r"push_to_hub.*saved\s+locally"):
        _run(config, "--output_dir", str(out), "--push_to_hub", "true", "--hub_model_id", "someone/housex-tiny",
             "--class_weights", "true", "--augment", "true", "--dataset_name", str(exported), release_dirs=None)
    names = {p.name for p in out.iterdir()}
    for required in ("model.safetensors", "config.json", "preprocessor_config.json", "modeling_housex.py",
                     "configuration_housex.py", "feature_extraction_housex.py", "README.md", "metrics.json",
                     "predictions.parquet", "confusion_matrix.png", "training_args.json"):
        assert required in names, required
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))], names

    config_json = json.loads((out / "config.json").read_text())
    assert config_json["auto_map"]["AutoModelForAudioClassification"].startswith("modeling_housex.")
    assert len(config_json["class_weights"]) == NUM_GENRES

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "f1_weighted", "precision_weighted", "recall_weighted", "f1_macro", "kl_divergence",
                "js_distance", "top2_accuracy", "ece"):
        assert isinstance(metrics[key], float), key
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (NUM_GENRES, NUM_GENRES) and cm.sum() == metrics["num_eval_clips"] > 0
    assert metrics["synthetic_dataset"] is False

    card = (out / "README.md").read_text()
    head = yaml.safe_load(card.split("---")[1])
    assert head["pipeline_tag"] == "audio-classification" and head["library_name"] == "transformers"
    results = head["model-index"][0]["results"][0]["metrics"]
    f1 = next(r["value"] for r in results if r["name"] == "F1 (weighted)")
    assert f1 == pytest.approx(metrics["f1_weighted"], abs=1e-4)
    assert "Slap House" in card and "someone/housex-tiny" in card
    assert "waveform: gain" in card and "features: time shift" not in card  # --augment true only
    # every figure with its interval, clip and track level (cluster bootstrap over the validation tracks)
    low, high = metrics["intervals"]["f1_weighted"]
    assert f"| F1 (weighted) | {metrics['f1_weighted']:.4f} | [{low:.4f}, {high:.4f}] |" in card
    track_f1 = metrics["track_level"]["f1_weighted"]
    assert f"| F1 (weighted) | {track_f1:.4f} | [" in card.split("metric (track level)")[1]
    assert f"of {metrics['num_tracks']} tracks" in card and "2000 resamples, seed 0" in card

    # metrics.json is a function of predictions.parquet: the validation clips, in order, and their probabilities
    from housex.trainer.predictions import metrics_from_predictions, read_predictions

    predictions = read_predictions(out)
    eval_clips = tiny[2]["validation"]
    assert list(predictions.track_ids) == list(eval_clips["track_id"]) and len(predictions) == metrics["num_eval_clips"]
    assert predictions.row_info == {"kind": "HouseX", "model": "shufflenet_v2_x0_5", "features": "mel",
                                    "labels": "soft", "dataset": str(exported), "split": "validation", "seed": SEED,
                                    "checkpoint_selection": "last",  # no load_best_model_at_end: nothing chosen
                                    "selection": {"chosen_on": None, "step": 3, "epoch": pytest.approx(0.3)}}
    assert json.loads(json.dumps(metrics_from_predictions(predictions))).items() <= metrics.items()

    clf = pipeline("audio-classification", model=str(out), trust_remote_code=True)
    preds = clf(str(release / "track03.flac"), top_k=NUM_GENRES)
    assert len(preds) == NUM_GENRES and sum(p["score"] for p in preds) == pytest.approx(1.0, abs=1e-4)
    assert {p["label"] for p in preds} == set(json.loads((out / "config.json").read_text())["id2label"].values())


def test_resume_after_stop_gives_the_same_weights_as_an_uninterrupted_run(tiny, tmp_path):
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    _, config, _, _ = tiny

    class StopAt(TrainerCallback):
        def __init__(self, step):
            self.step = step

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= self.step:
                control.should_training_stop = True
            return control

    common = ("--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2", "--augment", "true")
    _run(config, *common, "--output_dir", str(tmp_path / "straight"))
    _run(config, *common, "--output_dir", str(tmp_path / "stopped"), callbacks=[StopAt(2)])
    state = json.loads((tmp_path / "stopped" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and (tmp_path / "stopped" / "checkpoint-2").is_dir()
    _run(config, *common, "--output_dir", str(tmp_path / "stopped"), "--resume_from_checkpoint", "last")

    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "stopped" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    stopped_early = load_file(tmp_path / "stopped" / "checkpoint-2" / "model.safetensors")
    assert not all(torch.equal(a[k], stopped_early[k]) for k in a)  # the test can fail: steps 3-4 matter


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tiny, tmp_path):
    # accelerate 1.15: `launch --cpu --num_processes 2` starts ONE process (multi-CPU there means
    # mpirun); `--multi_gpu` goes through torchrun and, with use_cpu (in the config), runs real
    # DDP on gloo with two CPU processes.  The step count below proves the world size is 2.
    _, config, built, _ = tiny
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "trainer" / "run.py"), str(config),
           "--output_dir", str(out), "--max_steps", "-1", "--num_train_epochs", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "process 1 of 2" in proc.stderr and "parallel mode distributed" in proc.stderr
    state = json.loads((out / "trainer_state.json").read_text())
    # One epoch of N clips, batch 4 per process, 2 processes: ceil(ceil(N / 4) / 2) optimizer steps.
    n_train = len(built["train"])
    assert state["global_step"] == math.ceil(math.ceil(n_train / 4) / 2)
    assert (out / "model.safetensors").is_file()
    assert json.loads((out / "metrics.json").read_text())["num_examples"] == len(built["validation"])


def test_grid_tiny_resumes_and_skips_finished_cells(tiny, tmp_path):
    from housex.cli import main as housex_main
    from housex.trainer.grid import run_grid

    release, config, _, _ = tiny
    out = tmp_path / "grid"
    extra = ["--max_steps", "2"]
    first = run_grid(out, backbones=["shufflenet_v2_x0_5"], features=["mel"], labels=["hard", "soft"],
                     config=str(config), train_args=extra)
    assert [r["status"] for r in first] == ["trained", "trained"]
    # The full 1x2x2 grid through the CLI: the two mel cells are skipped, the chroma ones trained.
    rc = housex_main(["grid", "--release-dirs", str(release), "--out", str(out), "--config", str(config),
                      "--backbones", "shufflenet_v2_x0_5", "--train-args", " ".join(extra)])
    assert rc == 0
    grid = json.loads((out / "grid.json").read_text())
    assert [(r["features"], r["labels"], r["status"]) for r in grid["runs"]] == [
        ("mel", "hard", "skipped"), ("mel", "soft", "skipped"),
        ("mel+chroma", "hard", "trained"), ("mel+chroma", "soft", "trained"),
    ]
    chroma_fe = json.loads((out / "shufflenet_v2_x0_5-mel-chroma-soft" / "preprocessor_config.json").read_text())
    assert chroma_fe["use_chroma"] is True
    assert json.loads((out / "shufflenet_v2_x0_5-mel-hard" / "metrics.json").read_text())["label_mode"] == "sharpen"
    table = (out / "table.md").read_text()
    lines = [ln for ln in table.splitlines() if ln.startswith("| shufflenet_v2_x0_5")]
    assert len(lines) == 2 and lines[0].startswith("| shufflenet_v2_x0_5 | mel |") and "mel+chroma" in lines[1]
    assert "Hard F1" in table and "Soft F1" in table
    f1 = grid["runs"][3]["metrics"]["f1_weighted"]
    assert f"{f1:.3f}" in lines[1]
    again = run_grid(out, backbones=["shufflenet_v2_x0_5"], config=str(config), train_args=extra)
    assert [r["status"] for r in again] == ["skipped"] * 4


def test_precomputed_features_train_the_same_model_as_on_the_fly(tiny, tmp_path):
    """--precompute_features (Dataset.map once) must feed the model exactly what the transform does."""
    from safetensors.torch import load_file

    _, config, _, _ = tiny

    def train_both(tag, *argv):
        """Train on the fly and precomputed, assert the same weights and metrics; return the weights."""
        runs = []
        for name, extra in (("fly", ()), ("pre", ("--precompute_features", "true"))):
            out = tmp_path / f"{tag}-{name}"
            metrics = _run(config, *argv, *extra, "--output_dir", str(out))
            runs.append((metrics, load_file(out / "model.safetensors")))
        (m_fly, w_fly), (m_pre, w_pre) = runs
        for k in w_fly:
            assert torch.allclose(w_fly[k], w_pre[k], atol=1e-5), k
        assert m_pre["accuracy"] == pytest.approx(m_fly["accuracy"])
        return w_pre

    common = ("--max_steps", "3", "--save_strategy", "no", "--load_best_model_at_end", "false")
    train_both("plain", *common)
    # hard targets are stored as class ids next to the fixed-shape feature arrays
    hard = _run(config, *common, "--output_dir", str(tmp_path / "hard"), "--precompute_features", "true",
                "--label_mode", "sharpen")
    assert hard["label_mode"] == "sharpen" and 0.0 <= hard["accuracy"] <= 1.0
    with pytest.raises(ValueError, match="precompute_features and augment"):
        _run(config, "--precompute_features", "true", "--augment", "true", "--output_dir", str(tmp_path / "x"))

    # Feature augmentation works on stored features too, drawing the same per clip and epoch
    # whether the features are computed on the fly or read back; and it changes what is learnt.
    two_epochs = (*common, "--num_train_epochs", "2", "--max_steps", "-1")
    augmented = train_both("augmented", *two_epochs, "--feature_augment", "true")
    assert "features: time shift, spectral tilt" in (tmp_path / "augmented-pre" / "README.md").read_text()
    _run(config, *two_epochs, "--output_dir", str(tmp_path / "unaugmented"))
    plain = load_file(tmp_path / "unaugmented" / "model.safetensors")
    assert not all(torch.allclose(augmented[k], plain[k], atol=1e-5) for k in plain)


def test_feature_augmentation_is_a_seeded_shift_tilt_and_masks():
    from transformers import DataCollatorWithPadding

    from housex.modeling import HouseXFeatureExtractor
    from housex.trainer.augmentation import FeatureAugmentCollator, augment_features

    x = torch.rand(3, 16, 40) * 0.8 + 0.1
    x[1:] = x[0]  # mel plane repeated, as without chroma

    def gen(seed):
        return torch.Generator().manual_seed(seed)

    a, b = augment_features(x, gen(1), tilt_planes=3), augment_features(x, gen(1), tilt_planes=3)
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0 and torch.equal(a[0], a[2])
    assert not torch.equal(a, augment_features(x, gen(2), tilt_planes=3))
    # without tilt and masks, what is left is a circular shift along time
    shifted = augment_features(x, gen(3), tilt_planes=3, max_tilt_db=0.0, mask_fraction=0.0)
    assert any(torch.equal(shifted, torch.roll(x, k, dims=-1)) for k in range(1, 40))
    # the tilt moves the two edge bands in opposite directions by at most max_tilt_db (1 = 80 dB)
    tilted = augment_features(x, gen(4), tilt_planes=1, mask_fraction=0.0, roll=False)
    low, high = (tilted[0, 0] - x[0, 0]).mean(), (tilted[0, -1] - x[0, -1]).mean()
    assert float(low) * float(high) < 0 and max(abs(float(low)), abs(float(high))) <= 4.0 / 80 + 1e-6
    assert torch.equal(tilted[1:], x[1:])  # planes past tilt_planes (chroma) keep their values
    # one frequency mask and one time mask, at most 1/8 of the bands / frames each
    masked = augment_features(x, gen(5), tilt_planes=3, max_tilt_db=0.0, roll=False, mask_fraction=0.25)
    changed_bands = (masked != x).all(dim=-1).any(dim=0).sum()
    assert int(changed_bands) <= 4

    fe = HouseXFeatureExtractor(n_mels=16, clip_seconds=1.0, sampling_rate=8000, hop_length=200)
    collate = FeatureAugmentCollator(DataCollatorWithPadding(fe), seed=7, tilt_planes=3)
    full = torch.ones(40, dtype=torch.int32)
    padded = torch.cat([torch.ones(30, dtype=torch.int32), torch.zeros(10, dtype=torch.int32)])
    rows = [{"input_features": x, "attention_mask": full, "labels": 1, "augment_key": 11},
            {"input_features": x, "attention_mask": padded, "labels": 2, "augment_key": 12},
            {"input_features": x, "attention_mask": full, "labels": 3}]  # no key: an evaluation row
    batch = collate(rows)
    assert "augment_key" not in batch and batch["input_features"].shape == (3, 3, 16, 40)
    assert torch.equal(batch["input_features"][2], x) and not torch.equal(batch["input_features"][0], x)
    assert torch.equal(collate(rows)["input_features"], batch["input_features"])  # same epoch, same draws
    collate.epoch = 1
    assert not torch.equal(collate(rows)["input_features"][0], batch["input_features"][0])
    # a padded clip is not rotated: its padding stays at the end, where the mask says it is
    collate.epoch = 0
    again = collate([rows[1]])["input_features"][0]
    expected = augment_features(x, torch.Generator().manual_seed(__import__("zlib").crc32(b"7/0/12")),
                                tilt_planes=3, roll=False)
    assert torch.equal(again, expected)


def _fresh_install(tmp_path: Path) -> Path:
    """A new venv with a regular (non-editable) ``pip install .`` of a copy of the project.

    No downloads: the venv reads the dependencies (torch ..., and the setuptools >= 77 that torch
    requires, for the build) from this interpreter's site-packages through a .pth file, the
    project is installed with --no-deps --no-build-isolation, and built from a copy so that the
    checkout gets no build/ folder.  The copy is where the code comes from, not the checkout.
    """
    import site

    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("housex", "dataset_script", "modeling", "trainer", "cards"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    shared = str(Path(torch.__file__).resolve().parents[1])  # first: the site-packages with torch and setuptools
    purelib = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    paths = [shared] + [p for p in site.getsitepackages() if p != shared]
    (purelib / "00-shared.pth").write_text("\n".join(paths) + "\n")
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                           "--no-build-isolation", "--no-index", "--ignore-installed", str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv


@pytest.mark.slow
def test_a_regular_install_runs_the_demo_launcher_build_and_training(tiny, tmp_path):
    """Item 8 of issue 14: nothing needs the source checkout (trainer/run.py, trainer/configs/)."""
    release, config, _, _ = tiny
    venv = _fresh_install(tmp_path)
    python, housex_cli = str(venv / "bin" / "python"), str(venv / "bin" / "housex")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    work = tmp_path / "work"  # not the checkout: python -m puts the cwd on sys.path
    work.mkdir()

    stderr: dict[tuple, str] = {}

    def run(*cmd):
        proc = subprocess.run([str(c) for c in cmd], env=env, cwd=work, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        stderr[cmd] = proc.stderr
        return proc.stdout

    where = run(python, "-c", "import housex.trainer as t; print(t.__file__); print(t.CONFIGS_DIR)").split()
    assert all(p.startswith(str(venv)) for p in where), where
    assert Path(where[1], "cpu.yaml").is_file()
    assert "--train-args" in run(housex_cli, "demo", "--help")
    assert "8. Slap House" in run(housex_cli, "baseline", "mllm", "--show-prompt")  # the prompt is package data

    dataset = tmp_path / "housex-tiny"
    run(housex_cli, "build", "--data-dir", release, "--out", dataset, "--config", "clips", "--seed", SEED,
        "--clip-seconds", 2, "--clips-per-section", 2, "--quiet")
    assert (dataset / "README.md").is_file()

    # The demo's own launch command (accelerate launch -m housex.trainer.run ...), one step.
    values = yaml.safe_load(config.read_text())
    for key in ("release_dirs", "build_dir", "build_options"):
        values.pop(key)
    run_config = tmp_path / "run.yaml"
    run_config.write_text(yaml.safe_dump(values))
    out = tmp_path / "model"
    code = ("import json, sys; from housex.commands.demo import train_command; "
            "print(json.dumps(train_command(sys.argv[1], sys.argv[2], sys.argv[3], extra=['--max_steps', '1'])))")
    cmd = json.loads(run(python, "-c", code, run_config, dataset, out))
    assert cmd[0] == python and "housex.trainer.run" in cmd and not any(c.endswith("run.py") for c in cmd)
    run(*cmd)
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1
    # a normal one-process run says nothing about processes (several processes each say which they are)
    assert "process 0 of 1" not in stderr[tuple(cmd)] and "%|" not in stderr[tuple(cmd)], stderr[tuple(cmd)][-2000:]
    for name in ("model.safetensors", "modeling_housex.py", "metrics.json", "confusion_matrix.png", "README.md"):
        assert (out / name).is_file(), name
