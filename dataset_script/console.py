"""Progress bars on a terminal only.

A bar redrawn into a log file, a pipe or CI output becomes a line per redraw ("Loading weights
0%...", two bars interleaved with cursor escapes).  The command-line entry points (``housex``,
``trainer/run.py``) call :func:`progress_bars_on_terminal_only` first: when stderr is not a terminal
it turns off the bars of tqdm (ours included), ``datasets``, ``huggingface_hub`` and
``transformers``, through the environment variables they read when imported (a value the user set
wins) and their switches when they are imported already.  Errors and notes are not bars: they stay.
"""

from __future__ import annotations

import os
import sys

# What each library reads when it is imported (tqdm >= 4.66 takes any keyword default from TQDM_*).
_SWITCHES = ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")


def progress_bars_on_terminal_only(stream=None) -> bool:
    """Turn progress bars off unless ``stream`` (default: stderr, where tqdm draws) is a terminal;
    returns whether bars show."""
    stream = sys.stderr if stream is None else stream
    if getattr(stream, "isatty", lambda: False)():
        return True
    for name in _SWITCHES:
        os.environ.setdefault(name, "1")
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    return False
