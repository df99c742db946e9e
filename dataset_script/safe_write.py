"""Writing outputs so that a crash, a full disk or a second run loses nothing.

One place for what every long-running command (synth, build, tag, training, review) does with its
output:

- :class:`OutputLock`: a lock file ``.<name>.lock`` beside the output, holding the PID and command
  line of the run that writes it.  A second run is refused at once with a message naming the first;
  the lock of a killed run is taken over (it is an ``flock``, which the kernel releases when its
  process dies, so a stale PID in the file never blocks anyone).
- :func:`atomic_path` / :func:`atomic_write_bytes` / :func:`replace_folder`: a file or folder is
  written under a temporary name beside its destination and renamed into place, so a reader sees
  the old output or the new one, never a part.  Temporary names carry the writer's PID
  (:func:`temp_prefix`), so a later run removes what a killed one left
  (:func:`remove_stale_temp_files`).
- :func:`check_free_space` / :func:`disk_full_error`: free space is checked up front where the size
  is predictable, and a disk that fills anyway becomes one line (:class:`DiskFullError`) naming the
  folder, the bytes needed (an estimate) and the bytes free.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


# ---------------------------------------------------------------------------------- processes


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists (this one included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------- free space


class DiskFullError(OSError):
    """No space left on the output's file system: the message names the folder, the bytes
    needed (an estimate) and the bytes free."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errno = errno.ENOSPC


def existing_folder(path: str | os.PathLike) -> Path:
    """``path`` itself when it is a folder, else its nearest existing ancestor."""
    p = Path(os.path.abspath(path))
    while not p.is_dir() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes an unprivileged writer may still use on the file system of ``path`` (or of its
    nearest existing ancestor)."""
    st = os.statvfs(existing_folder(path))
    return st.f_bavail * st.f_frsize


def format_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _disk_full_message(folder, what: str, needed: int | None, free: int) -> str:
    need = f"needs about {format_bytes(needed)}, " if needed else ""
    return f"{folder}: no space left on device for {what}: {need}{format_bytes(free)} free"


def check_free_space(folder: str | os.PathLike, needed: int, what: str, *, after: str = "nothing was written") -> None:
    """Raise :class:`DiskFullError` before the writes when ``needed`` bytes do not fit in ``folder``."""
    free = free_bytes(folder)
    if free < needed:
        raise DiskFullError(_disk_full_message(existing_folder(folder), what, needed, free) + f"; {after}")


def is_disk_full(exc: BaseException | None) -> bool:
    """True when ``exc`` or an exception it was raised from is ENOSPC/EDQUOT (libraries wrap it or
    keep only its message: ``datasets`` in ``DatasetGenerationError``, pyarrow in its own
    ``OSError``, safetensors in ``SafetensorError``)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "errno", None) in DISK_FULL_ERRNOS or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(folder: str | os.PathLike, what: str, needed: int | None = None, *,
                    after: str = "nothing was left behind") -> DiskFullError:
    """The one-line error for a disk that filled while writing ``what`` into ``folder``."""
    folder = existing_folder(folder)
    return DiskFullError(_disk_full_message(folder, what, needed, free_bytes(folder)) + f"; {after}")


# ---------------------------------------------------------------------------------- temporary names

# ``.<name>.tmp-<pid>-<random>`` (a file or folder being written) and ``.<name>.old-<pid>`` (an
# output being replaced) beside the output: the PID tells a later run whether the writer is gone.
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)(?:-.*)?$")


def temp_prefix(out: Path) -> str:
    """Prefix of this process's temporary names for ``out`` (``tempfile.mkdtemp(prefix=...)``)."""
    return f".{out.name}.tmp-{os.getpid()}-"


def remove_stale_temp_files(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files and folders in ``folder`` (of the output ``name``; of any output
    when None) left by runs that were killed.

    An output that a killed run had set aside (``.<name>.old-<pid>``) while ``name`` itself is
    missing is put back instead: the kill came between the two renames of :func:`replace_folder`.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.iterdir()):
        m = _TMP_RE.match(entry.name)
        if not m or (name is not None and m["name"] != name) or pid_alive(int(m["pid"])):
            continue
        if m["kind"] == "old" and not os.path.lexists(folder / m["name"]):
            os.replace(entry, folder / m["name"])
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def apply_umask(path: Path, mode: int = 0o777) -> None:
    """Give ``path`` (made by ``mkdtemp``/``mkstemp``, mode 0700/0600) the mode a plain
    ``mkdir`` (``mode`` 0o777) or ``open`` (0o666) would have."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(mode & ~umask)


@contextmanager
def atomic_path(path: str | os.PathLike, *, what: str | None = None, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it is renamed to ``path``
    (after ``fsync``), otherwise removed.  A full disk becomes a :class:`DiskFullError` naming
    ``what`` (default: the file's name)."""
    path = Path(path)
    tmp = path.with_name(f"{temp_prefix(path)}{os.urandom(4).hex()}")
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if is_disk_full(e) and not isinstance(e, DiskFullError):
            raise disk_full_error(path.parent, what or path.name, needed,
                                  after=f"{path.name} is unchanged") from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview, *, what: str | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); the file gets the mode a
    plain ``open`` would give it."""
    with atomic_path(path, what=what, needed=len(data)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, what: str | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), what=what)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system or
    the file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_folder(new: Path, dest: Path) -> None:
    """Put the finished folder ``new`` (a sibling of ``dest``) in place of ``dest``.

    When ``dest`` exists, the two are swapped in one step where the system can, so a reader sees
    the old folder or the new one; elsewhere the old one is first renamed to
    ``.<name>.old-<pid>``, which :func:`remove_stale_temp_files` puts back if the process is killed
    before the second rename.  The old folder is then removed."""
    if not os.path.lexists(dest):
        os.replace(new, dest)
        return
    if _exchange(new, dest):
        shutil.rmtree(new, ignore_errors=True)  # holds the old folder now
        return
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------- locks


class OutputLockedError(RuntimeError):
    """Another live process is writing the same output."""


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of an output file or folder: ``.<name>.lock`` beside it."""
    target = Path(os.path.abspath(target))
    return target.with_name(f".{target.name}.lock")


class OutputLock:
    """``with OutputLock(out):`` — this process is the only writer of ``out`` until the block ends.

    The lock file holds ``<pid>\\n<command line>\\n<start time>``.  It is an ``flock``: the kernel
    releases it when the process dies (``kill -9`` included), so the next run takes a stale lock
    over without asking.  A lock held by a live process raises :class:`OutputLockedError` at once,
    naming that process.
    """

    def __init__(self, target: str | os.PathLike, *, command: str | None = None):
        self.target = Path(os.path.abspath(target))
        self.path = lock_path(self.target)
        self.command = command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder(fd)
                os.close(fd)
                raise OutputLockedError(
                    f"{self.target}: another run is writing it ({holder}); wait for it to finish or stop it "
                    f"(lock file {self.path})") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed the file as we opened it: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{self.command}\n{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self._fd = fd
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        text = ""
        for _ in range(50):  # the holder writes its PID just after taking the lock
            text = os.pread(fd, 4096, 0).decode(errors="replace")
            if text.strip():
                break
            time.sleep(0.01)
        lines = text.splitlines()
        if not lines:
            return "PID unknown"
        return f"PID {lines[0]}" + (f": {lines[1]}" if len(lines) > 1 else "") + (
            f", started {lines[2]}" if len(lines) > 2 else "")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
