"""Under trio, the middleware fails with one clear sentence, never "no running event loop"."""

from __future__ import annotations

import pytest
import trio
from starlette.types import Message

from asgi_supervisor._asgi import asyncio_only as _asyncio_only
from asgi_supervisor._asgi.asyncio_only import NotAsyncioError
from tests._inprocess import bare_app, quiet_supervisor

SENTENCE = "asgi-supervisor runs on asyncio; this app runs on trio"


@pytest.fixture(autouse=True)
def log_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the first failure of its process, which is the one logged."""
    monkeypatch.setattr(_asyncio_only, "_logged", False)


def test_lifespan_startup_fails_with_the_sentence_and_raises() -> None:
    """1. the server sends lifespan.startup under trio; 2. the app answers startup.failed
    with the sentence; 3. and raises it, as Starlette's router does."""
    app = bare_app(quiet_supervisor())
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    async def lifespan() -> None:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    with pytest.raises(NotAsyncioError, match=SENTENCE):
        trio.run(lifespan)
    assert len(sent) == 1
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert sent[0]["message"].startswith(SENTENCE)


def test_requests_without_a_lifespan_reach_the_app_under_trio() -> None:
    """With lifespan off, a request under trio is passed to the app, untouched and
    unsupervised, as on asyncio: no "no running event loop" from the middleware."""
    app = bare_app(quiet_supervisor())
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    async def request() -> None:
        await app(scope, receive, send)

    trio.run(request)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 404  # the empty Starlette app's answer
