"""``housex app --model DIR``: the web app (Gradio) for tracks and DJ sets; ``--space DIR`` exports a Space."""

from __future__ import annotations

from housex.app import DEFAULT_CONCURRENCY, DEFAULT_MAX_QUEUE
from housex.commands.options import positive

HELP = "web app (Gradio) for tracks and DJ sets on 127.0.0.1; --space DIR writes a Hugging Face Space folder"


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model folder written by save_pretrained")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--library", default=None, metavar="DIR", help="folder of tracks to pick from in the Track tab")
    p.add_argument("--max-file-size", default="500mb", help="upload size limit, e.g. 200mb or 2gb (default: 500mb)")
    p.add_argument("--concurrency", type=positive(int), default=DEFAULT_CONCURRENCY,
                   help=f"requests analysed at once (default: {DEFAULT_CONCURRENCY}; each holds a decoded track or "
                        "set in memory)")
    p.add_argument("--max-queue", type=positive(int), default=DEFAULT_MAX_QUEUE,
                   help=f"requests waiting beyond those; more get 'queue is full, try again' (default: {DEFAULT_MAX_QUEUE})")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default: CPU)")
    p.add_argument("--space", default=None, metavar="DIR",
                   help="write a Hugging Face Space folder (app.py, requirements.txt, README.md, package, model) "
                        "instead of serving")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args) -> int:
    from housex.app import export_space, launch

    if args.space:
        folder = export_space(args.space, args.model, max_file_size=args.max_file_size)
        print(f"wrote the Space folder {folder}: push it with `hf upload <user>/<space> {folder} --repo-type space`")
        return 0
    print(f"serving on http://{args.host}:{args.port} (Ctrl+C stops)", flush=True)
    launch(args.model, host=args.host, port=args.port, library=args.library, device=args.device,
           max_file_size=args.max_file_size, concurrency=args.concurrency, max_queue=args.max_queue)
    return 0
