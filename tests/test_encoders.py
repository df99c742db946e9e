"""Pretrained audio encoders: ``housex embed`` (every layer, cached), MERT under transformers 5, probes,
the encoder classifier (saves, reloads, pipeline, remote code) and fine-tuning through trainer/run.py.

Every encoder is a tiny random one built here from its transformers config class (hidden 16, 2 layers;
nothing is downloaded); the dataset is the trainer tests' tiny release (24 sine tracks, 2 s clips at
16 kHz).  MERT's reference states were computed by MERT's own published code under transformers 4.47
(``tests/fixtures/mert/make_reference.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_baselines import SR, clips_dir, tiny_clap, tiny_qwen2_audio  # noqa: F401  (session fixtures)
from test_trainer import SEED, tiny  # noqa: F401

from housex.cli import main as housex
from housex.trainer.baselines.common import load_clips

MERT = Path(__file__).parent / "fixtures" / "mert"
TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
WAVEFORM = dict(conv_dim=(8, 8, 8), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 4), num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=2)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# tiny encoders of every family, saved as a user's folder would be
# --------------------------------------------------------------------------------------------
def _save(folder: Path, model, extractor) -> Path:
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def _waveform_encoder(folder: Path, kind: str, *, sampling_rate: int = SR, **extra) -> Path:
    import transformers as T

    config_class, model_class = {
        "wav2vec2": (T.Wav2Vec2Config, T.Wav2Vec2Model), "hubert": (T.HubertConfig, T.HubertModel),
        "wavlm": (T.WavLMConfig, T.WavLMModel), "data2vec-audio": (T.Data2VecAudioConfig, T.Data2VecAudioModel),
    }[kind]
    kwargs = {**TINY, **WAVEFORM, **extra}
    if kind == "data2vec-audio":
        kwargs.update(num_conv_pos_embeddings=2, conv_pos_kernel_size=4)
    if kind == "wavlm":
        kwargs.update(num_buckets=8, max_bucket_distance=16)
    torch.manual_seed(SEED)
    return _save(folder, model_class(config_class(**kwargs)),
                 T.Wav2Vec2FeatureExtractor(sampling_rate=sampling_rate, return_attention_mask=True))


def _ast(folder: Path) -> Path:
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    torch.manual_seed(SEED)
    # max_length 256 frames = 2.56 s: a 2 s clip is padded (masked patches)
    return _save(folder, ASTModel(ASTConfig(**TINY, num_mel_bins=16, max_length=256)),
                 ASTFeatureExtractor(num_mel_bins=16, max_length=256, sampling_rate=SR))


def _whisper(folder: Path) -> Path:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(SEED)
    config = WhisperConfig(num_mel_bins=16, encoder_layers=2, decoder_layers=1, d_model=16, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_source_positions=200,
                           vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=3)
    # chunk_length 4 s: a 2 s clip is half padding, as 7.5 s clips are in Whisper's 30 s window
    return _save(folder, WhisperModel(config),
                 WhisperFeatureExtractor(feature_size=16, sampling_rate=SR, hop_length=160, chunk_length=4, n_fft=400))


def _housex(folder: Path) -> Path:
    from housex.modeling import HouseXConfig, HouseXFeatureExtractor, HouseXModel

    torch.manual_seed(SEED)
    config = HouseXConfig(backbone="patch_cnn", backbone_kwargs={"widths": [8, 16]}, patch_size=16, patch_hop=16,
                          d_model=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    return _save(folder, HouseXModel(config), HouseXFeatureExtractor(n_mels=16, clip_seconds=2.0, sampling_rate=SR,
                                                                     n_fft=512, hop_length=256))


@pytest.fixture(scope="session")
def encoders(tmp_path_factory, tiny_clap, tiny_qwen2_audio) -> dict[str, Path]:  # noqa: F811
    """Folder of a tiny random encoder of every family named in the issue, by family."""
    root = tmp_path_factory.mktemp("encoders")
    out = {kind: _waveform_encoder(root / kind, kind) for kind in ("wav2vec2", "hubert", "wavlm", "data2vec-audio")}
    out["ast"] = _ast(root / "ast")
    out["whisper"] = _whisper(root / "whisper")
    out["clap"] = tiny_clap
    out["qwen2-audio"] = tiny_qwen2_audio
    out["housex"] = _housex(root / "housex")
    out["mert"] = MERT / "base"
    return out


# --------------------------------------------------------------------------------------------
# MERT under transformers 5 == MERT's own code under transformers 4.47
# --------------------------------------------------------------------------------------------
def _mert_states(folder: Path) -> tuple[list[torch.Tensor], dict]:
    from housex.modeling.modeling_encoder_classifier import layer_states
    from housex.trainer.encoders import load_encoder

    encoder, extractor = load_encoder(str(folder))
    assert type(encoder).__name__ == "HubertModel" and extractor.sampling_rate == 24000
    ref = load_file(folder / "reference.safetensors")
    with torch.no_grad():
        states, masks = layer_states(encoder, {"input_values": ref["input_values"], "attention_mask": ref["attention_mask"]})
    return states, ref


@pytest.mark.parametrize("variant", ["base", "large"])
def test_mert_checkpoint_gives_mert_codes_per_layer_states(variant, tmp_path):
    """Post-LN (MERT-v1-95M-like) and pre-LN with attention_relax (MERT-v1-330M-like), padded batch."""
    states, ref = _mert_states(MERT / variant)
    assert len(states) == 3
    for i, state in enumerate(states):
        torch.testing.assert_close(state, ref[f"hidden_states.{i}"], rtol=0, atol=1e-5)
    torch.testing.assert_close(states[-1], ref["last_hidden_state"], rtol=0, atol=1e-5)

    # Hub MERT checkpoints were saved before weight-norm parametrizations: weight_g / weight_v keys
    old = tmp_path / "old-keys"
    shutil.copytree(MERT / variant, old)
    weights = load_file(old / "model.safetensors")
    prefix = "encoder.pos_conv_embed.conv."
    weights[prefix + "weight_g"] = weights.pop(prefix + "parametrizations.weight.original0")
    weights[prefix + "weight_v"] = weights.pop(prefix + "parametrizations.weight.original1")
    save_file(weights, old / "model.safetensors", metadata={"format": "pt"})
    again, _ = _mert_states(old)
    for a, b in zip(again, states):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_mert_variants_hubert_cannot_express_are_refused(tmp_path):
    from housex.trainer.encoders import load_encoder

    for key in ("feature_extractor_cqt", "deepnorm"):
        folder = tmp_path / key
        shutil.copytree(MERT / "base", folder)
        config = json.loads((folder / "config.json").read_text())
        config[key] = True
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match=f"MERT with {key}=true"):
            load_encoder(str(folder))


def test_missing_or_miscounted_hidden_states_fail_naming_the_encoder(encoders):
    """MERT's own forward override on transformers 5 returns no hidden_states: never a one-layer probe."""
    from transformers import HubertModel
    from transformers.modeling_outputs import BaseModelOutput

    from housex.modeling.modeling_encoder_classifier import layer_states

    class DropsStates(HubertModel):  # what a forward override without the collecting decorator returns
        def forward(self, input_values, attention_mask=None, **kwargs):
            return BaseModelOutput(last_hidden_state=super().forward(input_values).last_hidden_state)

    class OneShort(HubertModel):
        def forward(self, input_values, attention_mask=None, **kwargs):
            out = super().forward(input_values, output_hidden_states=True)
            return BaseModelOutput(last_hidden_state=out.last_hidden_state, hidden_states=out.hidden_states[1:])

    x = {"input_values": torch.zeros(1, 4000)}
    for cls, message in ((DropsStates, "returned no hidden_states"), (OneShort, "returned 2 hidden states, expected 3")):
        model = cls.from_pretrained(encoders["hubert"]).eval()
        with pytest.raises(ValueError, match=f"encoder {encoders['hubert']} .*{message}"):
            layer_states(model, x)


