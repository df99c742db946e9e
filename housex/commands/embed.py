"""``housex embed --encoder ID_OR_FOLDER --dataset DIR --out EMB``: every layer of a frozen encoder, cached."""

from __future__ import annotations

from housex.commands.options import positive

HELP = "run a frozen audio encoder once over every clip and cache the time-pooled states of every layer"


def add_arguments(parser) -> None:
    parser.add_argument("--encoder", required=True,
                        help="folder or Hub id of an audio encoder (wav2vec2, HuBERT, WavLM, AST, Whisper, CLAP, "
                             "Qwen2-Audio, MERT, a HouseX model, ...)")
    parser.add_argument("--dataset", required=True, help="dataset folder (or Hub id) with the 'clips' config")
    parser.add_argument("--out", required=True, help="embeddings folder (reused when its cache key matches)")
    parser.add_argument("--splits", nargs="+", default=None, help="splits to embed (default: all)")
    parser.add_argument("--batch-size", type=positive(int), default=8, help="clips per forward pass (default 8)")
    parser.add_argument("--device", default=None, help="torch device (default: the accelerate process's device)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="encoder dtype (default float32; part of the cache key)")
    parser.add_argument("--revision", default=None, help="Hub revision of the encoder")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the encoder's own code")
    parser.add_argument("--overwrite", action="store_true", help="replace embeddings of another cache key")
    parser.add_argument("--shard-size", type=positive(int), default=256, help="clips per shard (default 256)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:
    from housex.trainer.embeddings import embed, load_embeddings

    out = embed(args.encoder, args.dataset, args.out, batch_size=args.batch_size, device=args.device,
                dtype=args.dtype, trust_remote_code=args.trust_remote_code, revision=args.revision,
                overwrite=args.overwrite, shard_size=args.shard_size, splits=args.splits)
    from accelerate import PartialState

    if PartialState().is_main_process:
        emb = load_embeddings(out)
        counts = ", ".join(f"{name} {len(s)}" for name, s in emb.splits.items())
        print(f"{emb.encoder}: {emb.num_states} states x {next(iter(emb.splits.values())).features.shape[2]} "
              f"per clip ({counts} clips) in {out}")
    return 0
