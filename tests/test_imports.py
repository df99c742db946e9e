"""What importing costs: the data package and ``housex --help`` stay off torch/transformers, while
``import housex`` still registers the HouseX classes and the track task once transformers is used;
and the package's modules import each other without a circle.

Each import check runs in a fresh interpreter (this test process has long imported torch).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

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


def _package_modules() -> dict[str, Path]:
    """Module name -> file, for every package folder that pyproject maps into ``housex``."""
    folders = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules = {}
    for package, folder in folders.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            modules[".".join((package, *parts[:-1 if parts[-1] == "__init__" else None]))] = path
    return modules


def _imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file (top level, functions,
    ``TYPE_CHECKING`` blocks alike): ``from X import y`` counts as ``X.y`` when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*package, base] if base else package)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


# Circles left to their own work (each names its modules); a new circle anywhere fails the test.
KNOWN_CIRCLES: list[list[str]] = []  # none left


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan): each is a circle or
    several circles through shared modules."""
    index, low, stack, found = {}, {}, [], []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while module not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle_in_the_package():
    """Imports flow one way (DESIGN.md): no module of the package imports itself through others.
    A circle is reported as the set of modules on it."""
    modules = _package_modules()
    graph = {name: _imported_modules(name, path, modules) for name, path in modules.items()}
    assert "housex.tag" in graph and "housex.dataset_script.builder" in graph
    assert "housex.tag" in graph["housex.commands.tag"]  # the walk sees imports inside functions
    circles = [sorted(c) for c in _circles(graph) if c not in [set(k) for k in KNOWN_CIRCLES]]
    assert not circles, f"import circles: {circles}"