# --------------------------------------------------------------------------------------------
# housex embed
# --------------------------------------------------------------------------------------------
FAMILIES = ["wav2vec2", "hubert", "wavlm", "data2vec-audio", "ast", "whisper", "clap", "qwen2-audio", "housex", "mert"]


@pytest.fixture(scope="session")
def embedded(encoders, clips_dir, tmp_path_factory) -> dict[str, Path]:  # noqa: F811
    root = tmp_path_factory.mktemp("embeddings")
    out = {}
    for family in FAMILIES:
        out[family] = root / family
        assert housex(["embed", "--encoder", str(encoders[family]), "--dataset", str(clips_dir), "--out", str(out[family]),
                       "--batch-size", "8", "--device", "cpu", "--shard-size", "16"]) == 0, family
    return out


def _independent_means(encoder, extractor, clip: np.ndarray, real_frames) -> list[np.ndarray]:
    """Per layer: the mean over the first ``real_frames(state_length)`` frames of ONE clip's states."""
    from housex.trainer.embeddings import extractor_call

    inputs = extractor_call(extractor, [clip], extractor.sampling_rate)
    name = encoder.main_input_name
    kwargs = {name: inputs[name]}
    if "is_longer" in inputs:
        kwargs["is_longer"] = inputs["is_longer"]
    with torch.no_grad():
        out = encoder(**kwargs, output_hidden_states=True)
    means = []
    for h in out.hidden_states:
        h = h.flatten(2).transpose(1, 2)[0] if h.ndim == 4 else h[0]
        keep = real_frames(h.shape[0])
        means.append(h[keep].mean(0).numpy())
    return means


