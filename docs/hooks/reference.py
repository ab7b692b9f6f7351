"""MkDocs hooks: the reference parts of the documentation, generated from the code at each build.

A page asks for a part with a line of its own, ``<!-- reference: NAME -->``, which the build
replaces (GitHub shows the marker as nothing):

- ``configuration``: every field of `asgi_supervisor.Config`, with its environment variable,
  type and default, described by its entry in the ``Attributes:`` of `Config`'s docstring;
- ``cli``: every command, argument and option of the parser the ``asgi-supervisor`` command
  parses with, with its help;
- ``api``: a mkdocstrings block (``::: name``) for each public object the page does not
  already render: the names of ``asgi_supervisor.__all__`` and of the ``__all__`` of each
  public module (``exceptions``, ``testing``, ``gunicorn``, and any added later).

So a setting, an option or a public name added to the code is on its page at the next build,
and one that cannot be documented (a field with no description, a marker naming no part)
fails the build, which `make docs` runs strict, with a sentence saying what to do.
``tests/docs/test_references.py`` checks the built pages against the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from unittest import mock

import griffe
import yaml
from mkdocs.exceptions import PluginError

__all__ = [
    "ENV_PREFIX",
    "api_part",
    "cli_part",
    "command_parser",
    "configuration_part",
    "on_page_markdown",
    "public_objects",
    "rendered_objects",
]

PACKAGE = "asgi_supervisor"
# Config.from_env reads each setting from this prefix and the field's name in capitals;
# tests/docs/test_references.py holds from_env to it.
ENV_PREFIX = "ASGI_SUPERVISOR_"
_MARKER = re.compile(r"^<!-- reference: (?P<part>[\w-]+) -->$", re.MULTILINE)
_DIRECTIVE = re.compile(r"^::: (?P<name>\S+)\n(?P<options>(?:(?:    .*)?\n)*)", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace each ``<!-- reference: NAME -->`` line of a page with its generated part."""
    parts: dict[str, Callable[[str], str]] = {
        "configuration": lambda page: configuration_part(),
        "cli": lambda page: cli_part(),
        "api": api_part,
    }

    def generate(match: re.Match[str]) -> str:
        part = match["part"]
        if part not in parts:
            raise _error(f"<!-- reference: {part} --> names no part; use one of {sorted(parts)}.")
        return parts[part](markdown)

    return _MARKER.sub(generate, markdown)


# -- configuration ---------------------------------------------------------------------------


def configuration_part() -> str:
    """A table of every setting, then a section for each, from `Config`'s fields and docstring."""
    from asgi_supervisor import Config

    described = _attribute_descriptions("Config")
    fields = dataclasses.fields(Config)
    names = [field.name for field in fields]
    undescribed = [name for name in names if name not in described]
    if undescribed:
        raise _error(
            f"Config's fields {undescribed} have no entry in the Attributes: section of its "
            "docstring; describe each setting there (one line or more, as for the others)."
        )
    stale = [name for name in described if name not in names]
    if stale:
        raise _error(
            f"Config's docstring describes {stale}, which are not its fields; remove them."
        )
    rows = ["| setting | environment variable | default |", "|---|---|---|"]
    sections = []
    for field in fields:
        variable = ENV_PREFIX + field.name.upper()
        default = _default(field)
        rows.append(f"| [`{field.name}`](#{field.name}) | `{variable}` | {default} |")
        sections.append(
            f"### `{field.name}` {{ #{field.name} }}\n\n"
            f"`{field.type}`, default {default}; from the environment: `{variable}`.\n\n"
            f"{_sentence(described[field.name])}\n"
        )
    return "\n".join(rows) + "\n\n" + "\n".join(sections)


def _sentence(text: str) -> str:
    """A docstring's description, which starts in lower case, as a paragraph of its own."""
    return text[:1].upper() + text[1:]


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        return f"`{field.default!r}`"
    if field.default_factory is not dataclasses.MISSING:
        return f"`{field.default_factory()!r}`"
    return "none (required)"


def _attribute_descriptions(name: str) -> dict[str, str]:
    """The ``Attributes:`` entries of the public class *name*'s docstring, by attribute."""
    docstring = _package()[name].docstring
    if docstring is None:
        raise _error(f"{PACKAGE}.{name} has no docstring; the reference is made from it.")
    return {
        item.name: item.description
        for section in docstring.parse("google")
        if isinstance(section, griffe.DocstringSectionAttributes)
        for item in section.value
    }


# -- command line ----------------------------------------------------------------------------


