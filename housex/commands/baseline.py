"""``housex baseline zero-shot|mllm``: the Table-3 baselines on a built clips dataset."""

from __future__ import annotations

from housex.commands.options import add_bootstrap_arguments, bootstrap_settings, non_negative, positive

HELP = "baselines under the HouseX protocol: zero-shot CLAP, audio-text chat models (MLLMs), layer probes"


def _common(p, *, model_required: bool = True) -> None:
    p.add_argument("--model", required=model_required, help="model folder or Hub id")
    p.add_argument("--dataset", required=model_required, help="dataset folder (or Hub id) with the 'clips' config")
    p.add_argument("--split", default="validation", help="split to score (default: validation)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per forward pass (default 8)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    add_bootstrap_arguments(p)


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="baseline", required=True, metavar="BASELINE")
    zs = sub.add_parser("zero-shot", help="zero-shot CLAP: the 8 genre names (or names + descriptions) as candidate texts")
    _common(zs)
    zs.add_argument("--template", default=None, help='candidate text, {} = the genre (default: "This is a sound of {} music.")')
    zs.add_argument("--descriptions", action="store_true", help="append each genre's short description to its name")
    zs.add_argument("--clip-seconds", type=float, default=None, help="cut clips to this length (default: as stored)")
    zs.add_argument("--out", default=None, help="folder for predictions.parquet and metrics.json (default: print only)")
    zs.set_defaults(_baseline=_zero_shot)

    mllm = sub.add_parser("mllm", help="ask an audio-text chat model for the genre (the paper's protocol); resumable")
    _common(mllm, model_required=False)
    mllm.add_argument("--out", default=None, help="folder for answers.jsonl, predictions.parquet and metrics.json "
                      "(reruns skip answered clips)")
    mllm.add_argument("--max-new-tokens", type=int, default=16, help="answer length limit (default 16)")
    mllm.add_argument("--dtype", default="auto", help="auto (bfloat16 on CUDA, else float32), float32, bfloat16, float16")
    mllm.add_argument("--clip-seconds", type=float, default=7.5, help="seconds of each clip given to the model (default 7.5, as the paper)")
    mllm.add_argument("--trust-remote-code", action="store_true", help="allow a model's own code (Kimi-Audio, MU-LLaMA, ...)")
    mllm.add_argument("--show-prompt", action="store_true", help="print the prompt and exit (no model or dataset needed)")
    mllm.set_defaults(_baseline=_mllm)

    probe = sub.add_parser("probe", help="probes of every layer of cached encoder embeddings (or the built-in log-mel "
                                         "features), chosen on an inner split of the training tracks")
    source = probe.add_mutually_exclusive_group(required=True)
    source.add_argument("--embeddings", metavar="EMB", help="folder written by `housex embed`")
    source.add_argument("--features", choices=("log-mel",), help="a built-in feature set (needs --dataset)")
    probe.add_argument("--dataset", help="dataset folder (or Hub id) with the 'clips' config, for --features")
    probe.add_argument("--out", required=True, help="run folder: predictions.parquet, metrics.json, layer curve, choice")
    probe.add_argument("--seed", type=non_negative(int), default=0, help="seed of the inner split and the probes (default 0)")
    probe.add_argument("--n-mels", type=positive(int), default=64, help="log-mel: mel bands (default 64)")
    probe.add_argument("--C", type=positive(float), default=1.0, help="log-mel: inverse L2 regularisation (default 1)")
    probe.add_argument("--workers", type=positive(int), default=1, help="log-mel: processes that decode the clips")
    probe.add_argument("--debug", action="store_true", help="show tracebacks")
    probe.set_defaults(_baseline=_probe)


def _device(name: str | None) -> str:
    if name:
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _zero_shot(args) -> int:
    from housex.trainer.baselines.zero_shot import DEFAULT_TEMPLATE, summary_line, zero_shot

    record = zero_shot(args.model, args.dataset, split=args.split, template=args.template or DEFAULT_TEMPLATE,
                       descriptions=args.descriptions, batch_size=args.batch_size, device=_device(args.device),
                       out=args.out, clip_seconds=args.clip_seconds, bootstrap=bootstrap_settings(args))
    print(summary_line(record))
    return 0


def _mllm(args) -> int:
    from housex.trainer.baselines import mllm

    if args.show_prompt:
        prompt = mllm.load_prompt()
        print(f"# prompt {mllm.PROMPT_VERSION} (sha256 {mllm.prompt_hash(prompt)})\n{prompt}")
        return 0
    missing = [flag for flag, value in (("--model", args.model), ("--dataset", args.dataset), ("--out", args.out)) if not value]
    if missing:
        raise ValueError(f"{', '.join(missing)} required (or --show-prompt)")
    record = mllm.run_mllm(args.model, args.dataset, args.out, split=args.split, max_new_tokens=args.max_new_tokens,
                           batch_size=args.batch_size, device=_device(args.device), dtype=args.dtype,
                           clip_seconds=args.clip_seconds, trust_remote_code=args.trust_remote_code,
                           bootstrap=bootstrap_settings(args))
    print(mllm.summary_line(record))
    return 0


def _probe(args) -> int:
    from housex.trainer.baselines import layer_probe

    if args.embeddings:
        record = layer_probe.run_probe(layer_probe.from_embeddings(args.embeddings), args.out, seed=args.seed)
        print(layer_probe.summary_line(record))
        return 0
    if not args.dataset:
        raise ValueError("--features log-mel needs --dataset")
    from housex.trainer.baselines.probe import linear_probe, summary
    from housex.trainer.data import load_clips_dataset

    record = linear_probe(load_clips_dataset(args.dataset, "clips"), n_mels=args.n_mels, C=args.C, seed=args.seed,
                          num_proc=args.workers, source=args.dataset, out=args.out)
    print(summary(record))
    return 0


def run(args) -> int:
    return args._baseline(args)