def test_embed_every_family_stores_every_layers_masked_mean(encoders, embedded, clips_dir):  # noqa: F811
    from housex.trainer.embeddings import load_embeddings
    from housex.trainer.encoders import load_encoder

    layers = {"qwen2-audio": 2}
    for family in FAMILIES:
        emb = load_embeddings(embedded[family])
        train, val = emb.splits["train"], emb.splits["validation"]
        n_states = layers.get(family, 3)
        assert train.features.shape[1] == n_states, family
        encoder, extractor = load_encoder(str(encoders[family]))
        clips = load_clips(clips_dir, "validation", sampling_rate=extractor.sampling_rate)
        assert val.clip_ids == clips.ids and np.allclose(val.soft_labels, clips.soft_labels)
        clip = clips.audio(0)
        seconds = len(clip) / extractor.sampling_rate

        def real_frames(length, family=family):
            if family == "whisper" or family == "qwen2-audio":
                # 2 s of a 4 s (Whisper) or 2 s (Qwen2-Audio) window at 100 frames/s, strided to the state
                window = extractor.nb_max_frames
                return slice(0, int(np.ceil(seconds * 100 * length / window)))
            if family == "ast":  # cls + distillation, then the patch grid: time patches starting in real frames
                f_dim, t_dim = encoder.embeddings.get_shape(encoder.config)
                real = 1 + (len(clip) - 400) // 160
                ok = (np.arange(t_dim) * encoder.config.time_stride) < real
                return np.concatenate([[True, True], np.tile(ok, f_dim)])
            return slice(None)

        want = _independent_means(encoder, extractor, clip, real_frames)
        if encoder.config.model_type == "hubert" and encoder.config.do_stable_layer_norm:
            pytest.fail("the tiny encoders are post-LN")
        got = val.features[0]
        for layer, w in enumerate(want):
            np.testing.assert_allclose(got[layer, : w.shape[0]], w, rtol=2e-3, atol=2e-3, err_msg=f"{family} layer {layer}")
            assert not np.any(got[layer, w.shape[0]:]), family  # narrower states zero-padded
        assert emb.encoder == str(encoders[family])


