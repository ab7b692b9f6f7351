"""Every code block of README.md and docs/ runs, as its fence says (see `tests.docs._blocks`):
a block that drifts from the code fails here."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pytest_examples import CodeExample, EvalExample
from pytest_examples.config import ExamplesConfig

from asgi_supervisor import Config
from docs.hooks.reference import command_parser
from tests.docs import _blocks
from tests.docs._blocks import REPO
from tests.servers._process import ServerProcess


@pytest.fixture
def in_folder(tmp_path: Path) -> Path:
    """*tmp_path* holding every titled block, for a fresh process to run from."""
    _blocks.save_titled_blocks(tmp_path)
    return tmp_path


def _environment(folder: Path) -> dict[str, str]:
    # The blocks import each other from the folder, and the package from this checkout.
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}


def test_every_block_says_how_it_is_tested() -> None:
    """Each Python block's fence names a known kind, and each block saved as a file has a
    unique title ending in .py."""
    blocks = _blocks.python_blocks()
    assert blocks, "found no Python block at all"
    for block in blocks:
        assert _blocks.kind(block) in _blocks.KINDS, f"{block}: test= is not one of {_blocks.KINDS}"
        if _blocks.kind(block) != "script":
            assert str(_blocks.title(block)).endswith(".py"), f"{block}: title='x.py' is missing"
    titles = [name for block in blocks if (name := _blocks.title(block)) is not None]
    assert len(titles) == len(set(titles)), f"two blocks share a title: {titles}"


@pytest.mark.parametrize("block", _blocks.python_blocks(), ids=str)
def test_block_passes_ruff(block: CodeExample, eval_example: EvalExample) -> None:
    """The block passes ruff with the project's rules: no undefined or unused name, imports
    sorted, lines of at most 100 characters."""
    # Not set_config(): its type hints leave out the project's target, py311.
    eval_example.config = ExamplesConfig(ruff_line_length=100, target_version="py311")
    eval_example.lint_ruff(block)


@pytest.mark.parametrize("block", _blocks.of_kind("script"), ids=str)
def test_script_block_runs(block: CodeExample) -> None:
    """The block runs in-process, as a script, without an error (its asserts hold)."""
    # Compiled under the page's name with the page's line numbers, so that a traceback
    # shows the page's own lines. (pytest-examples' runner rewrites tracebacks in a way
    # pytest 9 cannot report: an error in a block became an INTERNALERROR.)
    code = compile("\n" * (block.start_line - 1) + block.source, str(block.path), "exec")
    exec(code, {"__name__": "__main__"})


@pytest.mark.parametrize("block", _blocks.of_kind("import"), ids=str)
def test_module_block_imports(block: CodeExample, in_folder: Path) -> None:
    """The block, saved as its title, imports in a fresh interpreter without an error."""
    module = str(_blocks.title(block)).removesuffix(".py")
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=in_folder, env=_environment(in_folder), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("block", _blocks.of_kind("pytest"), ids=str)
def test_test_block_passes(block: CodeExample, in_folder: Path) -> None:
    """The block, saved as its title, is a test module whose tests pass under pytest."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(_blocks.title(block))],
        cwd=in_folder, env=_environment(in_folder), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b[1-9]\d* passed\b", result.stdout), result.stdout


@pytest.mark.server
@pytest.mark.timeout(90)
@pytest.mark.parametrize("block", _blocks.of_kind("serve"), ids=str)
def test_app_block_serves_and_stops_cleanly(block: CodeExample, in_folder: Path) -> None:
    """1. the block, saved as its title, is served by uvicorn; 2. it answers ready; 3. SIGTERM
    stops it: the report is clean and the server exits."""
    module = str(_blocks.title(block)).removesuffix(".py")
    env = {"PYTHONPATH": _environment(in_folder)["PYTHONPATH"]}
    with ServerProcess(f"{module}:app", tmp_path=in_folder, env=env) as server:
        # Where the endpoints are by default, whatever that is.
        ready = httpx.get(f"{server.base_url}{Config().path_prefix}/health/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        server.signal(signal.SIGTERM)
        server.wait_exit(timeout=40)
    output = server.output()
    assert re.search(r"shutdown report: signal SIGTERM, clean, ", output), output


def test_every_command_line_parses() -> None:
    """Each ``asgi-supervisor`` command line of the pages is one its parser accepts."""
    parser = command_parser()
    lines = list(_blocks.command_lines())
    assert lines, "found no asgi-supervisor command line"
    for where, arguments in lines:
        try:
            parser.parse_args(arguments)
        except (SystemExit, Exception) as exc:  # argparse exits; a stricter parser may raise
            pytest.fail(f"{where}: `asgi-supervisor {' '.join(arguments)}` does not parse: {exc!r}")


def test_the_command_parser_is_the_one_the_command_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    """`command_parser` finds the parser ``asgi-supervisor`` runs with: its help is the
    command's ``--help``, word for word."""
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps to the terminal's width
    result = subprocess.run(
        [sys.executable, "-m", "asgi_supervisor", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    parser = command_parser()
    assert parser.prog == "asgi-supervisor"
    assert parser.format_help() == result.stdout
