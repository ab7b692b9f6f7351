"""A griffe extension: reST literal blocks in docstrings render as fenced code.

The package's docstrings introduce examples the reST way (``Example::`` and an indented
block), which reads well in ``help()`` and an editor. Markdown has no such thing: the API
pages would show "Example::" and an unhighlighted block. This rewrites each literal block
as a fenced one, Python when it parses as Python and plain text otherwise (a shell command,
a tree), the marker as reST renders it ("Example::" reads "Example:"). The source is not
changed; only what mkdocstrings renders.
"""

from __future__ import annotations

import ast
import textwrap
from typing import Any

import griffe

__all__ = ["LiteralBlocks", "fence_literal_blocks"]


class LiteralBlocks(griffe.Extension):
    """Rewrite the literal blocks of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite *obj*'s docstring in place, before mkdocstrings parses it."""
        if obj.docstring is not None:
            obj.docstring.value = fence_literal_blocks(obj.docstring.value)


def fence_literal_blocks(text: str) -> str:
    """*text* with each ``::`` paragraph's indented block turned into a fenced block."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        body_end = _literal_block_end(lines, i)
        if body_end is None:
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        marker = line.rstrip()
        # As reST renders the marker: "Example::" -> "Example:", "Text ::" -> "Text", "::" -> "".
        if marker.strip() != "::":
            out.append(marker[:-3] if marker.endswith(" ::") else marker[:-1])
        body = textwrap.dedent("\n".join(lines[i + 1 : body_end])).strip("\n")
        language = "python" if _is_python(body) else "text"
        out += ["", f"{indent}```{language}"]
        out += [f"{indent}{row}" if row else "" for row in body.split("\n")]
        out.append(f"{indent}```")
        if body_end < len(lines) and lines[body_end].strip():
            out.append("")
        i = body_end
    return "\n".join(out)


def _literal_block_end(lines: list[str], i: int) -> int | None:
    """Where the literal block that line *i* introduces ends, or None if it introduces none."""
    if not lines[i].rstrip().endswith("::"):
        return None
    depth = _depth(lines[i])
    end = i + 1
    while end < len(lines) and (not lines[end].strip() or _depth(lines[end]) > depth):
        end += 1
    while end > i + 1 and not lines[end - 1].strip():
        end -= 1  # trailing blank lines belong to what follows
    if end == i + 1:
        return None
    return end


def _depth(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_python(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True