# --------------------------------------------------------------------------------------------
# probes chosen without the validation split
# --------------------------------------------------------------------------------------------
def test_probe_every_family_writes_a_row_chosen_on_training_tracks_only(encoders, embedded, tmp_path):
    from housex.trainer.embeddings import load_embeddings
    from housex.trainer.predictions import read_predictions

    for family in FAMILIES:
        out = tmp_path / family
        assert housex(["baseline", "probe", "--embeddings", str(embedded[family]), "--out", str(out)]) == 0, family
        metrics = json.loads((out / "metrics.json").read_text())
        choice = json.loads((out / "choice.json").read_text())
        curve = json.loads((out / "layer_curve.json").read_text())
        assert (out / "layer_curve.png").stat().st_size > 1000
        p = read_predictions(out)
        assert p.row_info["kind"] == "encoder probe" and p.row_info["probe"] in ("linear", "mlp")
        assert metrics["num_clips"] == len(p.clip_ids) == 10 and 0 <= metrics["f1_weighted"] <= 1
        n_states = metrics["num_layers"]
        assert len(curve["candidates"]) == 2 * 2 * (n_states + 1) and set(curve["layers"]) == {"linear", "mlp"}
        assert choice["inner_validation_clips"] + choice["inner_train_clips"] == metrics["num_train_clips"]
        assert p.clip_ids.tolist() == load_embeddings(embedded[family]).splits["validation"].clip_ids

    assert housex(["table", *(str(tmp_path / f) for f in FAMILIES), "--out", str(tmp_path / "table"),
                   "--resamples", "200"]) == 0
    table = json.loads((tmp_path / "table" / "table.json").read_text())
    rows = [r for g in table["groups"] for r in g["rows"]]
    assert [r["kind"] for r in rows] == ["encoder probe"] * len(FAMILIES)
    assert [r["model"] for r in rows] == [Path(str(encoders[f])).name for f in FAMILIES]
    assert all(r["features"].endswith(("linear probe)", "mlp probe)")) and r["labels"] == "soft" for r in rows)


def test_log_mel_probe_runs_through_the_same_command_with_its_figures_unchanged(clips_dir, tmp_path):  # noqa: F811
    """``housex baseline probe --features log-mel`` and ``housex probe`` are the layer-probe path on the built-in
    log-mel set, and give what the probe always computed: StandardScaler -> LogisticRegression(C=1) on the
    sharpened labels of the clip-mean log-mel features, fitted on train, scored on validation."""
    import datasets
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from housex.trainer.baselines.probe import dataset_features

    outs = [tmp_path / "baseline-probe", tmp_path / "probe"]
    assert housex(["baseline", "probe", "--features", "log-mel", "--dataset", str(clips_dir), "--out", str(outs[0]),
                   "--n-mels", "16"]) == 0
    assert housex(["probe", "--dataset", str(clips_dir), "--out", str(outs[1]), "--n-mels", "16"]) == 0
    ds = datasets.load_dataset(str(clips_dir), "clips")
    X_tr, y_tr = dataset_features(ds["train"], n_mels=16)
    X_va, y_va = dataset_features(ds["validation"], n_mels=16)
    pred = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=0)).fit(X_tr, y_tr).predict(X_va)
    p, r, f, _ = precision_recall_fscore_support(y_va, pred, average="weighted", zero_division=0)
    for out in outs:
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["choice"]["how"].startswith("a grid of one") and not (out / "layer_curve.json").exists()
        assert metrics["baseline"] == "linear-probe" and metrics["model"] == "logistic regression, clip-mean 16-band log-mel"
        got = (metrics["accuracy"], metrics["precision_weighted"], metrics["recall_weighted"], metrics["f1_weighted"])
        assert got == pytest.approx((accuracy_score(y_va, pred), p, r, f), abs=1e-12)
    assert (outs[0] / "predictions.parquet").read_bytes() == (outs[1] / "predictions.parquet").read_bytes()


