"""Baselines under the HouseX protocol: zero-shot CLAP, the MLLM harness, the Table-3 table.

Every model here is a tiny random one built from transformers config classes with a tiny
byte-level tokenizer (nothing is downloaded); the dataset is the trainer tests' tiny release
(24 sine tracks, 2 s clips).  The answers of a random chat model are garbage, which exercises the
parser's UNPARSED path, resume and the metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from test_trainer import SEED, _run, tiny  # noqa: F401  (tiny: the trainer tests' session fixture)

from bench.bench_baselines import chat_tokenizer
from housex.cli import main as housex
from housex.dataset_script.genres import GENRES
from housex.trainer.baselines import mllm
from housex.trainer import METRIC_FILE
from housex.trainer.baselines.common import load_clips
from housex.trainer.predictions import make_predictions, metrics_from_predictions, read_predictions
from housex.trainer.baselines.zero_shot import DEFAULT_TEMPLATE, candidate_texts

SR = 16000


# --------------------------------------------------------------------------------------------
# tiny data and models
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clips_dir(tiny) -> Path:
    """The trainer tests' tiny release exported with the clips config (2 s clips), and a tracks-only
    export of it in ``<clips_dir>/../tracks``."""
    from housex.dataset_script.export import export_dataset

    release, _, _, exported = tiny
    export_dataset([release], exported.parent / "tracks", configs=("tracks",), seed=SEED, clip_seconds=2.0,
                   progress=False)
    return exported


def roberta_tokenizer():
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    return RobertaTokenizer(vocab={t: i for i, t in enumerate(specials + sorted(ByteLevel.alphabet()))}, merges=[])


@pytest.fixture(scope="session")
def tiny_clap(tmp_path_factory) -> Path:
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    folder = tmp_path_factory.mktemp("clap")
    tokenizer = roberta_tokenizer()
    torch.manual_seed(SEED)
    config = ClapConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=128, projection_dim=8),
        audio_config=dict(hidden_size=16, depths=[1, 1], num_attention_heads=[1, 2], window_size=4, spec_size=64,
                          num_mel_bins=16, patch_embeds_hidden_size=8, patch_size=4, patch_stride=[4, 4],
                          enable_fusion=False, projection_dim=8),
        projection_dim=8,
    )
    ClapModel(config).save_pretrained(folder)
    extractor = ClapFeatureExtractor(feature_size=16, sampling_rate=SR, hop_length=160, max_length_s=2,
                                     fft_window_size=400, frequency_max=8000, truncation="rand_trunc")
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def qwen2_audio_processor():
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    # 2 s windows: the encoder then needs 2 * max_source_positions = 200 mel frames.
    extractor = WhisperFeatureExtractor(feature_size=16, sampling_rate=SR, hop_length=160, chunk_length=2, n_fft=400)
    return Qwen2AudioProcessor(feature_extractor=extractor, tokenizer=chat_tokenizer())


def text_config(vocab_size: int) -> dict:
    return dict(model_type="qwen2", vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)


@pytest.fixture(scope="session")
def tiny_qwen2_audio(tmp_path_factory) -> Path:
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    folder = tmp_path_factory.mktemp("qwen2-audio")
    processor = qwen2_audio_processor()
    tok = processor.tokenizer
    config = Qwen2AudioConfig(
        audio_config=dict(num_mel_bins=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, d_model=16,
                          max_source_positions=processor.feature_extractor.nb_max_frames // 2),
        text_config=text_config(len(tok)),
        audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(SEED)
    model = Qwen2AudioForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


OMNI_TOKENS = {"image_token": "<|IMAGE|>", "audio_token": "<|AUDIO|>", "video_token": "<|VIDEO|>",
               "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
               "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"}


@pytest.fixture(scope="session")
def tiny_qwen2_5_omni(tmp_path_factory) -> Path:
    """A text-only Qwen2.5-Omni (no talker): tiny thinker with audio, vision and text towers."""
    from transformers import (Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration, Qwen2_5OmniProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    folder = tmp_path_factory.mktemp("qwen2.5-omni")
    tok = chat_tokenizer(OMNI_TOKENS)
    audio_only = qwen2_audio_processor()
    processor = Qwen2_5OmniProcessor(image_processor=Qwen2VLImageProcessor(), video_processor=Qwen2VLVideoProcessor(),
                                     feature_extractor=audio_only.feature_extractor, tokenizer=tok,
                                     chat_template=audio_only.chat_template)
    ids = {f"{k.removesuffix('_token')}_token_index": tok.convert_tokens_to_ids(v)
           for k, v in OMNI_TOKENS.items() if k in ("image_token", "audio_token", "video_token")}
    ids.update({f"{name}_token_id": tok.convert_tokens_to_ids(OMNI_TOKENS[f"{bos}_token"])
                for name, bos in (("audio_start", "audio_bos"), ("audio_end", "audio_eos"),
                                  ("vision_start", "vision_bos"), ("vision_end", "vision_eos"))})
    text = text_config(len(tok))
    text.pop("model_type")
    text["rope_parameters"] = {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0}
    thinker = dict(
        audio_config=dict(num_mel_bins=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, d_model=16,
                          max_source_positions=processor.feature_extractor.nb_max_frames // 2, n_window=50, output_dim=16),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=16,
                           fullatt_block_indexes=[0]),
        text_config=text, **ids)
    torch.manual_seed(SEED)
    Qwen2_5OmniForConditionalGeneration(Qwen2_5OmniConfig(thinker_config=thinker, enable_audio_output=False)).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_text_lm(tmp_path_factory) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    folder = tmp_path_factory.mktemp("text-lm")
    tok = chat_tokenizer()
    kwargs = text_config(len(tok))
    kwargs.pop("model_type")
    torch.manual_seed(SEED)
    Qwen2ForCausalLM(Qwen2Config(**kwargs)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------------------------
# zero-shot CLAP
# --------------------------------------------------------------------------------------------


def test_zero_shot_clap_matches_the_transformers_pipeline_through_the_same_metric(clips_dir, tiny_clap, tmp_path, capsys):
    from transformers import pipeline

    out = tmp_path / "zs"
    assert housex(["baseline", "zero-shot", "--model", str(tiny_clap), "--dataset", str(clips_dir), "--out", str(out),
                   "--batch-size", "3", "--device", "cpu"]) == 0
    assert "zero-shot CLAP" in capsys.readouterr().out
    record = json.loads((out / "metrics.json").read_text())
    assert record["baseline"] == "zero-shot" and record["candidate_texts"] == [DEFAULT_TEMPLATE.replace("{}", g) for g in GENRES]

    # Independent path: the zero-shot-audio-classification pipeline, one clip at a time.
    clf = pipeline("zero-shot-audio-classification", model=str(tiny_clap), device="cpu")
    clips = load_clips(clips_dir, "validation", sampling_rate=SR)
    probs = np.zeros((len(clips), len(GENRES)))
    for i in range(len(clips)):
        for hit in clf(clips.audio(i), candidate_labels=list(GENRES), hypothesis_template=DEFAULT_TEMPLATE):
            probs[i, GENRES.index(hit["label"])] = hit["score"]
    want = evaluate.load(str(METRIC_FILE)).compute(predictions=probs, references=clips.soft_labels, prediction_type="probs")
    assert record["num_clips"] == len(clips) == want["num_examples"]
    for key in ("accuracy", "f1_weighted", "top2_accuracy"):
        assert record[key] == pytest.approx(want[key], abs=1e-9), key
    for key in ("kl_divergence", "ece"):
        assert record[key] == pytest.approx(want[key], abs=1e-4), key
    # metrics.json is a function of predictions.parquet
    predictions = read_predictions(out)
    assert list(predictions.clip_ids) == clips.ids and list(predictions.track_ids) == clips.track_ids
    np.testing.assert_allclose(predictions.probabilities, probs, atol=1e-5)
    assert json.loads(json.dumps(metrics_from_predictions(predictions))).items() <= record.items()
    assert predictions.row_info["kind"] == "zero-shot" and record["intervals"]["f1_weighted"][0] <= record["f1_weighted"]


def test_zero_shot_candidate_texts_and_bad_input(clips_dir, tiny_clap, tiny_qwen2_audio, capsys):
    texts = candidate_texts("{} track", descriptions=True)
    assert len(texts) == 8 and texts[3].startswith("Tech House (minimal and percussive") and texts[3].endswith(") track")
    cases = [
        (["--model", str(tiny_clap), "--dataset", str(clips_dir), "--template", "a house track"], "needs a {}"),
        (["--model", str(tiny_qwen2_audio), "--dataset", str(clips_dir)], "is not a CLAP model"),
        (["--model", str(tiny_clap), "--dataset", str(clips_dir.parent / "tracks")], "has no 'clips' config"),
        (["--model", str(tiny_clap), "--dataset", str(clips_dir.parent / "missing")], "not found"),
    ]
    for argv, message in cases:
        assert housex(["baseline", "zero-shot", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


# --------------------------------------------------------------------------------------------
# MLLM harness: prompt and parser
# --------------------------------------------------------------------------------------------


def test_hub_ids_without_a_network_fail_at_once_and_name_the_way_out(tiny_clap, tmp_path, monkeypatch, capsys):
    """A Hub id with the Hub out of reach: one line at once saying so (not huggingface_hub's 30 s of
    retries ending in "not a model"), naming HF_HOME and a local folder; a cached id still loads."""
    import shutil
    import socket
    import time

    from huggingface_hub import constants

    from housex.trainer.baselines import common
    from housex.trainer.baselines.zero_shot import load_clap_processor

    with socket.socket() as s:  # a port nobody listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for offline, reason in ((False, "no connection to 127.0.0.1"), (True, "HF_HUB_OFFLINE is set")):
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
        common.hub_unreachable.cache_clear()
        for command in ("zero-shot", "mllm"):
            start = time.monotonic()
            code = housex(["baseline", command, "--model", "laion/clap-htsat-unfused", "--dataset", str(tmp_path),
                           "--out", str(tmp_path / "out")])
            err = capsys.readouterr().err.strip()
            assert code == 2 and len(err.splitlines()) == 1 and time.monotonic() - start < 5, err
            assert f"the Hugging Face Hub cannot be reached ({reason}" in err and "not a transformers" not in err
            assert "HF_HOME" in err and "hf download laion/clap-htsat-unfused" in err and "local model folder" in err
    # the same id in the local cache (the layout huggingface_hub writes): loaded from there
    snapshot = tmp_path / "hub" / "models--someone--tiny-clap" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_clap, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    assert common.hub_access("someone/tiny-clap") == {"local_files_only": True}
    assert load_clap_processor("someone/tiny-clap").feature_extractor.sampling_rate == SR
    common.hub_unreachable.cache_clear()


def test_prompt_lists_the_genres_in_canonical_order_and_is_shown_without_a_model(capsys):
    prompt = mllm.load_prompt()
    numbered = [line for line in prompt.splitlines() if line[:1].isdigit()]
    assert numbered == [f"{i}. {g}" for i, g in enumerate(GENRES, 1)]
    assert "number" in prompt.splitlines()[-1].lower()
    for g in GENRES:  # a reference note for every genre
        assert f"- {g} (usually" in prompt
    assert housex(["baseline", "mllm", "--show-prompt"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"# prompt mllm_v1 (sha256 {mllm.prompt_hash(prompt)})") and prompt in shown
    with pytest.raises(FileNotFoundError, match="prompt version 'mllm_v0'"):
        mllm.load_prompt("mllm_v0")


@pytest.mark.parametrize("answer, genre", [
    ("3", "Bass House"),
    ("5.", "Deep House"),
    ("Answer: 8", "Slap House"),
    ("The genre is number 2 (Future House).", "Future House"),
    ("6. Bigroom", "Bigroom"),
    ("It sounds like Deep House at 120 BPM.", "Deep House"),
    ("A 128 bpm techno groove", "Tech House"),
    ("This is Future Bounce.", "Future House"),
    ("brazilian bass", "Slap House"),
    ("BIG ROOM", "Bigroom"),
    ("big-room house with a huge kick", "Bigroom"),
    ("Genre: slap-house", "Slap House"),
    ("future rave", "Future Rave"),
    ("Progressive House or Future House?", "Progressive House"),
    ("7.5 seconds of tech house", "Tech House"),
    ("9", None),
    ("0", None),
    ("I cannot determine the genre from this clip.", None),
    ("House music", None),
    ("", None),
])
def test_parse_answer_on_real_looking_answers(answer, genre):
    got = mllm.parse_answer(answer)
    assert (None if got is None else GENRES[got]) == genre


def test_unparsed_answers_count_as_wrong_and_intersect_rate_reads_the_soft_label():
    soft = np.zeros((6, 8))
    soft[[0, 1, 2, 3, 4, 5], [0, 0, 3, 3, 5, 7]] = 1.0
    soft[2] = [0, 0, 0, 0.75, 0.25, 0, 0, 0]  # Tech 0.75 / Deep 0.25
    preds = [0, None, 4, 3, None, 7]
    parsed = np.array([p is not None for p in preds])
    onehot = np.zeros((6, 8))
    onehot[parsed, [p for p in preds if p is not None]] = 1.0
    scores = metrics_from_predictions(make_predictions(clip_ids=[f"c{i}" for i in range(6)], track_ids=list("aabbcc"),
                                                       soft_labels=soft, probabilities=onehot, parsed=parsed))
    y_true = [0, 0, 3, 3, 5, 7]
    y_pred = [-1 if p is None else p for p in preds]  # -1: a miss for its target, no class's prediction
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=range(8), average="weighted", zero_division=0)
    assert scores["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred)) == pytest.approx(3 / 6)
    assert (scores["precision_weighted"], scores["recall_weighted"], scores["f1_weighted"]) == pytest.approx((p, r, f))
    assert scores["num_unparsed"] == 2 and scores["unparsed_rate"] == pytest.approx(2 / 6)
    assert scores["intersect_rate"] == pytest.approx(4 / 6)  # clip 2's Deep House answer has weight 0.25 > 0
    assert [row[8] for row in scores["confusion_matrix"]] == [1, 0, 0, 0, 0, 1, 0, 0]  # the unparsed column


# --------------------------------------------------------------------------------------------
# MLLM harness end to end with a tiny random Qwen2-Audio
# --------------------------------------------------------------------------------------------


def _answers(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]


def test_mllm_tiny_qwen2_audio_end_to_end_resumes_and_refuses_to_mix(clips_dir, tiny_qwen2_audio, tmp_path, capsys):
    out = tmp_path / "mllm"
    argv = ["baseline", "mllm", "--model", str(tiny_qwen2_audio), "--dataset", str(clips_dir), "--out", str(out),
            "--batch-size", "4", "--max-new-tokens", "2", "--device", "cpu", "--clip-seconds", "1.5"]
    assert housex(argv) == 0
    assert "unparsed" in capsys.readouterr().out
    rows = _answers(out)
    record = json.loads((out / "metrics.json").read_text())
    clips = load_clips(clips_dir, "validation", sampling_rate=SR)
    assert [r["clip_id"] for r in rows] == clips.ids and record["num_asked"] == len(clips)
    assert record["clip_seconds"] == 1.5 and clips.seconds == 2.0  # --clip-seconds cuts the 2 s clips
    assert {r["prompt_hash"] for r in rows} == {mllm.prompt_hash(mllm.load_prompt())}
    parsed = [mllm.parse_answer(r["raw_answer"]) for r in rows]
    assert [r["parsed"] for r in rows] == ["UNPARSED" if p is None else GENRES[p] for p in parsed]
    assert record["num_unparsed"] == sum(p is None for p in parsed) > 0  # garbage answers: some are unparsed
    assert record["accuracy"] == pytest.approx(np.mean([r["parsed"] == r["label"] for r in rows]))
    assert record["intersect_rate"] == pytest.approx(
        np.mean([r["parsed"] in GENRES and r["soft_label"][GENRES.index(r["parsed"])] > 0 for r in rows]))
    predictions = read_predictions(out)
    assert list(predictions.parsed) == [r["parsed"] != "UNPARSED" for r in rows]
    assert list(predictions.extra["raw_answer"]) == [r["raw_answer"] for r in rows]
    assert json.loads(json.dumps(metrics_from_predictions(predictions))).items() <= record.items()

    # Resume: a run stopped after 7 answers asks only the other 3 and scores all 10.
    lines = (out / "answers.jsonl").read_text().splitlines(keepends=True)
    (out / "answers.jsonl").write_text("".join(lines[:7]))
    assert housex(argv) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["num_asked"] == len(clips) - 7 and [r["clip_id"] for r in _answers(out)] == clips.ids
    assert housex(argv) == 0 and json.loads((out / "metrics.json").read_text())["num_asked"] == 0

    # answers.jsonl of another model or prompt version: refused, never mixed.
    capsys.readouterr()
    good = _answers(out)
    for key, value in (("model", "Qwen/Qwen2-Audio-7B-Instruct"), ("prompt_version", "mllm_v0")):
        bad = [dict(r) for r in good]
        bad[0][key] = value
        (out / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bad))
        assert housex(argv) == 2
        err = capsys.readouterr().err.strip()
        assert f"answers.jsonl:1: written with {key} {value!r}" in err and len(err.splitlines()) == 1, err
    for text, message in (("{not json\n", "answers.jsonl:1: not a JSON line"), ('{"a": 1}\n', "not an answer row")):
        (out / "answers.jsonl").write_text(text)
        assert housex(argv) == 2
        assert message in capsys.readouterr().err


def test_mllm_tiny_qwen2_5_omni_answers_through_its_thinker(clips_dir, tiny_qwen2_5_omni, tmp_path):
    out = tmp_path / "omni"
    assert housex(["baseline", "mllm", "--model", str(tiny_qwen2_5_omni), "--dataset", str(clips_dir), "--out", str(out),
                   "--batch-size", "5", "--max-new-tokens", "2", "--device", "cpu"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["model_type"] == "qwen2_5_omni" and record["num_asked"] == record["num_clips"] == len(_answers(out))
    assert record["num_unparsed"] == sum(r["parsed"] == "UNPARSED" for r in _answers(out))


def test_mllm_refuses_models_that_cannot_hear_or_chat(clips_dir, tiny_clap, tiny_text_lm, tiny_qwen2_audio, tmp_path, capsys):
    def fails(model, message, dataset=clips_dir):
        argv = ["baseline", "mllm", "--model", str(model), "--dataset", str(dataset), "--out", str(tmp_path / "x")]
        assert housex(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err

    fails(tiny_text_lm, "model_type 'qwen2' is a text-only language model (no audio input)")
    fails(tiny_clap, "model_type 'clap' is not an audio-text chat model")
    fails(tmp_path / "nowhere", "not a transformers model folder or Hub id")
    fails(tiny_qwen2_audio, "has no 'clips' config", dataset=clips_dir.parent / "tracks")
    assert housex(["baseline", "mllm", "--model", str(tiny_qwen2_audio), "--dataset", str(clips_dir)]) == 2
    assert "--out required" in capsys.readouterr().err

    processor = qwen2_audio_processor()
    processor.chat_template = None
    with pytest.raises(ValueError, match=r"^--model m: its processor has no chat template"):
        mllm.check_processor(processor, "m")


# --------------------------------------------------------------------------------------------
# Peer models: any transformers audio classifier in our Trainer
# --------------------------------------------------------------------------------------------

PEER_TRAINING = {
    "optim": "adamw_torch", "learning_rate": 1e-3, "weight_decay": 0.0, "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 8, "max_steps": 3, "eval_strategy": "no", "save_strategy": "no", "logging_steps": 1,
    "report_to": "none", "use_cpu": True, "dataloader_num_workers": 0, "seed": SEED, "do_train": True, "do_eval": True,
}


def train_peer(clips_dir: Path, out: Path, **args) -> dict:
    from housex.trainer.arguments import parse_args
    from housex.trainer.train import main

    model_args, data_args, training_args = parse_args(
        [], **PEER_TRAINING, dataset_name=str(clips_dir), output_dir=str(out), **args)
    return main(model_args, data_args, training_args)


@pytest.fixture(scope="session")
def tiny_ast_config(tmp_path_factory) -> Path:
    """A config-only folder (config.json + preprocessor_config.json) of a tiny AST: --config_name."""
    from transformers import ASTConfig, ASTFeatureExtractor

    folder = tmp_path_factory.mktemp("ast-config")
    ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_mel_bins=16,
              max_length=64).save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=16, max_length=64, sampling_rate=SR).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_wav2vec2(tmp_path_factory) -> Path:
    """A "pretrained" tiny wav2vec2 classifier with a 2-class head and an 8 kHz extractor."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    folder = tmp_path_factory.mktemp("wav2vec2")
    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2, classifier_proj_size=8, num_labels=2)
    torch.manual_seed(SEED)
    Wav2Vec2ForSequenceClassification(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=8000, feature_size=1, return_attention_mask=True).save_pretrained(folder)
    return folder


