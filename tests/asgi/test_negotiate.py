"""Content negotiation for /tasks: HTML only when the Accept header ranks it above JSON."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_supervisor._asgi.negotiate import prefers_html

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        (BROWSER, True),
        ("text/html", True),
        ("TEXT/HTML ; Q=1", True),
        ("text/*", True),
        ("application/json, text/html", False),
        ("text/html;q=0.5, application/json", False),
        ("text/html, application/json;q=0.9", True),
        ("application/*;q=0.2, text/html", True),
        ("text/html;q=0", False),
        ("text/html;q=abc", False),
        ("text/html;q=2", False),
        ("text/html;q=nan", False),
        ("text/html;q=\u00b2", False),
        ("text/html;q=.", False),
        ("image/png", False),
        ("*/*;q=0.1, text/*;q=0.05", False),
    ],
)
def test_content_negotiation(accept: str | None, html: bool) -> None:
    """HTML only when the Accept header ranks it above JSON; JSON for ties and no header."""
    headers = [] if accept is None else [(b"accept", accept.encode("latin-1"))]
    assert prefers_html(headers) is html


def test_accept_split_over_two_headers() -> None:
    """Several Accept headers count as one list, as RFC 9110 says."""
    headers = [(b"accept", b"application/json;q=0.1"), (b"accept", b"text/html")]
    assert prefers_html(headers) is True


@given(accept=st.binary(max_size=120))
def test_any_accept_header_gets_an_answer(accept: bytes) -> None:
    """Whatever bytes the Accept header holds, negotiation answers instead of raising."""
    assert prefers_html([(b"accept", accept)]) in (True, False)


def test_parameters_other_than_q_do_not_count() -> None:
    """A media range's own parameters (``level=1``, ``charset``) leave its q-value at 1."""
    assert prefers_html([(b"accept", b"text/html;level=1;charset=utf-8")]) is True
    assert prefers_html([(b"accept", b"text/html;level=1;q=0.1, application/json")]) is False


def test_only_the_first_32_media_ranges_are_read() -> None:
    """A header of thousands of ranges costs no more than 32: a preference past them is not
    seen."""
    assert prefers_html([(b"accept", b"image/png, " * 31 + b"text/html")]) is True
    assert prefers_html([(b"accept", b"image/png, " * 32 + b"text/html")]) is False
