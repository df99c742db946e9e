"""One string that names a trained model: recorded in Label Studio predictions and library tags.

``model_version(folder)`` hashes the files that decide a prediction (``config.json``,
``model.safetensors``, ``preprocessor_config.json``), so a retrained or re-configured model gets a
new version and a renamed/copied folder keeps it.  Inference settings that change the output
(clips per drop, seed) are appended when given.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

VERSIONED_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")


def model_version(folder: str | os.PathLike, **settings) -> str:
    """``housex-<12 hex of sha256>`` of the model folder's files, then ``/key=value`` per setting.

    Raises ``FileNotFoundError`` naming the folder when it is not a ``save_pretrained`` folder.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a model folder (expected config.json written by save_pretrained)")
    digest = hashlib.sha256()
    for name in VERSIONED_FILES:
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    suffix = "".join(f"/{k}={settings[k]}" for k in sorted(settings))
    return f"housex-{digest.hexdigest()[:12]}{suffix}"