def _pipeline_labels(folder: Path, clip: np.ndarray, sampling_rate: int) -> list[dict]:
    from transformers import pipeline

    clf = pipeline("audio-classification", model=str(folder), device="cpu")  # no remote code: a stock model
    return clf({"raw": clip, "sampling_rate": sampling_rate}, top_k=len(GENRES))


@pytest.fixture(scope="session")
def ast_run(clips_dir, tiny_ast_config, tmp_path_factory) -> tuple[Path, dict]:
    """A tiny AST trained 3 steps from its config (random init), with class weights: (folder, metrics)."""
    out = tmp_path_factory.mktemp("runs") / "ast"
    return out, train_peer(clips_dir, out, config_name=str(tiny_ast_config), class_weights=True)


def test_peer_ast_from_a_config_trains_with_our_labels_loss_metric_and_card(clips_dir, tiny_ast_config, ast_run):
    out, metrics = ast_run
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "audio-spectrogram-transformer"
    assert list(config["id2label"].values()) == list(GENRES) and len(config["class_weights"]) == len(GENRES)
    assert metrics["config_name"] == str(tiny_ast_config) and metrics["num_eval_clips"] > 0
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "f1_weighted", "top2_accuracy", "kl_divergence", "ece"):
        assert isinstance(saved[key], float), key
    card = (out / "README.md").read_text()
    assert "`audio-spectrogram-transformer` audio classifier" in card and "random init from the config" in card
    clips = load_clips(clips_dir, "validation", sampling_rate=SR)
    preds = _pipeline_labels(out, clips.audio(0), SR)
    assert {p["label"] for p in preds} == set(GENRES) and sum(p["score"] for p in preds) == pytest.approx(1.0, abs=1e-4)


