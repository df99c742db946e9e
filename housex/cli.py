"""``housex`` command line: one sub-command per module in ``housex.commands``.

Each module there defines ``add_arguments(parser)`` and ``run(args) -> int`` and a one-line
``HELP``; this file only wires them up, so a sub-command lives in exactly one place.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from housex.dataset_script.console import progress_bars_on_terminal_only

# name -> module under housex.commands
COMMANDS = {
    "synth": "synth",
    "build": "build",
    "predict": "predict",
    "timeline": "timeline",
    "cues": "cues",
    "app": "app",
    "plot": "plot",
    "grid": "grid",
    "probe": "probe",
    "embed": "embed",
    "baseline": "baseline",
    "table": "table",
    "compare": "compare",
    "demo": "demo",
    "label-studio": "label_studio",
    "review": "review",
    "tag": "tag",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="housex", description="HouseX-v2: house sub-genre benchmark tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"housex.commands.{module_name}")
        except ModuleNotFoundError as e:
            if e.name == f"housex.commands.{module_name}":
                continue  # sub-command not part of this install
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


class Terminated(BaseException):
    """SIGTERM as an exception, so that ``finally``/``except BaseException`` clean-ups run."""


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    progress_bars_on_terminal_only()  # before the commands import the libraries that draw bars
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse already printed the usage error (or the help): return its code
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if _main_thread() else None
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except (ValueError, OSError, RuntimeError) as e:
        # Our own errors name the file/field; print them without a library traceback.
        if getattr(args, "debug", False):
            raise
        print(f"housex {args.command}: error: {e}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
