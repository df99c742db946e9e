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


def run_measured(cmd: list[str], **kwargs) -> tuple[float, float, int, int, str]:
    """Run a command to its end: ``(wall seconds, CPU seconds, peak RSS in bytes, exit status,
    stderr)`` of that process.  The peak is its ``VmHWM``, read every 20 ms while it runs: the
    ``ru_maxrss`` that ``wait4`` reports keeps the peak of the forked copy of this process, taken
    over at ``exec`` (Linux), so it would report this process's size."""
    import os
    import subprocess
    import tempfile
    import threading

    peak = 0

    def watch(pid: int, done: threading.Event) -> None:
        nonlocal peak
        while not done.is_set():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except OSError:
                pass
            done.wait(0.02)

    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, **kwargs)
        done = threading.Event()
        watcher = threading.Thread(target=watch, args=(proc.pid, done), daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, peak, proc.returncode, err.read()