def test_peer_wav2vec2_pretrained_head_replaced_resampled_cut_and_encoder_frozen(clips_dir, tiny_wav2vec2, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "w2v"
    train_peer(clips_dir, out, model_name_or_path=str(tiny_wav2vec2), label_mode="sharpen", max_length_seconds=1.5,
               freeze_feature_encoder=True)
    before, after = load_file(tiny_wav2vec2 / "model.safetensors"), load_file(out / "model.safetensors")
    conv = [k for k in before if k.startswith("wav2vec2.feature_extractor.")]
    assert conv and all(torch.equal(before[k], after[k]) for k in conv)  # frozen
    assert not torch.equal(before["wav2vec2.encoder.layers.0.attention.q_proj.weight"],
                           after["wav2vec2.encoder.layers.0.attention.q_proj.weight"])  # trained
    assert after["classifier.weight"].shape[0] == len(GENRES)  # the 2-class head was replaced
    clip = load_clips(clips_dir, "validation", sampling_rate=8000).audio(0)
    assert {p["label"] for p in _pipeline_labels(out, clip, 8000)} == set(GENRES)


def test_peer_transform_resamples_to_the_extractor_rate_and_cuts_clips(clips_dir, tiny_wav2vec2):
    import datasets
    from transformers import AutoFeatureExtractor

    from housex.trainer.data import make_transform

    fe = AutoFeatureExtractor.from_pretrained(tiny_wav2vec2)
    ds = datasets.load_dataset(str(clips_dir), "clips", split="validation")
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=fe.sampling_rate)).select(range(2))
    for seconds, samples in ((None, 16000), (1.5, 12000)):  # 2 s clips at 8 kHz
        transform = make_transform(fe, audio_column="audio", label_column="soft_label", label_mode="soft",
                                   max_length_seconds=seconds)
        batch = transform(ds[:2])
        assert [len(x) for x in batch["input_values"]] == [samples, samples]
        assert np.asarray(batch["labels"]).shape == (2, len(GENRES))


