"""Where a command may write: outputs never are, contain or sit inside an input folder.

Every command that writes (``build --out``, ``synth --out``, training ``--output_dir``, timeline,
cues, tags, review, the app's exports) checks its output here *before* touching anything, so a
slip such as ``housex build --data-dir rel --out rel --overwrite`` is a one-line error instead of
a deleted release.  Paths are compared after resolving symlinks.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path


class OutputPathError(ValueError):
    """An output location that would overwrite, delete or pollute an input."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_path(
    out: str | os.PathLike,
    inputs: Iterable[str | os.PathLike],
    *,
    option: str = "--out",
) -> Path:
    """Refuse ``out`` when it is an input, contains an input, or sits inside an input folder.

    ``inputs`` are files or folders (missing ones are ignored).  Returns ``out`` resolved.
    Raises :class:`OutputPathError` naming the option and both paths.
    """
    target = Path(out).expanduser().resolve()
    for raw in inputs:
        src = Path(raw).expanduser()
        if not src.exists():
            continue
        src = src.resolve()
        if target == src:
            raise OutputPathError(f"{option} {out}: is the input {raw} itself; choose another output")
        if _inside(src, target):
            raise OutputPathError(f"{option} {out}: contains the input {raw}; writing there could delete it")
        if src.is_dir() and _inside(target, src):
            raise OutputPathError(f"{option} {out}: lies inside the input folder {raw}; write it elsewhere")
    return target


# ---------------------------------------------------------------- temporary build folders
# A temp folder is ``.<name>.tmp-<pid>-<random>`` next to the output: the pid tells a later run
# whether the process that made it is gone (killed), so that run can remove it.
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)(?:-.*)?$")


def temp_prefix(out: Path) -> str:
    return f".{out.name}.tmp-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_folders(out: Path) -> list[Path]:
    """Remove temp/backup folders of ``out`` left by earlier runs whose process is gone."""
    removed = []
    parent = out.parent
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        m = _TMP_RE.match(entry.name)
        if m and m["name"] == out.name and entry.is_dir() and not _pid_alive(int(m["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def apply_umask(folder: Path) -> None:
    """Give ``folder`` (made by ``mkdtemp``, mode 0700) the mode a plain ``mkdir`` would have."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
