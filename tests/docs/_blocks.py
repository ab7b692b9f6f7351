"""The code blocks of README.md and docs/*.md, and how the tests run each one.

A Python block says how it is tested in its fence, with pytest-examples' ``key="value"``
settings in braces after the language, which MkDocs reads as attributes (it shows ``title``
above the block, and GitHub ignores them all):

- ```` ```python ````: a script, run in-process (`test_code_blocks.test_script_block_runs`).
- ```` ```python {title="main.py" test="serve"} ````: an app module, saved as its title and
  served by a real uvicorn as ``main:app``: it must become ready and stop cleanly on SIGTERM.
- ```` ```python {title="test_app.py" test="pytest"} ````: a test module, saved as its title
  and run by pytest in a fresh process: its tests must pass.
- ```` ```python {title="logging_setup.py" test="import"} ````: a module for other code to
  import, saved as its title and imported in a fresh process; a test of its own says what it
  does (the JSON logging setup: ``tests/servers/test_logging_server.py``).

Every titled block is saved next to the one under test, so one can import another by its
title. Every Python block is also checked by ruff, with the project's rules. In the other
blocks, each command line of ``asgi-supervisor`` (after ``$`` in a console block, or as an
``exec`` command in YAML) must parse with the command's own parser.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import yaml
from pytest_examples import CodeExample, find_examples

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
KINDS = ("script", "serve", "pytest", "import")
_FENCE = re.compile(
    r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
_COMMANDS = ("asgi-supervisor", ".venv/bin/asgi-supervisor")


def python_blocks() -> list[CodeExample]:
    """Every Python block of the pages, in page order."""
    return list(find_examples(*PAGES))


def kind(block: CodeExample) -> str:
    """How *block* is tested: one of `KINDS` (``script`` unless its fence says)."""
    return block.prefix_settings().get("test", "script")


def title(block: CodeExample) -> str | None:
    """The file name *block* is saved as, if its fence gives one."""
    return block.prefix_settings().get("title")


def of_kind(name: str) -> list[CodeExample]:
    """The Python blocks tested as *name*."""
    return [block for block in python_blocks() if kind(block) == name]


def save_titled_blocks(folder: Path) -> None:
    """Write every titled block into *folder* under its title."""
    for block in python_blocks():
        name = title(block)
        if name is not None:
            (folder / name).write_text(block.source)


def other_blocks() -> Iterator[tuple[str, str, str]]:
    """Every block that is not Python: its place (``docs/cli.md:7``), language and body."""
    for page in PAGES:
        text = page.read_text()
        for match in _FENCE.finditer(text):
            language = match["info"].strip().split(" ")[0].strip("{.")
            if language.startswith("py"):
                continue
            line = text[: match.start()].count("\n") + 1
            yield f"{page.relative_to(REPO)}:{line}", language, match["body"]


def command_lines() -> Iterator[tuple[str, list[str]]]:
    """Each ``asgi-supervisor`` command line of the pages, as its place and its arguments."""
    for where, language, body in other_blocks():
        if language in ("console", "shell", "bash", "sh"):
            for line in body.splitlines():
                if line.startswith("$ "):
                    words = shlex.split(line[2:], comments=True)
                    if words and words[0] in _COMMANDS:
                        yield where, words[1:]
        elif language in ("yaml", "yml"):
            for document in yaml.safe_load_all(body):
                for words in _string_lists(document):
                    if words and words[0] in _COMMANDS:
                        yield where, words[1:]


def _string_lists(node: object) -> Iterator[list[str]]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _string_lists(value)
    elif isinstance(node, list):
        if node and all(isinstance(item, str) for item in node):
            yield [str(item) for item in node]
        for item in node:
            yield from _string_lists(item)
