"""Issue 15: every numeric option is checked by the argument parser, which names the option."""

from __future__ import annotations

import contextlib
import io

import pytest

from housex.cli import build_parser

REL = ["--data-dir", "rel"]
CASES = [
    (["build", *REL, "--clip-seconds", "0"], "--clip-seconds", "must be > 0"),
    (["build", *REL, "--clip-seconds", "nan"], "--clip-seconds", "finite"),
    (["build", *REL, "--clip-seconds", "inf"], "--clip-seconds", "finite"),
    (["build", *REL, "--clip-seconds", "-7.5"], "--clip-seconds", "must be > 0"),
    (["build", *REL, "--margin-db", "nan"], "--margin-db", "finite"),
    (["build", *REL, "--min-drop-seconds", "0"], "--min-drop-seconds", "must be > 0"),
    (["build", *REL, "--skip-seconds", "-1"], "--skip-seconds", "must be >= 0"),
    (["build", *REL, "--workers", "0"], "--workers", "must be > 0"),
    (["build", *REL, "--workers", "two"], "--workers", "expected an integer"),
    (["build", *REL, "--validation-fraction", "1"], "--validation-fraction", "must be < 1"),
    (["build", *REL, "--clips-per-section", "0"], "--clips-per-section", "must be > 0"),
    (["build", *REL, "--seed", "-3"], "--seed", "must be >= 0"),
    (["synth", "--out", "o", "--tracks", "0"], "--tracks", "must be > 0"),
    (["synth", "--out", "o", "--tracks", "4", "--duration", "nan", "60"], "--duration", "finite"),
    (["synth", "--out", "o", "--tracks", "4", "--fallback-share", "1.5"], "--fallback-share", "must be <= 1"),
    (["synth", "--out", "o", "--tracks", "4", "--workers", "-1"], "--workers", "must be > 0"),
    (["timeline", "mix.flac", "--model", "m", "--hop", "nan"], "--hop", "finite"),
    (["timeline", "mix.flac", "--model", "m", "--hop", "0"], "--hop", "must be > 0"),
    (["timeline", "mix.flac", "--model", "m", "--smooth", "-1"], "--smooth", "must be >= 0"),
    (["timeline", "mix.flac", "--model", "m", "--batch-size", "0"], "--batch-size", "must be > 0"),
    (["predict", "t.ogg", "--model", "m", "--top", "0"], "--top", "must be > 0"),
    (["predict", "t.ogg", "--model", "m", "--batch-size", "1.5"], "--batch-size", "expected an integer"),
    (["predict", "t.ogg", "--model", "m", "--clips-per-drop", "0"], "--clips-per-drop", "must be > 0"),
    (["plot", "embeddings", "--model", "m", "--dataset", "d", "--max-clips", "0"], "--max-clips", "must be > 0"),
    (["probe", "--dataset", "d", "--C", "0"], "--C", "must be > 0"),
    (["demo", "--tracks", "0"], "--tracks", "must be > 0"),
]


@pytest.mark.parametrize("argv, option, message", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_bad_numeric_option_is_refused_by_the_parser(argv, option, message):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    line = err.getvalue().strip().splitlines()[-1]
    assert f"argument {option}" in line and message in line, line
