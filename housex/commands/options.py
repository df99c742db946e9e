"""Argument types for numeric options (the parser refuses a bad value with the option's name), and
the drop rule as the commands that find drops print it under ``--help``.

``type=positive(float)`` makes argparse print ``argument --clip-seconds: must be > 0, got 0``
instead of a ``ValueError`` from deep inside a library.  NaN and infinity are never accepted.
"""

from __future__ import annotations

import argparse
import math

from housex.dataset_script.drops import MARGIN_DB, MIN_SECONDS, SKIP_SECONDS

DROP_RULE = (
    f"Drops (the HouseX-v2 authors' rule): the track's mono signal at 22.05 kHz, its first {SKIP_SECONDS:g} s "
    "skipped (the intro); RMS loudness per frame, smoothed by a running max then a running mean over 3 s; every "
    f"run within {MARGIN_DB:g} dB of the loudest smoothed point lasting {MIN_SECONDS:g} s or more is a drop. "
    f"A file shorter than {SKIP_SECONDS + MIN_SECONDS:g} s (the skip plus one drop) is searched from its start, "
    "and a section that then spans it is marked 'the whole file'. With no such run, the loudest "
    f"{MIN_SECONDS:g} s window is used instead, marked as the fallback section."
)


def _number(kind, text: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def bounded(kind=float, *, low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type`` for numbers of ``kind`` in [low, high] (an end is open when asked)."""

    def parse(text: str):
        value = _number(kind, text)
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low}, got {text}")
        if high is not None and (value > high or (high_open and value == high)):
            raise argparse.ArgumentTypeError(f"must be {'<' if high_open else '<='} {high}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse


def positive(kind=float):
    """> 0: lengths, hops, rates, counts of things to make."""
    return bounded(kind, low=0, low_open=True)


def non_negative(kind=float):
    """>= 0: seeds, margins, optional spans where 0 means 'none'."""
    return bounded(kind, low=0)


def fraction(*, high_open=True):
    """A share in [0, 1) (or [0, 1] with ``high_open=False``)."""
    return bounded(float, low=0, high=1, high_open=high_open)


def add_bootstrap_arguments(parser) -> None:
    """``--level``, ``--resamples``, ``--bootstrap-seed``: the track-bootstrap intervals of every figure."""
    group = parser.add_argument_group("intervals (cluster bootstrap over validation tracks)")
    group.add_argument("--level", type=bounded(float, low=0, high=1, low_open=True, high_open=True), default=0.95,
                       help="confidence level of the intervals (default 0.95)")
    group.add_argument("--resamples", type=bounded(int, low=10), default=2000,
                       help="bootstrap resamples (default 2000)")
    group.add_argument("--bootstrap-seed", type=non_negative(int), default=0,
                       help="seed of the resamples: the same seed gives the same intervals (default 0)")


def bootstrap_settings(args):
    """The :class:`housex.trainer.statistics.Bootstrap` of the flags added by :func:`add_bootstrap_arguments`."""
    from housex.trainer.statistics import Bootstrap

    return Bootstrap(level=args.level, resamples=args.resamples, seed=args.bootstrap_seed)
