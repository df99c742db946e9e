"""The one timing helper the benchmarks share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_time(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Best wall time in seconds of ``repeats`` calls of ``fn`` (the least disturbed one), and its last result."""
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
