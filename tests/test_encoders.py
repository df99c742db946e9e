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
def test_probe_every_family_writes_a_row_chosen_on_training_tracks_only(embedded, tmp_path):
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


def test_log_mel_probe_runs_through_the_same_command_with_its_figures_unchanged(clips_dir, tmp_path):  # noqa: F811
    import datasets

    from housex.trainer.baselines.probe import linear_probe

    out = tmp_path / "log-mel"
    assert housex(["baseline", "probe", "--features", "log-mel", "--dataset", str(clips_dir), "--out", str(out),
                   "--n-mels", "16"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["choice"]["how"].startswith("a grid of one") and not (out / "layer_curve.json").exists()
    before = linear_probe(datasets.load_dataset(str(clips_dir), "clips"), n_mels=16)
    for key in ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted"):
        assert metrics[key] == pytest.approx(getattr(before, key), abs=1e-12), key
