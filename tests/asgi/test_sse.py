"""sse-starlette's shutdown flag: raised at the closing notice, lowered by whoever raised it,
left alone when the app turned sse-starlette's automatic drain off."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from sse_starlette.sse import AppStatus

from asgi_supervisor._asgi.sse import SseStarletteFlag


@pytest.fixture(autouse=True)
def app_status() -> Iterator[None]:
    """The flag is the whole process's: every test leaves it as it found it."""
    before = (AppStatus.should_exit, AppStatus.enable_automatic_graceful_drain)
    yield
    AppStatus.should_exit, AppStatus.enable_automatic_graceful_drain = before


def test_the_flag_is_raised_then_lowered() -> None:
    """Raised at the notice, so that every stream ends; lowered at the lifespan's end, so
    that the next lifespan in this process streams again (sse-starlette never lowers it)."""
    flag = SseStarletteFlag()
    flag.raise_flag()
    assert AppStatus.should_exit
    flag.lower_flag()
    assert not AppStatus.should_exit


def test_a_flag_someone_else_raised_is_theirs_to_lower() -> None:
    """Already raised (uvicorn's patched handler, or the app): we leave it raised."""
    AppStatus.should_exit = True
    flag = SseStarletteFlag()
    flag.raise_flag()
    flag.lower_flag()
    assert AppStatus.should_exit


def test_an_app_that_turned_the_automatic_drain_off_keeps_its_streams() -> None:
    """``disable_automatic_graceful_drain()`` means the app ends its streams itself."""
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]
    SseStarletteFlag().raise_flag()
    assert not AppStatus.should_exit


def test_without_sse_starlette_loaded_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    """An app that does not use sse-starlette: nothing to raise, nothing imported."""
    monkeypatch.delitem(sys.modules, "sse_starlette.sse")
    flag = SseStarletteFlag()
    flag.raise_flag()
    flag.lower_flag()
    assert "sse_starlette.sse" not in sys.modules
