"""modeling/: config, feature extractor, model, Auto classes, Hub custom code, pipeline.

Tiny configs throughout (32 mels, 2 s clips, resnet18 on 32x32 patches).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import housex  # noqa: F401  (registers the Auto classes)
from bench.reference_model import loop_forward
from housex.dataset_script.genres import GENRES
from housex.modeling import (
    HOUSEX_GENRES,
    HouseXConfig,
    HouseXFeatureExtractor,
    HouseXForAudioClassification,
    HouseXModel,
)
from housex.modeling.backbone_housex import PatchCNN, find_classifier_head
from housex.modeling.modeling_housex import sinusoidal_positions
from transformers.modeling_layers import GradientCheckpointingLayer

SR = 44100


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # Tiny tensors gain nothing from threads, and on a busy 2-core machine intra-op threads spin
    # against each other (measured 20x slower); restored afterwards for other modules.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(**overrides) -> HouseXConfig:
    kw = dict(
        backbone="resnet18",
        patch_size=32,
        patch_hop=16,
        d_model=32,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
    )
    kw.update(overrides)
    return HouseXConfig(**kw)


def tiny_model(seed: int = 0, **overrides) -> HouseXForAudioClassification:
    torch.manual_seed(seed)
    return HouseXForAudioClassification(tiny_config(**overrides)).eval()


def tiny_extractor(**overrides) -> HouseXFeatureExtractor:
    return HouseXFeatureExtractor(**{"n_mels": 32, "clip_seconds": 2.0, **overrides})


def tone(seconds: float, sr: int = SR, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A few harmonics plus a little noise, float32 (samples,)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.3 / h * np.sin(2 * np.pi * freq * h * t) for h in range(1, 5))
    return (y + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


# -- config -------------------------------------------------------------------------------------


def test_own_genre_copy_matches_dataset_genres():
    assert tuple(HOUSEX_GENRES) == tuple(GENRES)
    cfg = HouseXConfig()
    assert cfg.num_labels == 8
    assert [cfg.id2label[i] for i in range(8)] == list(GENRES)
    assert cfg.label2id["Tech House"] == 3


def test_config_presets_validation_and_roundtrip(tmp_path):
    paper = HouseXConfig.from_preset("paper")
    assert (paper.backbone, paper.patch_size, paper.patch_hop, paper.d_model) == ("resnet152", 224, 16, 768)
    assert (paper.num_hidden_layers, paper.num_attention_heads) == (1, 6)
    assert paper.num_patches(646) == 27
    small = HouseXConfig.from_preset("cpu-small", pooling="mean")
    assert small.patch_size == 64 and small.pooling == "mean"
    with pytest.raises(ValueError, match="pooling"):
        HouseXConfig(pooling="max")
    with pytest.raises(ValueError, match="class_weights"):
        HouseXConfig(class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="preset"):
        HouseXConfig.from_preset("huge")
    cfg = tiny_config(class_weights=[1.0] * 8, pooling="cls")
    cfg.save_pretrained(tmp_path)
    loaded = HouseXConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == cfg.to_dict()
    assert loaded.hidden_size == 32


# -- model --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"pooling": "cls"},
        {"pooling": "mean", "backbone_head": "replace"},
        {"backbone_chunk_size": 3, "num_hidden_layers": 2},
    ],
    ids=["first", "cls", "mean-replace", "chunked-2layers"],
)
def test_batched_forward_equals_per_patch_loop(overrides):
    model = tiny_model(**overrides)
    torch.manual_seed(1)
    x = torch.rand(3, 3, 32, 32 + 16 * 4 + 5)  # 5 patches, 5 frames left over
    mask = torch.ones(3, x.shape[-1], dtype=torch.long)
    mask[1, 45:] = 0  # clip 1 padded: patches 3 (from frame 48) and 4 hold only padding
    with torch.no_grad():
        out = model(x, attention_mask=mask)
    ref = loop_forward(model, x, mask)
    assert out.logits.shape == (3, 8)
    assert torch.allclose(out.logits, ref, atol=1e-4), (out.logits - ref).abs().max()
    assert out.patch_mask.tolist()[1] == [True, True, True, False, False]


def test_positions_are_sinusoidal():
    pe = sinusoidal_positions(5, 6)
    assert torch.allclose(pe[0], torch.tensor([0.0, 1.0] * 3))
    assert torch.allclose(pe[3, 2], torch.tensor(np.sin(3 / 10000 ** (2 / 6)), dtype=torch.float32))


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_fully_padded_patches_are_ignored(pooling):
    model = tiny_model(pooling=pooling)
    x = torch.rand(1, 3, 32, 96)  # 5 patches
    mask = torch.zeros(1, 96, dtype=torch.long)
    mask[0, :40] = 1  # patches starting at 48 and 64 see only padding; patch 2 (32..63) is real
    other = x.clone()
    other[..., 64:] = torch.rand_like(other[..., 64:])  # frames seen only by the padded patches
    with torch.no_grad():
        a = model(x, attention_mask=mask).logits
        b = model(other, attention_mask=mask).logits
        c = model(other).logits  # without the mask the padding content matters
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-4)


def test_soft_and_hard_label_loss_and_class_weights():
    model = tiny_model()
    x = torch.rand(2, 3, 32, 64)
    hard = torch.tensor([2, 5])
    with torch.no_grad():
        out_hard = model(x, labels=hard)
        out_onehot = model(x, labels=torch.nn.functional.one_hot(hard, 8).float())
        soft = torch.zeros(2, 8)
        soft[0, 0], soft[0, 1], soft[1, 3] = 0.75, 0.25, 1.0
        out_soft = model(x, labels=soft)
    assert torch.allclose(out_hard.loss, out_onehot.loss)
    expected = -(soft * out_soft.logits.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(out_soft.loss, expected, atol=1e-6)
    weights = [1.0, 2.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0]
    weighted = tiny_model(class_weights=weights)
    with torch.no_grad():
        out_w = weighted(x, labels=hard)
    logp = out_w.logits.log_softmax(-1)
    assert torch.allclose(out_w.loss, -(1.0 * logp[0, 2] + 3.0 * logp[1, 5]) / 2, atol=1e-6)  # w[2]=1, w[5]=3
    with pytest.raises(ValueError, match="labels"):
        model(x, labels=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="class ids"):
        model(x, labels=torch.tensor([0, 8]))


def _train_step(backbone: str, checkpointing: bool, chunk: int | None, **overrides):
    """Loss, gradients and buffers (BatchNorm running stats) after one training forward + backward."""
    model = tiny_model(backbone=backbone, backbone_chunk_size=chunk, num_hidden_layers=2, hidden_dropout_prob=0.1,
                       **overrides).train()
    if checkpointing:
        with pytest.warns(FutureWarning):  # transformers 5 still accepts the old name the Trainer uses
            model.gradient_checkpointing_enable()
    torch.manual_seed(3)  # same dropout draws
    x = torch.rand(2, 3, 32, 80, generator=torch.Generator().manual_seed(3))
    out = model(x, labels=torch.tensor([1, 4]))
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return model, out.loss.detach(), grads, {n: b.clone() for n, b in model.named_buffers()}


@pytest.mark.parametrize("backbone", ["patch_cnn_small", "resnet18"])
def test_checkpointing_and_chunking_keep_loss_grads_and_running_stats(backbone):
    _, loss, grads, buffers = _train_step(backbone, False, None)
    assert any(k.endswith("running_mean") for k in buffers) and len(grads) > 10
    for checkpointing, chunk in [(True, None), (False, 1), (False, 3), (True, 3), (True, 7)]:
        model, loss_x, grads_x, buffers_x = _train_step(backbone, checkpointing, chunk)
        assert torch.allclose(loss, loss_x, atol=1e-6), (checkpointing, chunk)
        assert grads.keys() == grads_x.keys()
        for name in grads:
            assert torch.allclose(grads[name], grads_x[name], atol=1e-5), (checkpointing, chunk, name)
        for name in buffers:  # running stats updated once per step, never again in the recomputation
            assert torch.allclose(buffers[name].float(), buffers_x[name].float(), atol=1e-6), (checkpointing, chunk, name)
        if checkpointing:  # the encoder layers are transformers checkpointing layers, and they are switched on
            layers = model.housex.encoder.layers
            assert all(isinstance(l, GradientCheckpointingLayer) and l.gradient_checkpointing for l in layers)
            assert sum(getattr(m, "gradient_checkpointing", False) for m in model.housex.embeddings.backbone.modules()) >= 1
    assert int(buffers[next(k for k in buffers if k.endswith("num_batches_tracked"))]) == 1


def test_checkpointing_recomputes_blocks_and_encoder_layers():
    """Checkpointing really drops activations: the backbone blocks and encoder layers run twice per step."""
    model = tiny_model(backbone="patch_cnn_small", num_hidden_layers=2).train()
    with pytest.warns(FutureWarning):
        model.gradient_checkpointing_enable()
    calls = {"conv": 0, "layer": 0}
    model.housex.embeddings.backbone.features[0].register_forward_hook(lambda *a: calls.__setitem__("conv", calls["conv"] + 1))
    model.housex.encoder.layers[1].linear1.register_forward_hook(lambda *a: calls.__setitem__("layer", calls["layer"] + 1))
    model(torch.rand(2, 3, 32, 64), labels=torch.tensor([0, 1])).loss.backward()
    assert calls == {"conv": 2, "layer": 2}


def test_resnet_stem_is_a_checkpoint_unit():
    """The ResNet stem (conv1 -> bn1 -> ReLU -> max-pool, the net's largest activations) is recomputed in
    backward: with checkpointing nothing of its output size is saved during the forward, without it is."""
    def saved_shapes(checkpointing: bool):
        model = tiny_model(backbone="resnet18").train()
        if checkpointing:
            with pytest.warns(FutureWarning):
                model.gradient_checkpointing_enable()
        backbone = model.housex.embeddings.backbone
        stem_shapes, conv_calls = set(), []
        def record(module, args, out):
            stem_shapes.add(out.shape)
            if module is backbone.conv1:
                conv_calls.append(1)

        backbone.conv1.register_forward_hook(record)
        backbone.maxpool.register_forward_hook(record)
        shapes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.append(t.shape) or t, lambda t: t):
            out = model(torch.rand(2, 3, 32, 80), labels=torch.tensor([1, 4]))
        out.loss.backward()
        return stem_shapes, shapes, len(conv_calls)

    stem_shapes, shapes, calls = saved_shapes(False)
    conv_out = max(stem_shapes, key=lambda s: s.numel())
    assert calls == 1 and conv_out in shapes  # the test can fail: unchecked, bn1 saves conv1's output
    stem_shapes, shapes, calls = saved_shapes(True)
    assert calls == 2  # forward + recomputation in backward
    assert conv_out not in shapes  # conv1 / bn1 / ReLU outputs: recomputed, not saved


def test_bf16_autocast_forward_backward():
    model = tiny_model().train()
    x = torch.rand(2, 3, 32, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, labels=torch.tensor([0, 7]))
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_hidden_states_and_base_model():
    torch.manual_seed(0)
    base = HouseXModel(tiny_config(num_hidden_layers=2)).eval()
    with torch.no_grad():
        out = base(torch.rand(2, 3, 32, 64), output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 3, 32)
    assert out.pooler_output.shape == (2, 32)
    assert len(out.hidden_states) == 3


def test_wrong_input_shape_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="patch_size"):
        model(torch.rand(1, 3, 48, 64))
    with pytest.raises(ValueError, match="fewer than one patch"):
        model(torch.rand(1, 3, 32, 20))


BACKBONES = ["resnet18", "densenet121", "vgg11_bn", "vit_b_16", "efficientnet_b0", "mobilenet_v3_small"]


def test_each_backbone_family_builds_and_runs():
    x = torch.rand(1, 3, 32, 48)  # 2 patches of 32x32
    for i, name in enumerate(BACKBONES):
        for head in [("imagenet", "replace")[i % 2]] if name != "resnet18" else ["imagenet", "replace"]:
            torch.manual_seed(0)
            model = HouseXForAudioClassification(tiny_config(backbone=name, backbone_head=head)).eval()
            _, final = find_classifier_head(model.housex.embeddings.backbone)
            assert final.out_features == (1000 if head == "imagenet" else 32), name
            with torch.no_grad():
                logits = model(x).logits
            assert logits.shape == (1, 8) and torch.isfinite(logits).all(), (name, head)
    with pytest.raises(ValueError, match="not a torchvision model"):
        HouseXForAudioClassification(tiny_config(backbone="resnet7"))


def test_own_patch_backbones_build_run_and_reload(tmp_path):
    x = torch.rand(2, 3, 32, 48)  # 2 patches of 32x32
    for name, width in (("patch_cnn", 128), ("patch_cnn_small", 64)):
        for head in ("imagenet", "replace"):
            torch.manual_seed(0)
            model = HouseXForAudioClassification(tiny_config(backbone=name, backbone_head=head, pooling="mean")).eval()
            backbone = model.housex.embeddings.backbone
            assert isinstance(backbone, PatchCNN) and backbone.fc.in_features == width
            assert backbone.fc.out_features == (1000 if head == "imagenet" else 32)
            with torch.no_grad():
                logits = model(x).logits
            assert logits.shape == (2, 8) and torch.isfinite(logits).all(), (name, head)
    # widths through backbone_kwargs; weights round-trip through save/from_pretrained
    model = HouseXForAudioClassification(tiny_config(backbone="patch_cnn", backbone_kwargs={"widths": [8, 16]})).eval()
    assert model.housex.embeddings.backbone.fc.in_features == 16
    model.save_pretrained(tmp_path)
    loaded = HouseXForAudioClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, model(x).logits, atol=1e-6)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        HouseXForAudioClassification(tiny_config(backbone="patch_cnn", backbone_pretrained=True))


def test_backbone_weights_from_local_files(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(42)
    source = torchvision.models.resnet18()
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, tmp_path / "resnet18.safetensors")
    torch.save(state, tmp_path / "resnet18.pth")
    for path in (tmp_path / "resnet18.safetensors", tmp_path / "resnet18.pth"):
        model = HouseXForAudioClassification(tiny_config(backbone_pretrained=True, backbone_weights_path=str(path)))
        got = model.housex.embeddings.backbone.state_dict()
        assert all(torch.equal(got[k], state[k]) for k in state), path
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth"):
        HouseXForAudioClassification(tiny_config(backbone_weights_path=str(tmp_path / "bad.pth")))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        HouseXForAudioClassification(tiny_config(backbone_weights_path=str(tmp_path / "missing.pth")))


def test_pretrained_offline_names_weights_path(monkeypatch, tmp_path):
    # Keep torch.hub away from any cached ImageNet file so the fetch really has to go online.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(OSError, match="backbone_weights_path"):
        HouseXForAudioClassification(tiny_config(backbone_pretrained=True))


# -- feature extractor ----------------------------------------------------------------------------


def test_torch_backend_matches_librosa_mel():
    fe = tiny_extractor()
    clips = [tone(2.0, seed=0), tone(1.2, freq=330.0, seed=1)]  # the second is padded
    ref = fe(clips, sampling_rate=SR, backend="librosa", return_tensors="pt")
    out = fe(clips, sampling_rate=SR, backend="torch", return_tensors="pt")
    frames = 1 + int(2.0 * SR) // 512
    assert out["input_features"].shape == (2, 3, 32, frames) == ref["input_features"].shape
    assert fe.feature_shape == (3, 32, frames)
    a, b = out["input_features"], ref["input_features"]
    assert float((a - b).abs().max() / b.abs().max()) < 1e-4
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 0], a[:, 2])  # mel repeated without chroma
    mask = out["attention_mask"]
    assert mask.shape == (2, frames) and mask[0].all()
    assert int(mask[1].sum()) == 1 + (int(1.2 * SR) - 1) // 512
    assert torch.equal(mask, ref["attention_mask"])


def test_torch_chroma_correlates_with_librosa():
    fe = tiny_extractor(use_chroma=True, clip_seconds=2.0)
    clips = [tone(2.0, freq=440.0 * 2 ** (0.3 / 12), seed=2)]  # detuned: exercises tuning estimation
    ref = fe(clips, sampling_rate=SR, backend="librosa", return_tensors="pt")["input_features"]
    out = fe(clips, sampling_rate=SR, backend="torch", return_tensors="pt")["input_features"]
    assert out.shape == ref.shape == (1, 3, 32, 173)
    assert float((out[:, 0] - ref[:, 0]).abs().max()) < 1e-4
    for plane in (1, 2):
        corr = np.corrcoef(out[0, plane].flatten().numpy(), ref[0, plane].flatten().numpy())[0, 1]
        assert corr >= 0.99, (plane, corr)


def test_feature_extractor_inputs_rates_and_errors(caplog):
    fe = tiny_extractor()
    mono = tone(2.0)
    stereo = np.stack([mono, mono])
    one = fe(mono, sampling_rate=SR, return_tensors="pt")["input_features"]
    assert one.shape[0] == 1
    for clip in (stereo, stereo.T, torch.from_numpy(stereo)):
        got = fe([clip], sampling_rate=SR, return_tensors="pt")["input_features"]
        assert torch.allclose(got, one, atol=1e-6)
    batch3 = fe(np.stack([stereo, stereo]), sampling_rate=SR, return_tensors="np")["input_features"]
    assert isinstance(batch3, np.ndarray) and batch3.shape == (2, 3, 32, 173)
    longer = fe(np.concatenate([mono, mono]), sampling_rate=SR, return_tensors="pt")
    assert torch.allclose(longer["input_features"], one, atol=1e-6)  # cropped to clip_seconds from the start
    resampled = fe(tone(2.0, sr=22050), sampling_rate=22050, return_tensors="pt")["input_features"]
    assert resampled.shape == one.shape
    with pytest.raises(ValueError, match="sampling_rate is required"):
        fe(mono)
    with pytest.raises(ValueError, match="sampling_rate"):
        fe(mono, sampling_rate=-5)
    with pytest.raises(ValueError, match="empty"):
        fe([np.zeros(0, np.float32)], sampling_rate=SR)
    with pytest.raises(ValueError, match="NaN"):
        fe(np.full(100, np.nan, np.float32), sampling_rate=SR)
    with pytest.raises(ValueError, match="backend"):
        HouseXFeatureExtractor(backend="jax")


def test_feature_extractor_save_load_roundtrip(tmp_path):
    fe = tiny_extractor(use_chroma=True, backend="librosa")
    fe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["n_mels"] == 32 and saved["use_chroma"] is True and saved["backend"] == "librosa"
    loaded = HouseXFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == fe.to_dict()
    assert loaded.num_frames == 173


# -- Auto classes, Hub custom code, pipeline --------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """A tiny trained-shape model folder, an input and its logits."""
    folder = tmp_path_factory.mktemp("housex-model")
    model = tiny_model(seed=7, pooling="mean")
    fe = tiny_extractor()
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    inputs = fe([tone(2.0, seed=5)], sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    return folder, inputs["input_features"], logits


def test_save_pretrained_writes_auto_map_and_code(saved_model):
    folder, x, logits = saved_model
    files = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= files
    assert {"modeling_housex.py", "configuration_housex.py", "feature_extraction_housex.py", "audio_utils_housex.py"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "housex"
    assert config["auto_map"]["AutoModelForAudioClassification"] == "modeling_housex.HouseXForAudioClassification"
    assert config["auto_map"]["AutoConfig"] == "configuration_housex.HouseXConfig"
    pre = json.loads((folder / "preprocessor_config.json").read_text())
    assert pre["auto_map"]["AutoFeatureExtractor"] == "feature_extraction_housex.HouseXFeatureExtractor"

    from transformers import AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

    loaded = AutoModelForAudioClassification.from_pretrained(folder).eval()
    assert type(loaded) is HouseXForAudioClassification
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, logits, atol=1e-6)
    assert type(AutoModel.from_pretrained(folder)) is HouseXModel
    assert type(AutoFeatureExtractor.from_pretrained(folder)) is HouseXFeatureExtractor


def test_remote_code_loads_without_housex(saved_model, tmp_path):
    folder, x, logits = saved_model
    np.save(tmp_path / "x.npy", x.numpy())
    script = textwrap.dedent(
        f"""
        import importlib.abc, importlib.util, sys
        # The editable install puts a finder for `housex` on sys.meta_path: drop it, and refuse the name.
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "housex" or name.startswith("housex."):
                    raise ModuleNotFoundError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
        try:
            import housex
            raise SystemExit("housex is importable")
        except ModuleNotFoundError:
            pass
        import numpy as np, torch
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
        model = AutoModelForAudioClassification.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        fe = AutoFeatureExtractor.from_pretrained({str(folder)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert "housex" not in sys.modules and not any(m.startswith("housex.") for m in sys.modules)
        with torch.no_grad():
            logits = model(torch.from_numpy(np.load({str(tmp_path / "x.npy")!r}))).logits
        print("LOGITS", logits.tolist(), type(fe).__name__)
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("LOGITS"))
    got = torch.tensor(json.loads(line.split(" ", 1)[1].rsplit(" ", 1)[0]))
    assert torch.allclose(got, logits, atol=1e-5)
    assert line.endswith("HouseXFeatureExtractor")


def test_pipeline_on_numpy_and_file(saved_model, tmp_path):
    import soundfile as sf
    from transformers import pipeline

    folder, _, _ = saved_model
    classifier = pipeline("audio-classification", model=str(folder))
    y = tone(2.5, seed=9)
    path = tmp_path / "clip.wav"
    sf.write(path, y, SR)
    for source in (y, str(path)):
        result = classifier(source, top_k=None)
        assert sorted(r["label"] for r in result) == sorted(GENRES)
        assert abs(sum(r["score"] for r in result) - 1.0) < 1e-5
    top3 = classifier(y, top_k=3)
    assert len(top3) == 3


@pytest.mark.parametrize("sr,n_fft,n_mels", [(44100, 2048, 224), (22050, 2048, 32), (8000, 256, 96)])
def test_banded_mel_projection_equals_dense_filterbank(sr, n_fft, n_mels):
    """The torch backend's group-by-group mel product skips only exact zeros of the filterbank
    (the last case has empty filters: more bands than 256-point bins can resolve)."""
    from housex.modeling.audio_utils_housex import mel_bands, mel_filterbank, mel_project

    power = torch.rand(2, 1 + n_fft // 2, 7, generator=torch.Generator().manual_seed(0))
    dense = torch.matmul(torch.from_numpy(mel_filterbank(sr, n_fft, n_mels, 0.0, None)), power)
    banded = mel_project(power, mel_bands(sr, n_fft, n_mels, 0.0, None))
    assert banded.shape == dense.shape == (2, n_mels, 7)
    torch.testing.assert_close(banded, dense, rtol=1e-5, atol=1e-7)


# -- transformers conventions (issue 13) ------------------------------------------------------------


def _flat(values) -> list:
    out = []
    for v in values:
        out.extend(_flat(v) if isinstance(v, tuple) else [v])
    return out


@pytest.mark.parametrize("cls", [HouseXModel, HouseXForAudioClassification])
def test_tuple_output_is_to_tuple_of_model_output(cls):
    torch.manual_seed(0)
    model = cls(tiny_config(backbone="patch_cnn_small", num_hidden_layers=2)).eval()
    x = torch.rand(2, 3, 32, 64)
    mask = torch.ones(2, 64, dtype=torch.long)
    mask[1, 30:] = 0  # clip 1's last patch (frames 32..63) is padding only
    labels = {"labels": torch.tensor([1, 2])} if cls is HouseXForAudioClassification else {}
    for kwargs in ({}, {"attention_mask": mask}, {"output_hidden_states": True}, {"attention_mask": mask, **labels},
                   {"output_hidden_states": True, **labels}):
        with torch.no_grad():
            as_dict = model(x, **kwargs, return_dict=True)
            as_tuple = model(x, **kwargs, return_dict=False)
        expected = as_dict.to_tuple()
        assert isinstance(as_tuple, tuple) and len(as_tuple) == len(expected), kwargs
        for got, want in zip(_flat(as_tuple), _flat(expected), strict=True):
            assert torch.equal(got, want), kwargs
    if cls is HouseXForAudioClassification:  # the documented order
        loss, logits, hidden, pooled, patch_mask = model(x, attention_mask=mask, output_hidden_states=True,
                                                         return_dict=False, **{"labels": torch.tensor([1, 2])})
        assert loss.ndim == 0 and logits.shape == (2, 8) and len(hidden) == 3
        assert pooled.shape == (2, 32) and patch_mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_hidden_size_alias_and_unknown_forward_arguments():
    cfg = HouseXConfig(hidden_size=64, num_attention_heads=4)
    assert cfg.d_model == 64 and cfg.hidden_size == 64
    with pytest.raises(ValueError, match="not divisible"):
        HouseXConfig(hidden_size=30, num_attention_heads=4)
    model = tiny_model(backbone="patch_cnn_small")
    x = torch.rand(1, 3, 32, 48)
    with pytest.raises(TypeError, match="output_hidden_state"):
        model(x, output_hidden_state=True)  # a typo is not swallowed
    with pytest.raises(ValueError, match="output_attentions"):
        model(x, output_attentions=True)
    with torch.no_grad():
        assert torch.equal(model(x, output_attentions=False).logits, model(x).logits)


def _check_initialised(model, where: str):
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        assert tensor.device.type == "cpu" and torch.isfinite(tensor.float()).all(), (where, name)
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm2d)):
            assert torch.equal(module.weight, torch.ones_like(module.weight)), (where, name)
            assert torch.equal(module.bias, torch.zeros_like(module.bias)), (where, name)
        if isinstance(module, torch.nn.BatchNorm2d):
            assert torch.equal(module.running_mean, torch.zeros_like(module.running_mean)), (where, name)
            assert torch.equal(module.running_var, torch.ones_like(module.running_var)), (where, name)
            assert int(module.num_batches_tracked) == 0, (where, name)
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            assert float(module.weight.std()) > 0, (where, name)


@pytest.mark.parametrize("backbone", ["patch_cnn_small", "resnet18", "vit_b_16"])
def test_from_pretrained_without_weights_initialises_everything(backbone):
    cfg = tiny_config(backbone=backbone, pooling="cls", position_embedding="learned", max_position_embeddings=16)
    states = []
    for _ in range(2):
        torch.manual_seed(5)
        model = HouseXForAudioClassification.from_pretrained(None, config=cfg, state_dict={})
        _check_initialised(model, backbone)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])  # deterministic under a seed