# --------------------------------------------------------------------------------------------
# the encoder classifier: a real PreTrainedModel
# --------------------------------------------------------------------------------------------
def _classifier(encoder_folder: Path, **config):
    from housex.modeling import HouseXEncoderClassifierConfig, HouseXEncoderClassifierForAudioClassification
    from housex.trainer.encoders import load_encoder

    encoder, extractor = load_encoder(str(encoder_folder))
    torch.manual_seed(SEED)
    model = HouseXEncoderClassifierForAudioClassification(
        HouseXEncoderClassifierConfig(encoder_config=encoder.config, **config), encoder=encoder).eval()
    return model, extractor


@pytest.mark.parametrize("family, config", [("qwen2-audio", {"time_pooling": "attention"}), ("mert", {"layer": 1}),
                                            ("clap", {}), ("whisper", {"layer": "last"})])
def test_encoder_classifier_saves_reloads_and_runs_in_the_pipeline(encoders, family, config, tmp_path):
    from transformers import AutoModelForAudioClassification, pipeline

    from housex.modeling.modeling_encoder_classifier import layer_states

    model, extractor = _classifier(encoders[family], **config)
    folder = tmp_path / family
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    files = {p.name for p in folder.iterdir()}
    assert {"modeling_encoder_classifier.py", "configuration_encoder_classifier.py", "model.safetensors"} <= files
    saved = json.loads((folder / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForAudioClassification"] == (
        "modeling_encoder_classifier.HouseXEncoderClassifierForAudioClassification")

    clip = np.sin(np.linspace(0, 900, int(2 * extractor.sampling_rate))).astype(np.float32)
    from housex.trainer.embeddings import extractor_call

    inputs = dict(extractor_call(extractor, [clip], extractor.sampling_rate))
    with torch.no_grad():
        logits = model(**inputs).logits
        # the head reads the same per-layer states housex embed caches
        states, masks = layer_states(model.encoder, inputs)
    loaded = AutoModelForAudioClassification.from_pretrained(folder).eval()
    assert type(loaded) is type(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, logits, rtol=0, atol=1e-6)
    clf = pipeline("audio-classification", model=str(folder), device="cpu")
    result = clf({"raw": clip, "sampling_rate": extractor.sampling_rate}, top_k=None)
    assert sorted(r["label"] for r in result) == sorted(json.loads((folder / "config.json").read_text())["id2label"].values())
    assert abs(sum(r["score"] for r in result) - 1) < 1e-5


def test_encoder_classifier_loads_as_remote_code_where_housex_is_not_installed(encoders, tmp_path):
    """A HuBERT-encoder (MERT) and a HouseX-encoder classifier, loaded with trust_remote_code in a process
    that cannot import housex (as test_modeling's remote-code test does for the HouseX model)."""
    import os
    import subprocess
    import sys
    import textwrap

    folders, want = [], []
    for family in ("mert", "housex"):
        model, extractor = _classifier(encoders[family])
        folder = tmp_path / family
        model.save_pretrained(folder)
        extractor.save_pretrained(folder)
        clip = np.sin(np.linspace(0, 500, int(2 * extractor.sampling_rate))).astype(np.float32)
        np.save(folder / "clip.npy", clip)
        from housex.trainer.embeddings import extractor_call

        with torch.no_grad():
            want.append(model(**extractor_call(extractor, [clip], extractor.sampling_rate)).logits[0].tolist())
        folders.append(str(folder))
    script = textwrap.dedent(f"""
        import importlib.abc, json, sys
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "housex" or name.startswith("housex."):
                    raise ModuleNotFoundError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
        import numpy as np
        from transformers import pipeline
        out = []
        for folder in {folders!r}:
            clf = pipeline("audio-classification", model=folder, trust_remote_code=True, device="cpu")
            assert type(clf.model).__module__.startswith("transformers_modules"), type(clf.model).__module__
            clip = np.load(folder + "/clip.npy")
            inputs = clf.feature_extractor([clip], sampling_rate=clf.feature_extractor.sampling_rate, return_tensors="pt")
            import torch
            with torch.no_grad():
                out.append(clf.model(**inputs).logits[0].tolist())
            assert len(clf(clip, top_k=None)) == 8
        assert not any(m == "housex" or m.startswith("housex.") for m in sys.modules)
        print("LOGITS", json.dumps(out))
        """)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("LOGITS")).split(" ", 1)[1])
    np.testing.assert_allclose(got, want, atol=1e-5)


