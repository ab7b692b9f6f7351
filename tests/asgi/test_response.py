"""The whole answers of the middleware's own endpoints: length, no-store, and HEAD."""

from __future__ import annotations

import datetime

import pytest
from starlette.types import Message

from asgi_supervisor._asgi.response import send_body, send_json


class Sent:
    """An ASGI ``send`` that keeps the messages."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = self.messages[0]["headers"]
        return headers


@pytest.mark.parametrize(("method", "body"), [("GET", b"<p>hi</p>"), ("HEAD", b"")])
async def test_a_body_goes_out_whole_with_its_length_and_never_cached(
    method: str, body: bytes
) -> None:
    """One start and one body message; the length is the body's even for HEAD, which sends
    none; the extra headers follow the content headers."""
    sent = Sent()
    await send_body(sent, method, 201, b"text/html", b"<p>hi</p>", [(b"x-extra", b"1")])
    assert [m["type"] for m in sent.messages] == ["http.response.start", "http.response.body"]
    assert sent.messages[0]["status"] == 201
    assert sent.headers == [
        (b"content-type", b"text/html"),
        (b"content-length", b"9"),
        (b"cache-control", b"no-store"),
        (b"x-extra", b"1"),
    ]
    assert sent.messages[1] == {"type": "http.response.body", "body": body}


async def test_json_is_compact_and_a_value_json_cannot_hold_is_its_str() -> None:
    """No spaces after separators; a datetime (or any odd value) is sent as ``str()``
    instead of failing the answer."""
    sent = Sent()
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    await send_json(sent, "GET", 200, {"state": "ready", "at": when, "n": [1, 2]})
    body = sent.messages[1]["body"]
    assert body == b'{"state":"ready","at":"2024-01-02 03:04:05+00:00","n":[1,2]}'
    assert (b"content-type", b"application/json") in sent.headers
    assert (b"content-length", str(len(body)).encode()) in sent.headers
