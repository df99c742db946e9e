"""MLLM harness overhead per clip on the CPU: everything ``housex baseline mllm`` does besides generation.

Per clip: the processor call (Whisper log-mel of a 7.5 s clip at 16 kHz, 128 mels padded to 30 s as
Qwen2-Audio's processor does, and tokenisation of the chat-template prompt with its audio tokens
expanded), parsing a real-looking answer and writing its ``answers.jsonl`` row.  The chat
template is rendered once per run, as the harness does.  The tokenizer is a byte-level one built
here (no download): Qwen2-Audio's 150k-token BPE costs more per prompt, so this is a lower bound
of the tokenisation share.  No GPU was available when these rows were written: generation
(clips/s of the models) is not measured here.
"""

from __future__ import annotations

import json

import numpy as np

from bench.timing import best_time

ANSWERS = ["3", "Answer: 5.", "The genre is Deep House.", "techno", "I think it is 128 BPM big room", "unclear"]
AUDIO_TOKENS = ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]


def chat_tokenizer(extra_special_tokens: dict[str, str] | None = None):
    """A byte-level fast tokenizer (every byte one token, no merges) with Qwen's chat and audio tokens
    (``extra_special_tokens``: named ones such as ``{"image_token": "<|IMAGE|>"}``, as Qwen2.5-Omni reads)."""
    from tokenizers import Tokenizer, decoders, models
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(sorted(ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *AUDIO_TOKENS]
    named = dict(extra_special_tokens or {})
    specials += [t for t in named.values() if t not in specials]
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=specials, **({"extra_special_tokens": named} if named else {}))


def main() -> None:
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    from housex.dataset_script.genres import GENRES
    from housex.trainer.baselines import mllm

    processor = Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=chat_tokenizer())
    prompt = mllm.load_prompt()
    identity = {"model": "bench", "prompt_version": mllm.PROMPT_VERSION, "prompt_hash": mllm.prompt_hash(prompt)}
    text = mllm.chat_text(processor, prompt)
    sr = processor.feature_extractor.sampling_rate
    clip = np.random.default_rng(0).standard_normal(int(7.5 * sr)).astype(np.float32) * 0.1
    n = 20

    def per_clip_processor():
        for _ in range(n):
            processor(text=[text], audio=[clip], sampling_rate=sr, return_tensors="pt", padding=True)

    def per_clip_parse_and_row():
        for i in range(n):
            raw = ANSWERS[i % len(ANSWERS)]
            parsed = mllm.parse_answer(raw)
            row = {"clip_id": f"clip{i}", **identity, "raw_answer": raw,
                   "parsed": mllm.UNPARSED if parsed is None else GENRES[parsed], "label": GENRES[0]}
            json.dumps(row)

    t_render, _ = best_time(lambda: mllm.chat_text(processor, prompt), repeats=5)
    t_proc, _ = best_time(per_clip_processor, repeats=3)
    t_parse, _ = best_time(per_clip_parse_and_row, repeats=3)
    rows = [
        ("chat template rendering (once per run)", t_render * 1e3),
        ("processor: 7.5 s clip -> log-mel + prompt tokens (per clip)", t_proc / n * 1e3),
        ("parse answer + answers.jsonl row (per clip)", t_parse / n * 1e3),
    ]
    print("MLLM harness overhead, CPU (ms)")
    for name, ms in rows:
        print(f"  {name:<62} {ms:8.3f}")
    per_clip = (t_proc + t_parse) / n
    print(f"  {'total per clip':<62} {per_clip * 1e3:8.3f}  ({1 / per_clip:.0f} clips/s before generation)")
    print("  GPU rows (clips/s of tiny and real-size Qwen2-Audio, AST steps): not measured, no GPU in this session")


if __name__ == "__main__":
    main()