class _Parsed(BaseException):
    """Carries the parser out of the command; a BaseException, so no handler of it can catch
    it on the way."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def command_parser() -> argparse.ArgumentParser:
    """The parser that the ``asgi-supervisor`` command parses its arguments with.

    Found by running the command's entry point (``asgi_supervisor.__main__.main``) with
    `argparse.ArgumentParser.parse_args` stopped at its first call: the reference documents
    that parser wherever the command builds it, and nothing runs past the parsing.
    """
    from asgi_supervisor.__main__ import main

    def stop(parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> NoReturn:
        raise _Parsed(parser)

    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", stop),
        mock.patch.object(sys, "argv", ["asgi-supervisor"]),
    ):
        try:
            main()
        except _Parsed as parsed:
            return parsed.parser
    raise _error(
        "asgi_supervisor.__main__.main returned without parsing its arguments with argparse."
    )


def cli_part() -> str:
    """The command, then each subcommand: its usage, description, arguments and options."""
    parser = command_parser()
    # argparse wraps usage to the terminal's width (COLUMNS, else 80 columns when there is
    # no terminal): the page is the same whoever builds it, wrapped as with no terminal.
    with mock.patch.dict(os.environ, {"COLUMNS": "80"}):
        sections = [_command_section(parser, parser.prog)]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    sections.append(_command_section(sub, f"{parser.prog} {name}"))
    return "\n".join(sections)


def _command_section(parser: argparse.ArgumentParser, title: str) -> str:
    if sys.version_info >= (3, 14):
        # From 3.14 argparse colours its help on a terminal or under FORCE_COLOR; a page
        # would then carry the escape sequences.
        parser.color = False
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        invocation = formatter._format_action_invocation(action)
        rows.append(f"| `{invocation}` | {_cell(_help(formatter, action))} |")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                link = _anchor(f"{parser.prog} {choice.dest}")
                summary = _sentence(_cell(choice.help or ""))
                rows.append(f"| [`{choice.dest}`](#{link}) | {summary} |")
    text = [f"### `{title}` {{ #{_anchor(title)} }}", ""]
    if parser.description:
        text += [_sentence(_cell(parser.description)), ""]
    text += ["```text", parser.format_usage().strip(), "```", ""]
    if rows:
        text += ["| argument | meaning |", "|---|---|", *rows, ""]
    if parser.epilog:
        text += ["```text", parser.epilog.strip(), "```", ""]
    return "\n".join(text)


def _help(formatter: argparse.HelpFormatter, action: argparse.Action) -> str:
    text = formatter._expand_help(action) if action.help else ""
    if action.choices is not None and action.metavar is not None:
        text += f" (one of: {', '.join(map(str, action.choices))})"
    shows_default = action.default not in (None, False, argparse.SUPPRESS) and action.nargs != 0
    if shows_default and "default" not in text:
        text += f" (default: {action.default})"
    return _sentence(text.strip()) or "—"


def _anchor(command: str) -> str:
    """``asgi-supervisor drain`` -> ``asgi-supervisor-drain``."""
    return "-".join(command.split())


def _cell(text: str) -> str:
    """*text* on one line, safe inside a Markdown table cell."""
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", r"\|")


# -- API ---------------------------------------------------------------------------------------


def public_objects() -> dict[str, str]:
    """Every public object, by the name users import it by, to where it is defined.

    The names of ``asgi_supervisor.__all__``, then those of each public module's ``__all__``
    (``asgi_supervisor.testing.LifespanManager``); one object under two names (an exception
    in ``__all__`` and in ``exceptions``) appears twice, with one definition.
    """
    package = _package()
    names = {f"{PACKAGE}.{name}": package[name].canonical_path for name in _exports(package)}
    for module in _public_modules():
        names[module.path] = module.path
        for name in _exports(module):
            names[f"{module.path}.{name}"] = module[name].canonical_path
    return names


def rendered_objects(markdown: str) -> set[str]:
    """Where the objects that a page's ``:::`` blocks render are defined.

    A module's block renders its ``__all__`` too, unless its options say ``members: false``
    or list the members to render.
    """
    package = _package()
    rendered = set()
    for directive in _DIRECTIVE.finditer(markdown):
        target = _resolve(package, directive["name"])
        rendered.add(target.canonical_path)
        options = (yaml.safe_load(directive["options"]) or {}).get("options", {})
        members = options.get("members", True)
        if target.is_module and members is not False:
            names = members if isinstance(members, list) else _exports(target)
            rendered.update(target[str(name)].canonical_path for name in names)
    return rendered


def api_part(markdown: str) -> str:
    """A ``:::`` block for each public object the page renders nowhere, under one heading."""
    rendered = rendered_objects(markdown)
    missing = {}
    for name, defined in public_objects().items():
        if defined not in rendered and defined not in missing:
            missing[defined] = name
    if not missing:
        return ""
    blocks = "\n\n".join(f"::: {name}" for name in missing.values())
    return f"## Other public names\n\n{blocks}\n"


@functools.cache
def _package() -> griffe.Module:
    """The package as mkdocstrings sees it: loaded from its source, never imported."""
    import asgi_supervisor

    source = Path(asgi_supervisor.__file__).parents[1]
    loaded = griffe.load(
        PACKAGE, search_paths=[str(source)], docstring_parser="google", resolve_aliases=True
    )
    assert isinstance(loaded, griffe.Module)
    return loaded


def _exports(module: griffe.Object | griffe.Alias) -> list[str]:
    """The names of *module*'s ``__all__``."""
    return [str(name) for name in module.exports or ()]


def _public_modules() -> Iterator[griffe.Module]:
    for name, module in _package().modules.items():
        if not name.startswith("_"):
            yield module


def _resolve(package: griffe.Module, name: str) -> griffe.Object | griffe.Alias:
    if name != PACKAGE and not name.startswith(f"{PACKAGE}."):
        raise _error(f"::: {name} is outside {PACKAGE}; the API page documents this package only.")
    try:
        return package if name == PACKAGE else package[name.removeprefix(f"{PACKAGE}.")]
    except KeyError:
        raise _error(
            f"::: {name} names nothing in {PACKAGE}; fix the name or remove the block."
        ) from None


def _error(message: str) -> PluginError:
    """What stops the build (strict or not), saying which part of the reference and why."""
    return PluginError(f"docs/hooks/reference.py: {message}")
