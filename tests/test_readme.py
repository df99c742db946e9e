"""Every command the README shows must be a real, parseable command of this project.

The demo and the other tests run them on data; this test keeps the README honest when a flag,
sub-command, Make target or config file is renamed.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line.replace("<user>", "someone"))
    return lines


COMMANDS = _commands()
# Commands quoted in the text (`housex build --folds 5`, `accelerate launch ...`): a reader copies
# them too, so they are held to the same checks (a bare `housex predict` names the sub-command).
INLINE = [c.replace("<user>", "someone") for c in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", README)
          if c.startswith(("housex ", "accelerate launch ", "make ", "python -m bench"))]


def test_readme_starts_with_the_two_commands():
    head = README.split("\n## ", 1)[0]
    assert "make demo" in head and "make test" in head


@pytest.mark.parametrize("line", [c for c in COMMANDS if c.startswith("make ")])
def test_make_targets_exist(line):
    makefile = (ROOT / "Makefile").read_text()
    target = line.split()[1]
    assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), f"Makefile has no target {target!r}"


@pytest.mark.parametrize("line", [c for c in COMMANDS if c.startswith("housex ")])
def test_housex_commands_parse(line):
    from housex.cli import build_parser

    argv = shlex.split(line)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse reports the bad flag on stderr
        pytest.fail(f"README command does not parse: {line} (exit {e.code})")
    assert callable(args._run)


TAGGING = [c for c in COMMANDS if c.startswith("accelerate launch") and " -m housex.cli tag " in f"{c} "]


@pytest.mark.parametrize("line", TAGGING)
def test_module_launch_commands_parse(line):
    from housex.cli import build_parser

    argv = shlex.split(line)
    module = argv[argv.index("-m") + 1]
    assert module == "housex.cli", f"README launches an unknown module: {line}"
    build_parser().parse_args(argv[argv.index("-m") + 2:])


@pytest.mark.parametrize("line", [c for c in COMMANDS + INLINE if c.startswith("accelerate launch") and c not in TAGGING])
def test_training_commands_parse(line, tmp_path, monkeypatch):
    """As written: the config file, the module or script, and every flag it needs (a dataset)."""
    from housex.trainer.arguments import parse_args

    argv = shlex.split(line)[2:]
    # -q: a failed run's error is its one line, not repeated in the launcher's traceback
    assert argv[0] in ("-q", "--quiet"), f"README training command without accelerate's -q: {line}"
    argv = argv[1:]
    if argv[0] in ("-m", "--module"):  # accelerate launch -q -m housex.trainer.run CONFIG ...
        module, config, *rest = argv[1:]
        assert importlib.util.find_spec(module), module
    else:
        script, config, *rest = argv
        assert (ROOT / script).is_file(), script
    assert (ROOT / config).is_file(), config
    monkeypatch.chdir(tmp_path)  # output_dir in the README is relative
    model_args, data_args, training_args = parse_args([str(ROOT / config), *rest])
    assert data_args.dataset_name and training_args.output_dir


@pytest.mark.parametrize("line", sorted({c for c in INLINE if c.startswith(("housex ", "make ", "python -m bench"))}))
def test_inline_commands_name_real_commands_and_flags(line):
    argv = shlex.split(line)
    if argv[0] == "make":
        assert re.search(rf"^{re.escape(argv[1])}:", (ROOT / "Makefile").read_text(), flags=re.M), line
        return
    if argv[0] == "python":
        names = argv[3:] if argv[2] == "bench" else [argv[2].split(".")[-1]]
        for name in names:
            assert (ROOT / "bench" / f"{name if name.startswith('bench_') else 'bench_' + name}.py").is_file(), line
        return
    import argparse

    from housex.cli import build_parser

    parser, words = build_parser(), argv[1:]
    while True:  # down the sub-commands (housex baseline probe ...)
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or not words or words[0].startswith("-"):
            break
        assert words[0] in subs[0].choices, f"README names an unknown sub-command {words[0]!r}: {line}"
        parser, words = subs[0].choices[words[0]], words[1:]
    known = {o for action in parser._actions for o in action.option_strings}
    unknown = [a for a in words if a.startswith("--") and a not in known]
    assert not unknown, f"README quotes unknown options {unknown}: {line}"


def test_every_readme_command_was_checked():
    unchecked = [c for c in COMMANDS if not c.startswith(("make ", "housex ", "accelerate launch"))]
    assert not unchecked, f"README commands no test checks: {unchecked}"


@pytest.mark.parametrize("block", _blocks("python"))
def test_python_snippets_name_real_things(block):
    tree = ast.parse(block)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "housex":
            import housex

            assert hasattr(housex, node.attr), f"housex has no {node.attr}"