def test_checkpoint_missing_keys_are_initialised(tmp_path):
    from safetensors.torch import load_file, save_file

    model = tiny_model(seed=2, backbone="resnet18")
    with torch.no_grad():  # make loaded values recognisable: no init rule gives these
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.fill_(0.5)
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(3.0)
    model.save_pretrained(tmp_path)
    full = load_file(tmp_path / "model.safetensors")
    rng = np.random.default_rng(0)
    for dropped_prefix in ("housex.encoder.", "housex.embeddings.backbone.layer2.", "classifier.", None):
        keys = [k for k in full if dropped_prefix and k.startswith(dropped_prefix)]
        if dropped_prefix is None:  # a random subset of all keys
            keys = [k for k in full if rng.random() < 0.3]
        save_file({k: v for k, v in full.items() if k not in keys}, tmp_path / "model.safetensors")
        loaded = HouseXForAudioClassification.from_pretrained(tmp_path)
        state = loaded.state_dict()
        for k in full:
            assert torch.isfinite(state[k].float()).all(), k
            if k not in keys:
                assert torch.equal(state[k], full[k]), k
            elif k.endswith("running_mean"):
                assert torch.equal(state[k], torch.zeros_like(state[k])), k
            elif k.endswith("running_var") or ("norm" in k and k.endswith(".weight") and "encoder" in k):
                assert torch.equal(state[k], torch.ones_like(state[k])), k
        assert not torch.equal(state[keys[0]], full[keys[0]]) or full[keys[0]].abs().sum() == 0


