"""HouseX-v2: house sub-genre classification, the Hugging Face way.

``import housex`` is light (no torch, no transformers): the data package (``housex.dataset_script``)
and the ``housex`` command line import neither.  It arranges that the HouseX classes are
registered with transformers' Auto factories, and the ``housex-track-classification`` pipeline
task for whole tracks, as soon as transformers is imported (at once when it already is): so
``import housex`` then ``pipeline("audio-classification", model=folder)`` works, in either import
order.  This is the one place that registers them, for every entry point (every ``housex.*``
module, the trainer included, imports this package first).  ``housex.classify_track(path, model=folder)`` and ``housex.timeline(path, model=folder)``
are loaded lazily from ``housex.inference`` and ``housex.djset``.
"""

from __future__ import annotations

import importlib

from wrapt import register_post_import_hook


def _register_auto_classes(modeling) -> None:
    # Any import of housex.modeling registers the Auto classes (also when it is the module that
    # imports transformers: the hook below then finds it half-imported and leaves it to this one).
    modeling.register_auto_classes()


def _register_with_transformers(_transformers) -> None:
    # A module still being imported (the one whose import pulled transformers in) is returned
    # half-done and registers itself when it finishes: housex.modeling through the hook above,
    # housex.track_pipeline at its end.
    importlib.import_module("housex.modeling")
    importlib.import_module("housex.track_pipeline")


_LAZY = {
    "classify_track": "housex.inference",
    "classify_clips": "housex.inference",
    "timeline": "housex.djset",
    "load_classifier": "housex.inference",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'housex' has no attribute {name!r}")


# Last: when transformers is already imported the second hook runs now, on a complete housex.
register_post_import_hook(_register_auto_classes, "housex.modeling")
register_post_import_hook(_register_with_transformers, "transformers")
