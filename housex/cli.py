"""``housex`` command line: one sub-command per module in ``housex.commands``.

Each module there defines ``add_arguments(parser)`` and ``run(args) -> int`` and a one-line
``HELP``; this file only wires them up, so a sub-command lives in exactly one place.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
    "demo": "demo",
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as e:
        # Our own errors name the file/field; print them without a library traceback.
        if getattr(args, "debug", False):
            raise
        print(f"housex {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