TINY_EXPORT = dict(backbone="patch_cnn_small", patch_size=16, patch_hop=8, d_model=16, num_attention_heads=2,
                   intermediate_size=32)


def _export_inputs(batch: int, frames: int):
    x = torch.rand(batch, 3, 16, frames, generator=torch.Generator().manual_seed(batch * frames))
    mask = torch.ones(batch, frames, dtype=torch.long)
    mask[-1, frames // 2 :] = 0
    return x, mask


def test_torch_export_static_and_dynamic_with_and_without_mask():
    from torch.export import Dim

    model = tiny_model(pooling="mean", **TINY_EXPORT)
    x, mask = _export_inputs(2, 48)
    # torch's nn.MultiheadAttention guards batch != 1 when batch is symbolic: dynamic batch from 2 on,
    # batch 1 through a static export (checked below)
    batch, frames = Dim("batch", min=2, max=64), Dim("frames", min=24, max=4096)
    for with_mask in (False, True):
        kwargs = {"attention_mask": mask} if with_mask else {}
        dynamic = {"input_features": {0: batch, 3: frames}} | ({"attention_mask": {0: batch, 1: frames}} if with_mask else {})
        for shapes in (None, dynamic):
            program = torch.export.export(model, (x,), kwargs, dynamic_shapes=shapes)
            for b, t in [(2, 48)] + ([(3, 70), (2, 24)] if shapes else []):
                x2, m2 = _export_inputs(b, t)
                k2 = {"attention_mask": m2} if with_mask else {}
                with torch.no_grad():
                    want = model(x2, **k2).logits
                torch.testing.assert_close(program.module()(x2, **k2).logits, want, atol=1e-5, rtol=1e-5)
    x1, m1 = _export_inputs(1, 40)
    program = torch.export.export(model, (x1,), {"attention_mask": m1})
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x1, attention_mask=m1).logits, model(x1, attention_mask=m1).logits)


