"""Where a command may write: outputs never are, contain or sit inside an input folder.

Every command that writes (``build --out``, ``synth --out``, training ``--output_dir``, timeline,
cues, tags, review, the app's exports) checks its output here *before* touching anything, so a
slip such as ``housex build --data-dir rel --out rel --overwrite`` is a one-line error instead of
a deleted release.  Paths are compared after resolving symlinks.  How outputs are then written
(lock files, atomic renames, free-space checks) is :mod:`.safe_write`'s.
"""

from __future__ import annotations

import os
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
