"""What the command prints: lines a terminal shows as text, or one JSON document for scripts.

Whatever the server sends may come from the app's input (a task's name, an error message), and
a terminal obeys the control characters in it: ESC starts a sequence that can clear the
screen, set the window title or (OSC 52) write the clipboard, CR overwrites the line, BEL and
the C1 controls do their own things. So every line goes through `printable`, which writes each
such character as an escape (``\\x1b``, ``\\r``, ``\\u202e``), the bidirectional overrides of
Unicode included, since they reorder what a reader sees. Backslashes stay as they are: the
text is for reading, and ``--json`` gives the exact strings (JSON escapes every control
character by itself, and `emit` writes ASCII only).

With ``--json`` the command prints one JSON document on stdout, whatever happens, errors
included: the command, the URL, the exit status and its one-word outcome, then the server's
answer (``http_status``, ``answer``) or the error. Errors go to stderr as well, as lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["EXIT_CODES", "Result", "emit", "printable", "table"]

OK, NOT_READY, USAGE, UNREACHABLE, REFUSED, UNEXPECTED = 0, 1, 2, 3, 4, 5

# The exit statuses, their one-word outcome in --json output (commands that pass or fail by
# the server's state say theirs: "drained", "not ready"), and what --help says of each.
EXIT_CODES: dict[int, tuple[str, str]] = {
    OK: ("ok", "done: drained, ready, the table or the link was printed"),
    NOT_READY: ("not ready", "not drained (some worker process still had work), or not ready"),
    USAGE: ("usage", "usage error: a bad option, URL or token (nothing was sent)"),
    UNREACHABLE: ("unreachable", "the server is unreachable: refused, timed out, bad address"),
    REFUSED: ("refused", "the server refused the token (401/403), or no token was found"),
    UNEXPECTED: ("unexpected", "the server answered something unexpected (a redirect, not JSON)"),
}

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 and C1 controls and DEL, the line and paragraph separators, and the bidirectional
# marks, embeddings, overrides and isolates (a name could otherwise read backwards).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """*text* with every character a terminal would act on written as an escape."""
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass(slots=True)
class Result:
    """What a command did: its exit status and outcome, its lines of text for stdout, its
    JSON fields, and notes for a person (on stderr, not with ``--json``)."""

    exit: int
    outcome: str
    lines: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def emit(
    result: Result,
    *,
    command: str | None,
    url: str | None,
    as_json: bool,
    out: TextIO,
    err: TextIO,
    error: str | None = None,
) -> None:
    """Print *result*: its lines on *out* and its notes on *err*, or, *as_json*, one document
    on *out*; *error* (a failure's sentence) goes to *err* either way."""
    if error is not None:
        print(f"asgi-supervisor: {printable(error)}", file=err)
    if as_json:
        document: dict[str, Any] = {
            "command": command,
            "url": url,
            "exit": result.exit,
            "outcome": result.outcome,
            **result.fields,
        }
        if error is not None:
            document["error"] = error
        print(json.dumps(document, default=str), file=out)
        return
    for line in result.lines:
        print(printable(line), file=out)
    for note in result.notes:
        print(f"asgi-supervisor: {printable(note)}", file=err)


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """*rows* (the first is the heading) as aligned columns; the last column is not padded.

    Cells are made printable first, so an escape widens its column as it will be shown.
    """
    cells = [[printable(cell) for cell in row] for row in rows]
    if not cells:
        return []
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return lines