# --------------------------------------------------------------------------------------------
# fine-tuning through trainer/run.py
# --------------------------------------------------------------------------------------------
FINE_TUNE = {
    "optim": "adamw_torch", "learning_rate": 1e-3, "weight_decay": 0.01, "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8, "report_to": "none", "use_cpu": True, "dataloader_num_workers": 0, "seed": SEED,
    "do_train": True, "do_eval": True, "logging_steps": 1, "bootstrap_resamples": 100,
}


def _fine_tune(clips_dir, out: Path, **args) -> dict:  # noqa: F811
    from housex.trainer.arguments import parse_args
    from housex.trainer.train import main

    model_args, data_args, training_args = parse_args([], **FINE_TUNE, dataset_name=str(clips_dir), output_dir=str(out),
                                                      **args)
    return main(model_args, data_args, training_args)


def test_fine_tune_an_encoder_without_a_classification_class_keeps_the_best_holdout_checkpoint(encoders, clips_dir,
                                                                                              tmp_path):  # noqa: F811
    """Qwen2-Audio's encoder (no classification class: the encoder classifier, its tower read from the full
    checkpoint), evaluated and saved every step; the folder holds the checkpoint with the lowest loss on the
    held-out training tracks (load_best_model_at_end's default --checkpoint_selection holdout), and
    metrics.json scores it on validation."""
    from transformers import pipeline

    out = tmp_path / "qwen2-audio"
    metrics = _fine_tune(clips_dir, out, model_name_or_path=str(encoders["qwen2-audio"]), max_steps=3, eval_strategy="steps",
                         eval_steps=1, save_strategy="steps", save_steps=1, load_best_model_at_end=True,
                         metric_for_best_model="loss", greater_is_better=False, encoder_learning_rate=1e-4,
                         time_pooling="attention")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "housex_encoder_classifier"
    assert config["encoder_config"]["model_type"] == "qwen2_audio_encoder"
    state = json.loads((out / "trainer_state.json").read_text())
    losses = {e["step"]: e["eval_loss"] for e in state["log_history"] if "eval_loss" in e}
    best_step = min(losses, key=losses.get)
    assert len(losses) >= 3 and state["best_model_checkpoint"].endswith(f"checkpoint-{best_step}")
    selection = metrics["checkpoint_selection"]
    assert selection["rule"] == "holdout" and selection["step"] == best_step and selection["holdout_tracks"] >= 1
    from housex.trainer.data import load_clips_dataset

    assert metrics["num_eval_clips"] == len(load_clips_dataset(clips_dir)["validation"])  # scored: validation
    best = load_file(Path(state["best_model_checkpoint"]) / "model.safetensors")
    saved = load_file(out / "model.safetensors")
    assert best.keys() == saved.keys() and all(torch.equal(best[k], saved[k]) for k in best)
    assert json.loads((out / "preprocessor_config.json").read_text())["return_attention_mask"] is True
    clf = pipeline("audio-classification", model=str(out), device="cpu")
    clip = load_clips(clips_dir, "validation", sampling_rate=SR).audio(0)
    assert len(clf({"raw": clip, "sampling_rate": SR}, top_k=None)) == 8


