"""librosa, imported by one process at a time the first time.

librosa's modules compile numba functions when they are imported (``librosa.util``'s ``localmax``,
``peak_pick``... eagerly, for several signatures) and on first call (the beat tracker), and write
them to numba's on-disk cache beside the package.  Processes that write that cache at the same time
can leave it inconsistent, and every later process that loads it crashes with a segmentation fault
(seen on a fresh install: ``make demo``'s two probe workers imported librosa together, then
``housex cues`` died in ``librosa.util.localmax``).  So every command that starts worker processes,
and ``make setup``, import librosa here first: under a lock shared by all processes of the machine,
the first one compiles and writes the cache, the others then only read it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator

LOCK_PATH = os.path.join(tempfile.gettempdir(), "housex-librosa-numba.lock")


@contextlib.contextmanager
def numba_cache_lock() -> Iterator[None]:
    """Hold the machine-wide lock around code that may compile and cache librosa's numba functions."""
    from filelock import FileLock

    try:
        lock = FileLock(LOCK_PATH, mode=0o666)
        lock.acquire()
    except OSError:  # a lock file this user cannot open: go on unlocked, as librosa itself would
        yield
        return
    try:
        yield
    finally:
        lock.release()


@functools.cache  # once per process: later calls take no lock
def import_librosa():
    """``librosa`` with the submodules that compile on import (util, core, onset, beat, feature) loaded."""
    with numba_cache_lock():
        import librosa
        import librosa.beat
        import librosa.core
        import librosa.feature
        import librosa.onset
        import librosa.util  # noqa: F401
    return librosa
