"""``housex cues MIX --model DIR --out DIR``: bar-aligned cues of a DJ set for visuals (JSON, MIDI, OSC)."""

from __future__ import annotations

HELP = "bar-aligned cues of a DJ set for visuals and lighting: cues.json, cues.mid, OSC replay"


def add_arguments(p) -> None:
    from housex.commands.timeline import add_window_arguments

    add_window_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for cues.json / cues.mid")
    p.add_argument("--format", default="json,midi", help="comma-separated: json, midi, osc (default: json,midi; "
                                                         "osc = replay to --osc)")
    p.add_argument("--osc", default=None, metavar="HOST:PORT",
                   help="replay the cues as OSC messages over UDP to HOST:PORT (e.g. 127.0.0.1:9000)")
    p.add_argument("--speed", type=float, default=1.0, help="OSC replay speed, N times real time (default: 1)")


def run(args) -> int:
    from housex.commands.timeline import timeline_options
    from housex.cues import FORMATS, parse_host_port, replay_osc, set_cues

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - {*FORMATS, "osc"})
    if unknown:
        raise ValueError(f"--format: unknown format(s) {unknown}; known: json, midi, osc")
    if "osc" in formats and not args.osc:
        raise ValueError("--format osc needs --osc HOST:PORT")
    target = parse_host_port(args.osc) if args.osc else None
    if not args.speed > 0:
        raise ValueError(f"--speed must be > 0, got {args.speed}")

    _, cues = set_cues(args.mix, args.model, **timeline_options(args))
    paths = cues.write(args.out, [f for f in formats if f in FORMATS])
    print(cues.format())
    if paths:
        print("wrote " + "  ".join(str(p) for p in paths.values()))
    if target:
        host, port = target
        print(f"replaying {len(cues.osc_messages())} OSC messages to {host}:{port} at {args.speed:g}x", flush=True)
        sent = replay_osc(cues, host, port, speed=args.speed)
        print(f"sent {sent} OSC messages")
    return 0
