"""What the command prints: no control character reaches a terminal; --json is one document."""

from __future__ import annotations

import io
import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_supervisor._cli.output import Result, emit, printable, table

# What a task name from the app's input could do to a terminal, and how it must print.
HOSTILE = [
    ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear the screen
    ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # set the window title (OSC 0, BEL)
    ("\x1b]52;c;cm0gLXJmIH4=\x1b\\", "\\x1b]52;c;cm0gLXJmIH4=\\x1b\\"),  # write the clipboard
    ("ok\rFAILED", "ok\\rFAILED"),  # overwrite the line
    ("\x9b31m", "\\x9b31m"),  # C1 CSI: a sequence without ESC
    ("\x85next", "\\x85next"),  # C1 NEL
    ("a\nb\tc\x00d\x7f", "a\\nb\\tc\\x00d\\x7f"),
    ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
    ("x\u2028y", "x\\u2028y"),  # line separator
]


@pytest.mark.parametrize(("hostile", "shown"), HOSTILE)
def test_control_characters_print_escaped(hostile: str, shown: str) -> None:
    """Each character a terminal would act on is written as its escape."""
    assert printable(hostile) == shown


@given(st.text())
def test_nothing_printable_leaves_a_control_character(text: str) -> None:
    """Whatever the text, what is printed holds no control character, and text without one
    prints unchanged."""
    shown = printable(text)
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in shown)
    if not any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cf") for c in text):
        assert shown == text


def test_a_table_aligns_the_escaped_cells() -> None:
    """Columns are as wide as their escaped cells; the last is not padded."""
    lines = table([("ID", "NAME", "WHERE"), ("1", "\x1b[2J", "-"), ("22", "ok", "x.py:3")])
    assert lines == ["ID  NAME     WHERE", "1   \\x1b[2J  -", "22  ok       x.py:3"]


def test_text_goes_to_stdout_and_notes_and_errors_to_stderr_escaped() -> None:
    """Lines on stdout, notes and the error on stderr, each escaped."""
    out, err = io.StringIO(), io.StringIO()
    result = Result(1, "not ready", ["state=\x1b[31m"], {"x": 1}, ["note \x07"])
    emit(result, command="health", url="u", as_json=False, out=out, err=err, error="bad \r")
    assert out.getvalue() == "state=\\x1b[31m\n"
    assert err.getvalue() == "asgi-supervisor: bad \\r\nasgi-supervisor: note \\x07\n"


def test_json_is_one_ascii_document_with_the_exit_status_and_the_answer() -> None:
    """With --json: one line of ASCII JSON on stdout (every control character escaped by
    JSON), holding the command, URL, exit status, outcome and fields; notes are left out,
    an error goes to stderr and into the document."""
    out, err = io.StringIO(), io.StringIO()
    answer = {"tasks": [{"name": "\x1b]52;c;x\x07 é"}]}
    result = Result(0, "listed", ["ignored"], {"http_status": 200, "answer": answer}, ["n"])
    emit(result, command="tasks", url="http://h", as_json=True, out=out, err=err)
    (line,) = out.getvalue().splitlines()
    assert line.isascii()
    assert not any(unicodedata.category(c) == "Cc" for c in line)
    assert json.loads(line) == {
        "command": "tasks",
        "url": "http://h",
        "exit": 0,
        "outcome": "listed",
        "http_status": 200,
        "answer": answer,
    }
    assert err.getvalue() == ""
    emit(
        Result(3, "unreachable"),
        command="drain",
        url="u",
        as_json=True,
        out=out,
        err=err,
        error="cannot reach u",
    )
    assert json.loads(out.getvalue().splitlines()[1])["error"] == "cannot reach u"
    assert err.getvalue() == "asgi-supervisor: cannot reach u\n"
