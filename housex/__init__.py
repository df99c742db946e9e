"""HouseX-v2: house sub-genre classification, the Hugging Face way.

Importing ``housex`` registers the HouseX classes with transformers' Auto factories and the
``housex-track-classification`` pipeline task for whole tracks (so it imports torch and
transformers).  ``housex.classify_track(path, model=folder)`` and ``housex.timeline(path,
model=folder)`` are loaded lazily from ``housex.inference`` and ``housex.djset``.
"""

from __future__ import annotations

from housex.modeling import register_auto_classes as _register_auto_classes

# Contract: `import housex` makes AutoConfig/AutoModel…/pipeline know model_type "housex",
# and pipeline() know the whole-track task.
_register_auto_classes()

from housex.track_pipeline import register_track_pipeline as _register_track_pipeline  # noqa: E402

_register_track_pipeline()

_LAZY = {
    "classify_track": "housex.inference",
    "classify_clips": "housex.inference",
    "timeline": "housex.djset",
    "load_classifier": "housex.inference",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'housex' has no attribute {name!r}")