def test_peer_loss_is_the_soft_label_cross_entropy_from_the_logits(tiny_wav2vec2):
    from transformers import AutoConfig, Wav2Vec2ForSequenceClassification

    from housex.trainer.peer_models import soft_label_loss

    config = AutoConfig.from_pretrained(tiny_wav2vec2, num_labels=len(GENRES))
    config.class_weights = None
    model = Wav2Vec2ForSequenceClassification(config)
    logits = torch.tensor([[2.0, 0, 0, 0, 0, 0, 0, 1.0], [0, 0, 0, 3.0, 1.0, 0, 0, 0]])
    soft = torch.tensor([[0.75, 0, 0, 0, 0, 0, 0, 0.25], [0, 0, 0, 0.5, 0.5, 0, 0, 0]])
    want = -(soft * torch.log_softmax(logits, -1)).sum(-1).mean()
    assert soft_label_loss(model, logits, soft) == pytest.approx(float(want), abs=1e-6)
    hard = torch.tensor([0, 4])
    assert soft_label_loss(model, logits, hard) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, hard)))
    config.class_weights = [1.0, 0, 0, 0, 3.0, 0, 0, 1.0]
    w = torch.tensor(config.class_weights)  # as for HouseX: weighted terms, mean over the batch
    per_clip = torch.nn.functional.cross_entropy(logits, hard, reduction="none")
    assert soft_label_loss(model, logits, hard) == pytest.approx(float((w[hard] * per_clip).mean()), abs=1e-6)