def test_torch_compile_fullgraph_with_and_without_mask():
    """fullgraph=True fails on any graph break, whatever the backend: the "eager" backend checks the whole
    capture without Inductor's C++ build (minutes on a small CPU; `make bench` compiles with Inductor)."""
    torch._dynamo.reset()
    model = tiny_model(pooling="cls", **TINY_EXPORT)
    for dynamic in (False, True):
        compiled = torch.compile(model, fullgraph=True, backend="eager", dynamic=dynamic)
        for b, t in [(2, 48), (3, 64)] if dynamic else [(2, 48)]:
            x, mask = _export_inputs(b, t)
            for kwargs in ({}, {"attention_mask": mask}):
                with torch.no_grad():
                    torch.testing.assert_close(compiled(x, **kwargs).logits, model(x, **kwargs).logits, atol=1e-5, rtol=1e-5)
    torch._dynamo.reset()


# -- the authors' exact model (issue 13, point 6) ----------------------------------------------------


def test_position_embedding_field_and_authors_preset():
    authors = HouseXConfig.from_preset("authors")
    assert authors.position_embedding == "none" and authors.pooling == "first" and authors.backbone_head == "imagenet"
    assert (authors.backbone, authors.d_model, authors.num_hidden_layers, authors.patch_size) == ("resnet152", 768, 1, 224)
    torch_defaults = torch.nn.TransformerEncoderLayer(d_model=8, nhead=2)
    assert authors.intermediate_size == torch_defaults.linear1.out_features == 2048
    assert authors.hidden_dropout_prob == torch_defaults.dropout.p and authors.classifier_dropout == 0.0
    assert HouseXConfig().position_embedding == HouseXConfig.from_preset("paper").position_embedding == "sinusoidal"
    with pytest.raises(ValueError, match="position_embedding"):
        HouseXConfig(position_embedding="rotary")
    learned = tiny_model(position_embedding="learned", max_position_embeddings=8)
    assert learned.housex.position_embeddings.weight.shape == (8, 32)
    with pytest.raises(RuntimeError, match="max_position_embeddings"):
        learned(torch.rand(1, 3, 32, 32 + 16 * 8))  # 9 patches