def test_fine_tune_a_native_classifier_with_weighted_layers_encoder_rate_and_checkpointing(encoders, clips_dir, tmp_path):  # noqa: F811
    """HuBERT through its own HubertForSequenceClassification with use_weighted_layer_sum; the encoder's
    learning rate is its own (0 freezes it in effect); gradient checkpointing gives the same weights."""
    base = dict(model_name_or_path=str(encoders["hubert"]), max_steps=2, eval_strategy="no", save_strategy="no",
                use_weighted_layer_sum=True, freeze_feature_encoder=True, encoder_learning_rate=1e-9)
    plain = _fine_tune(clips_dir, tmp_path / "plain", **base)
    checkpointed = _fine_tune(clips_dir, tmp_path / "checkpointed", gradient_checkpointing=True, **base)
    config = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert config["model_type"] == "hubert" and config["use_weighted_layer_sum"] is True
    a, b = load_file(tmp_path / "plain" / "model.safetensors"), load_file(tmp_path / "checkpointed" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    assert plain["f1_weighted"] == checkpointed["f1_weighted"]
    before = load_file(encoders["hubert"] / "model.safetensors")
    moved = lambda k: float((a[k] - before[k.removeprefix("hubert.")]).abs().max())  # noqa: E731
    assert moved("hubert.encoder.layers.0.attention.q_proj.weight") < 1e-6  # encoder at 1e-9
    assert moved("hubert.feature_extractor.conv_layers.0.conv.weight") == 0  # frozen
    assert not torch.equal(a["layer_weights"], torch.ones_like(a["layer_weights"]) / len(a["layer_weights"]))  # trained at 1e-3


def test_fine_tune_options_that_cannot_apply_are_one_line_errors(encoders, clips_dir, tmp_path):  # noqa: F811
    cases = [
        ({"model_name_or_path": str(encoders["ast"]), "use_weighted_layer_sum": True}, "has no such option"),
        ({"model_name_or_path": str(encoders["clap"]), "use_weighted_layer_sum": True}, "the encoder classifier has its own"),
        ({"model_name_or_path": str(encoders["clap"]), "freeze_feature_encoder": True}, "has no feature encoder to freeze"),
        ({"model_name_or_path": str(encoders["housex"]) + "-missing"}, "no config.json"),
    ]
    for args, message in cases:
        with pytest.raises((ValueError, OSError)) as err:
            _fine_tune(clips_dir, tmp_path / "bad", max_steps=1, eval_strategy="no", save_strategy="no", **args)
        assert message in str(err.value) and len(str(err.value).splitlines()) == 1, str(err.value)


def test_probe_choice_never_sees_the_validation_split():
    """Scrambling the validation split (features and labels) changes the score but not one bit of the choice
    (inner figures, epochs and all: the runs are also deterministic)."""
    from dataclasses import replace

    from housex.trainer.baselines.layer_probe import FeatureSet, Split, run_probe
    from housex.trainer.statistics import Bootstrap

    rng = np.random.default_rng(0)
    tracks = np.repeat(np.arange(60), 4)
    genre = rng.integers(0, 8, 60)[tracks]
    X = rng.standard_normal((240, 3, 16)).astype(np.float32)
    X[:, 1] += 4.0 * np.eye(8, 16, dtype=np.float32)[genre]  # layer 1 carries the genre
    soft = np.eye(8)[genre]
    split = lambda rows: Split(X[rows], [f"c{i}" for i in rows], [f"t{tracks[i]}" for i in rows], soft[rows])  # noqa: E731
    train, val = split(np.arange(0, 180)), split(np.arange(180, 240))
    features = FeatureSet("synthetic", "3 layers", train, val)
    first = run_probe(features, None, seed=3, bootstrap=Bootstrap(resamples=100))
    scrambled = replace(val, features=rng.standard_normal(val.features.shape).astype(np.float32),
                        soft_labels=soft[rng.permutation(np.arange(180, 240))])
    second = run_probe(replace(features, validation=scrambled), None, seed=3, bootstrap=Bootstrap(resamples=100))
    assert first["choice"] == second["choice"] and first["choice"]["candidate"]["layer"] in (1, "weighted")
    assert first["f1_weighted"] > 0.9 > second["f1_weighted"]


# --------------------------------------------------------------------------------------------
# the embeddings cache: reuse, refusal, resume after SIGKILL, options that change nothing
# --------------------------------------------------------------------------------------------
def _shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "shards").iterdir())}


