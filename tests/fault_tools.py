"""Real faults for the fault tests: SIGKILL at a watched moment, a small filesystem that fills up,
a second process at once.  Nothing here patches our code: a kill is ``os.killpg(..., SIGKILL)`` of
the command's whole process group (its workers too), a full disk is a size-limited tmpfs."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HOUSEX = [sys.executable, "-m", "housex.cli"]


def snapshot(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (hidden ones too)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def start(cmd: list[str], **kw) -> subprocess.Popen:
    """A command in its own process group (so that a kill reaches its workers too)."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def kill_when(proc: subprocess.Popen, condition: Callable[[], bool], timeout: float = 120.0, poll: float = 0.002) -> bool:
    """SIGKILL ``proc``'s process group as soon as ``condition()`` holds; False when the process
    ended (or the time ran out) first.  What it printed is then ``proc.output`` (stdout, stderr)."""
    deadline = time.monotonic() + timeout
    hit = False
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            hit = True
            break
        time.sleep(poll)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.output = proc.communicate(timeout=60)
    return hit


def run(cmd: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def entries(folder: Path, prefix: str) -> list[Path]:
    try:
        return [p for p in Path(folder).iterdir() if p.name.startswith(prefix)]
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def tmpfs(size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` (rounded up to pages) mounted on a fresh folder; skips the test
    where mounting is not permitted (not root, no tmpfs)."""
    mount = shutil.which("mount")
    folder = Path(tempfile.mkdtemp(prefix="housex-tmpfs-"))
    proc = subprocess.run([mount or "mount", "-t", "tmpfs", "-o", f"size={int(size_bytes)}", "tmpfs", str(folder)],
                          capture_output=True, text=True) if mount else None
    if proc is None or proc.returncode != 0:
        folder.rmdir()
        reason = proc.stderr.strip() if proc is not None else "no mount command"
        pytest.skip(f"cannot mount a size-limited tmpfs here ({reason}): the full-disk tests need root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        with contextlib.suppress(OSError):
            folder.rmdir()


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` until about ``leave`` bytes are free (a real file)."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    filler = folder / "filler.bin"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb") as f:
        todo = max(0, free - leave)
        while todo > 0:
            n = min(todo, len(chunk))
            try:
                f.write(chunk[:n])
                f.flush()
            except OSError:
                break
            todo -= n
    return filler


def one_line_disk_error(stderr: str, folder: Path) -> str:
    """The stderr of a command stopped by a full disk: exactly one line, naming the folder, the
    bytes needed and free."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    line = lines[0]
    assert "Traceback" not in stderr and str(folder) in line, line
    assert "no space left on device" in line.lower() and "needs about" in line and " free" in line, line
    return line
