"""What importing costs: the data package and ``housex --help`` stay off torch/transformers, while
``import housex`` still registers the HouseX classes and the track task once transformers is used.

Each check runs in a fresh interpreter (this test process has long imported torch).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("torch", "torchvision", "transformers")


def _run(script: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_data_package_and_cli_parser_do_not_import_torch_or_transformers():
    out = _run(
        f"""
        import importlib, json, pkgutil, sys
        import housex.dataset_script as data
        modules = [m.name for m in pkgutil.walk_packages(data.__path__, "housex.dataset_script.")]
        for name in modules:
            importlib.import_module(name)
        from housex.cli import build_parser
        help_text = build_parser().format_help()
        print(json.dumps({{"modules": modules, "help": help_text,
                           "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
        """
    )
    assert "housex.dataset_script.genres" in out["modules"] and "housex.dataset_script.builder" in out["modules"]
    assert "predict" in out["help"] and "timeline" in out["help"]  # the parser has its sub-commands
    assert out["heavy"] == []


REGISTERED = """
    import json
    from transformers import CONFIG_MAPPING, MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING
    from transformers.pipelines import PIPELINE_REGISTRY
    from housex.modeling import HouseXConfig
    print(json.dumps({"config": "housex" in CONFIG_MAPPING,
                      "model": HouseXConfig in MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING,
                      "task": "housex-track-classification" in PIPELINE_REGISTRY.get_supported_tasks()}))
"""


@pytest.mark.parametrize(
    "first",
    [
        "import housex",  # the README: import housex, then use transformers
        "import transformers; import housex",  # transformers already imported
        "import housex.modeling",  # a model module is the one that imports transformers
        "import housex.track_pipeline",
    ],
)
def test_transformers_knows_housex_after_import_housex(first):
    out = _run(first + "\n" + textwrap.dedent(REGISTERED))
    assert out == {"config": True, "model": True, "task": True}
