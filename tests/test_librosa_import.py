"""Workers that import librosa at the same time on a fresh install (``dataset_script/librosa_import.py``).

librosa compiles numba functions on import and caches them beside the package; three processes
writing that cache at once left it so that the next process to load it died of SIGSEGV in
``librosa.util.localmax`` (3 of 3 tries before the fix; ``make demo``'s probe workers did it).
A fresh ``NUMBA_CACHE_DIR`` stands for the fresh install.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

IMPORT = "from housex.dataset_script.librosa_import import import_librosa; import_librosa()"
BEATS = ("import numpy as np; from housex.cues import beat_grid; "
         "print(len(beat_grid(np.random.default_rng(0).standard_normal(22050 * 20).astype(np.float32), 22050).beats))")


@pytest.mark.slow
def test_processes_importing_librosa_together_leave_a_cache_every_later_process_loads(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    procs = [subprocess.Popen([sys.executable, "-c", IMPORT], env=env, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    assert any((tmp_path / "numba").rglob("*.nbi"))  # the cache was written there
    for _ in range(2):  # the next processes load that cache (and the second one the beat tracker's too)
        done = subprocess.run([sys.executable, "-c", BEATS], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (done.returncode, done.stderr[-2000:])  # -11 (SIGSEGV) before the fix
        assert int(done.stdout) > 10
