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
import threading
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
    """A command in its own process group (so that a kill reaches its workers too), with Ctrl-C's
    SIGINT raising KeyboardInterrupt in it even where this process ignores SIGINT (a suite started
    in the background by a shell: an ignored signal stays ignored across exec)."""
    restore = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if restore:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # exec resets a handled signal to its default
    try:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                **kw)
    finally:
        if restore:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


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


@contextlib.contextmanager
def lock_held(target: Path, command: str) -> Iterator[subprocess.Popen]:
    """Another process holding ``target``'s output lock as ``command`` until the block ends."""
    code = ("import sys; from housex.dataset_script.safe_write import OutputLock\n"
            f"with OutputLock({str(target)!r}, command={command!r}):\n"
            "    print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait()


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
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if "error" in line.lower()]
    assert len(lines) == 1, stderr  # (beside progress bars a library may print)
    line = lines[0]
    assert "Traceback" not in stderr and str(folder) in line, line
    assert "no space left on device" in line.lower() and "needs about" in line and " free" in line, line
    return line


_IN_CREATE, _IN_MOVED_TO = 0x100, 0x80


def kill_on_create(proc: subprocess.Popen, folder: Path, prefix: str, timeout: float = 300.0) -> bool:
    """SIGKILL ``proc``'s process group the moment a file whose name starts with ``prefix`` is
    created in ``folder`` (inotify: a write of a few milliseconds is caught, where polling could miss
    it); False when the process ended first.  What it printed is then ``proc.output``."""
    import ctypes
    import select
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    hit = False
    try:
        assert libc.inotify_add_watch(fd, os.fsencode(folder), _IN_CREATE | _IN_MOVED_TO) >= 0
        deadline = time.monotonic() + timeout
        while not hit and time.monotonic() < deadline and proc.poll() is None:
            if not select.select([fd], [], [], 0.05)[0]:
                continue
            data = os.read(fd, 65536)
            offset = 0
            while offset < len(data):
                _, _, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16: offset + 16 + length].rstrip(b"\0").decode()
                offset += 16 + length
                if name.startswith(prefix):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    hit = True
                    break
    finally:
        os.close(fd)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.output = proc.communicate(timeout=60)
    return hit


def without_root_file_access() -> list[str]:
    """A command prefix that makes root obey file permissions (drops CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH), so a folder of mode 000 is unreadable as for any user; empty when not root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: an unreadable folder cannot be made")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]