def test_embed_cache_reuses_refuses_overwrites_and_resumes_after_sigkill(encoders, embedded, clips_dir, tmp_path, capsys):  # noqa: F811
    import os
    import signal
    import subprocess
    import sys
    import time

    reference = embedded["ast"]
    argv = ["embed", "--encoder", str(encoders["ast"]), "--dataset", str(clips_dir), "--device", "cpu"]
    # same key: every shard reused, nothing rewritten (also with another batch size: not part of the key)
    stamps = {p.name: p.stat().st_mtime_ns for p in (reference / "shards").iterdir()}
    assert housex([*argv, "--out", str(reference), "--shard-size", "16", "--batch-size", "3"]) == 0
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (reference / "shards").iterdir()}
    # another key (dtype): refused with what changed, unless --overwrite
    capsys.readouterr()
    assert housex([*argv, "--out", str(reference), "--dtype", "bfloat16"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("housex embed: error: ")
    assert "another cache key (changed: dtype)" in errors[0] and errors[0].endswith("pass --overwrite")
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    assert housex([*argv, "--out", str(copy), "--dtype", "bfloat16", "--overwrite", "--shard-size", "16"]) == 0
    assert json.loads((copy / "provenance.json").read_text())["key"]["dtype"] == "bfloat16"
    assert _shard_bytes(copy) != _shard_bytes(reference)

    # batch size and shard size change no number
    other = tmp_path / "batch1"
    assert housex([*argv, "--out", str(other), "--batch-size", "1", "--shard-size", "5"]) == 0
    from housex.trainer.embeddings import load_embeddings

    a, b = load_embeddings(reference), load_embeddings(other)
    for split in ("train", "validation"):
        assert a.splits[split].clip_ids == b.splits[split].clip_ids
        np.testing.assert_allclose(a.splits[split].features, b.splits[split].features, rtol=2e-3, atol=2e-3)

    # SIGKILL mid-run, then rerun: only the missing shards are embedded, and the bytes are an uninterrupted run's
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "housex.cli", *argv, "--out", str(killed), "--shard-size", "2",
                             "--batch-size", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list((killed / "shards").glob("*.parquet")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = {p.name for p in (killed / "shards").glob("*.parquet")}
    assert 0 < len(written) < 24 and not (killed / "embeddings.json").exists()
    stamps = {name: (killed / "shards" / name).stat().st_mtime_ns for name in written}
    assert housex([*argv, "--out", str(killed), "--shard-size", "2", "--batch-size", "1"]) == 0
    assert all((killed / "shards" / name).stat().st_mtime_ns == t for name, t in stamps.items())  # reused
    uninterrupted = tmp_path / "uninterrupted"
    assert housex([*argv, "--out", str(uninterrupted), "--shard-size", "2", "--batch-size", "1"]) == 0
    assert _shard_bytes(killed) == _shard_bytes(uninterrupted)
    assert not list((killed / "shards").glob(".*"))


@pytest.mark.slow
def test_embed_with_two_accelerate_processes_gives_one_process_bytes(encoders, clips_dir, tmp_path):  # noqa: F811
    """``accelerate launch`` (2 CPU processes, gloo): each embeds every other shard, process 0 writes the manifest."""
    import os
    import subprocess
    import sys

    from housex.trainer.embeddings import load_embeddings

    argv = ["embed", "--encoder", str(encoders["hubert"]), "--dataset", str(clips_dir), "--device", "cpu",
            "--shard-size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    accelerate = Path(sys.executable).with_name("accelerate")
    proc = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "housex.cli", *argv,
                           "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("3 states x 16 per clip") == 1  # printed by process 0 only
    assert housex([*argv, "--out", str(tmp_path / "one")]) == 0
    assert _shard_bytes(tmp_path / "two") == _shard_bytes(tmp_path / "one")
    assert len(load_embeddings(tmp_path / "two").splits["train"]) == 38