def test_authors_preset_equals_authors_forward():
    from bench.reference_authors import AuthorsModel

    overrides = dict(backbone="resnet18", patch_size=32, patch_hop=16, d_model=32, num_attention_heads=2)
    torch.manual_seed(0)
    model = HouseXForAudioClassification(HouseXConfig.from_preset("authors", **overrides)).eval()
    reference = AuthorsModel.from_housex(model).eval()
    x = torch.rand(3, 3, 32, 32 + 16 * 4 + 5)  # 5 windows in both loops
    with torch.no_grad():
        ours, theirs = model(x).logits, reference(x)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="authors"):
        AuthorsModel.from_housex(tiny_model())  # sinusoidal positions: not their model


@pytest.mark.parametrize("position_embedding", ["none", "sinusoidal"])
def test_unordered_patches_without_positions(position_embedding):
    """With no positions and first-token output, permuting the patches after the first changes nothing."""
    model = tiny_model(position_embedding=position_embedding, patch_hop=32, backbone="patch_cnn_small")
    x = torch.rand(2, 3, 32, 32 * 5)  # 5 disjoint patches
    blocks = list(x.split(32, dim=-1))
    permuted = torch.cat([blocks[0], blocks[3], blocks[1], blocks[4], blocks[2]], dim=-1)
    with torch.no_grad():
        a, b = model(x).logits, model(permuted).logits
    assert torch.allclose(a, b, atol=1e-5) == (position_embedding == "none")