def test_peer_bad_input_is_one_line(clips_dir, tiny_ast_config, tiny_wav2vec2, tiny_text_lm, tmp_path):
    cases = [
        ({"config_name": str(tiny_ast_config), "model_name_or_path": str(tiny_wav2vec2)}, "not both"),
        ({"config_name": str(tiny_text_lm)}, "model_type 'qwen2' has no audio-classification head"),
        ({"config_name": str(tiny_ast_config), "precompute_features": True}, "--precompute_features works on HouseX"),
        ({"config_name": str(tiny_ast_config), "freeze_feature_encoder": True}, "has no feature encoder to freeze"),
        ({"model_name_or_path": str(tmp_path / "nowhere")}, "no config.json"),
    ]
    for args, message in cases:
        with pytest.raises((ValueError, OSError)) as err:
            train_peer(clips_dir, tmp_path / "bad", **args)
        assert message in str(err.value) and len(str(err.value).splitlines()) == 1, str(err.value)


# --------------------------------------------------------------------------------------------
# The table: one row of every kind
# --------------------------------------------------------------------------------------------


def test_table_has_one_row_of_every_kind_and_lists_pending_runs(tiny, clips_dir, tiny_ast_config, ast_run, tiny_clap,
                                                                 tiny_qwen2_audio, tmp_path, capsys):
    from housex.trainer.grid import _scalars, _write_outputs

    _, housex_config, _, _ = tiny
    runs = tmp_path / "runs"
    housex_run = runs / "housex-mel-soft"
    metrics = _run(housex_config, "--output_dir", str(housex_run), "--dataset_name", str(clips_dir), release_dirs=None)
    grid = runs / "grid"  # a grid folder whose one cell is that run
    grid.mkdir()
    _write_outputs(grid, [{"backbone": "shufflenet_v2_x0_5", "features": "mel", "labels": "soft",
                           "output_dir": str(housex_run), "status": "trained", "metrics": _scalars(metrics)}], {})
    assert housex(["probe", "--dataset", str(clips_dir), "--out", str(runs / "probe"), "--n-mels", "16"]) == 0
    assert housex(["baseline", "zero-shot", "--model", str(tiny_clap), "--dataset", str(clips_dir),
                   "--out", str(runs / "zero-shot"), "--device", "cpu"]) == 0
    assert housex(["baseline", "mllm", "--model", str(tiny_qwen2_audio), "--dataset", str(clips_dir),
                   "--out", str(runs / "mllm"), "--max-new-tokens", "2", "--device", "cpu"]) == 0
    (runs / "still-training").mkdir()
    capsys.readouterr()

    sources = [runs / n for n in ("mllm", "zero-shot", "probe")] + [ast_run[0]] + [
        runs / n for n in ("housex-mel-soft", "grid", "still-training")]
    assert housex(["table", *map(str, sources), "--out", str(tmp_path / "table")]) == 0
    shown = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + shown)  # the tiny-settings Table 3 (shown with pytest -s)
    table = json.loads((tmp_path / "table" / "table.json").read_text())
    rows = table["rows"]
    assert [r["kind"] for r in rows] == ["HouseX", "HouseX", "peer model", "linear probe", "zero-shot", "MLLM"]
    assert table["pending"] == [str(runs / "still-training")] and "Pending (not finished yet)" in shown
    house = rows[0]
    assert (house["model"], house["features"], house["labels"]) == ("shufflenet_v2_x0_5", "mel", "soft")
    assert house["f1_weighted"] == rows[1]["f1_weighted"] == metrics["f1_weighted"]
    assert rows[2]["model"] == tiny_ast_config.name and rows[2]["f1_weighted"] == ast_run[1]["f1_weighted"]
    mllm_metrics = json.loads((runs / "mllm" / "metrics.json").read_text())
    assert rows[2]["features"] == "ASTFeatureExtractor" and rows[5]["features"] == "2.0 s audio + prompt"
    assert rows[5]["num_unparsed"] == mllm_metrics["num_unparsed"] and rows[5]["top2_accuracy"] is None
    md = (tmp_path / "table" / "table.md").read_text().splitlines()
    body = [line for line in md if line.startswith("| ") and not line.startswith("| Model")]
    assert len(body) == 6
    cells = [c.strip() for c in body[0].strip("|").split("|")]
    low, high = house["intervals"]["f1_weighted"]
    assert cells[7].replace("*", "") == f"{metrics['f1_weighted']:.3f} [{low:.3f}, {high:.3f}]"
    assert cells[10] == cells[11] == "—"  # no MLLM cells
    assert body[5].split("|")[11].strip() == str(mllm_metrics["num_unparsed"])
    group = table["groups"][0]
    assert (group["num_clips"], group["split"]) == (metrics["num_eval_clips"], "validation")

    # every kind of row: metrics.json recomputed from its predictions.parquet equals the stored one
    from housex.trainer.predictions import metrics_from_predictions, read_predictions

    for folder in (runs / "mllm", runs / "zero-shot", runs / "probe", ast_run[0], housex_run):
        stored = json.loads((folder / "metrics.json").read_text())
        recomputed = json.loads(json.dumps(metrics_from_predictions(read_predictions(folder))))
        assert recomputed.items() <= stored.items(), folder
        assert {"intervals", "track_level", "track_level_intervals", "bootstrap"} <= set(stored), folder

    assert housex(["table", str(tmp_path / "nothing-here")]) == 2
    assert "no such run folder or predictions file" in capsys.readouterr().err
