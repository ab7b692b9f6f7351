"""The generated reference pages say what the code has: every public name on the API page,
every setting and its variable on the configuration page, every command and option on the
command-line page (see ``docs/hooks/reference.py``); and the README stays a landing page."""

from __future__ import annotations

import argparse
import dataclasses
import html
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from mkdocs.exceptions import PluginError

from asgi_supervisor import Config
from docs.hooks import reference
from tests.docs._blocks import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation, built as `make docs` builds it (strict), into a folder of its own."""
    folder = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(folder)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


def _ids(page: Path) -> set[str]:
    return {html.unescape(found) for found in re.findall(r'\bid="([^"]+)"', page.read_text())}


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_every_public_name_is_on_the_api_page(site: Path) -> None:
    """Each name of ``asgi_supervisor.__all__`` and of each public module's ``__all__`` is
    rendered on the API page, under that name or under another name of the same object."""
    package = reference._package()
    rendered = set()
    for anchor in _ids(site / "api" / "index.html"):
        if anchor.startswith(f"{reference.PACKAGE}."):
            rendered.add(package[anchor.removeprefix(f"{reference.PACKAGE}.")].canonical_path)
    public = reference.public_objects()
    import asgi_supervisor

    assert {f"asgi_supervisor.{name}" for name in asgi_supervisor.__all__} <= public.keys()
    missing = sorted(name for name, defined in public.items() if defined not in rendered)
    assert not missing, f"public names missing from the API page: {missing}"


def test_a_public_name_left_off_the_api_page_is_added_by_the_build() -> None:
    """The ``api`` part renders, under one heading, each public object no block of the page
    renders; and nothing when they all are."""
    page = (REPO / "docs" / "api.md").read_text()
    assert reference.api_part(page) == ""
    without = page.replace("::: asgi_supervisor.Kind\n", "")
    assert reference.api_part(without) == "## Other public names\n\n::: asgi_supervisor.Kind\n"


def test_every_setting_and_its_variable_is_on_the_configuration_page(site: Path) -> None:
    """Each field of `Config` has its section (an anchor named after it) with its
    environment variable, and its description from `Config`'s docstring."""
    page = site / "configuration" / "index.html"
    ids, text = _ids(page), " ".join(_text(page).split())
    for field in dataclasses.fields(Config):
        assert field.name in ids, f"no section for {field.name}"
        assert f"{reference.ENV_PREFIX}{field.name.upper()}" in text
    for name, description in reference._attribute_descriptions("Config").items():
        words = " ".join(description.replace("``", "").split())
        assert words[1:60] in text, f"the description of {name} is not on the page"


class _Recording(Mapping[str, str]):
    """An environment with no variable set, that remembers which ones were asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __getitem__(self, key: str) -> str:
        self.asked.append(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_from_env_reads_the_variables_the_configuration_page_names() -> None:
    """`Config.from_env` reads exactly one variable per field, named as the page says."""
    environ = _Recording()
    Config.from_env(environ)
    named = {reference.ENV_PREFIX + field.name.upper() for field in dataclasses.fields(Config)}
    assert set(environ.asked) == named


def test_a_setting_without_a_description_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field of `Config` with no entry in its docstring's ``Attributes:`` stops the build,
    naming the field and what to do."""
    described = reference._attribute_descriptions("Config")
    del described["retry_after"]
    monkeypatch.setattr(reference, "_attribute_descriptions", lambda name: described)
    with pytest.raises(PluginError, match=r"\['retry_after'\] have no entry"):
        reference.configuration_part()


def _commands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{parser.prog} {name}", sub


def test_every_command_and_option_is_on_the_command_line_page(site: Path) -> None:
    """Each command of the parser has its section, and each of its options and arguments is
    named there."""
    page = site / "cli" / "index.html"
    ids, text = _ids(page), _text(page)
    for command, parser in _commands(reference.command_parser()):
        assert "-".join(command.split()) in ids, f"no section for {command}"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue  # every command has --help, and the page says so once
            for name in action.option_strings or [str(action.metavar or action.dest)]:
                assert name in text, f"{command}: {name} is not on the page"


def test_the_command_line_page_has_no_terminal_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    """From Python 3.14 on, argparse colours help when the environment asks for colour (or
    stdout is a terminal): the generated page holds the words, never escape sequences."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("PYTHON_COLORS", raising=False)
    part = reference.cli_part()
    assert "--timeout" in part
    assert "\x1b" not in part, "the command-line reference carries ANSI escape sequences"


def test_the_command_line_page_does_not_depend_on_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """argparse wraps usage lines to the terminal's width: the page is the same whoever
    builds it, in a narrow terminal, a wide one or none."""
    pages = set()
    for columns in ("40", "250"):
        monkeypatch.setenv("COLUMNS", columns)
        pages.add(reference.cli_part())
    assert len(pages) == 1, "the command-line reference changes with the terminal's width"


def test_the_readme_is_a_landing_page() -> None:
    """README.md has at most 250 lines, the two commands and the Quickstart, and links to
    the documentation's pages rather than holding them."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "\n## Quickstart\n" in readme
    assert "make run" in readme
    assert "make test" in readme
    for page in ("getting-started", "shutdown", "configuration", "cli", "api"):
        assert f"(docs/{page}.md)" in readme
