"""Chaining onto the server's signal handlers: hold the signal, pass it on, restore."""

from __future__ import annotations

import asyncio
import logging
import signal
import types
from collections.abc import Iterator

import pytest
import uvloop

from asgi_supervisor._host.signals import SignalChain


@pytest.fixture
def saved_handlers() -> Iterator[None]:
    """Put SIGTERM's and SIGINT's handlers back as they were, whatever the test did."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


async def _until(condition: list[int], count: int) -> None:
    for _ in range(100):
        if len(condition) >= count:
            return
        await asyncio.sleep(0.005)


@pytest.mark.usefixtures("saved_handlers")
async def test_python_handler_is_held_then_forwarded_then_restored() -> None:
    """1. the server's handler is chained; 2. a signal reaches us, not it; 3. forward calls it;
    4. restore puts it back."""
    server_got: list[int] = []

    def server_handler(sig: int, frame: types.FrameType | None) -> None:
        server_got.append(sig)

    signal.signal(signal.SIGTERM, server_handler)
    ours: list[int] = []
    chain = SignalChain(asyncio.get_running_loop(), ours.append)
    assert chain.install()
    signal.raise_signal(signal.SIGTERM)
    await _until(ours, 1)
    assert ours == [signal.SIGTERM]
    assert server_got == []
    chain.forward(signal.SIGTERM)
    assert server_got == [signal.SIGTERM]
    chain.restore()
    assert signal.getsignal(signal.SIGTERM) is server_handler


@pytest.mark.usefixtures("saved_handlers")
async def test_restore_leaves_a_later_handler_alone() -> None:
    """If someone chained after us, restoring would unhook them: we leave theirs installed."""
    chain = SignalChain(asyncio.get_running_loop(), lambda sig: None)
    chain.install()

    def later(sig: int, frame: types.FrameType | None) -> None:
        return None

    signal.signal(signal.SIGTERM, later)
    chain.restore()
    assert signal.getsignal(signal.SIGTERM) is later


@pytest.mark.usefixtures("saved_handlers")
async def test_loop_signal_handler_is_taken_over_and_given_back() -> None:
    """A handler set with loop.add_signal_handler (hypercorn -w 0) runs only when forwarded."""
    loop = asyncio.get_running_loop()
    server_got: list[int] = []
    loop.add_signal_handler(signal.SIGTERM, server_got.append, signal.SIGTERM)
    try:
        ours: list[int] = []
        chain = SignalChain(loop, ours.append)
        chain.install()
        signal.raise_signal(signal.SIGTERM)
        await _until(ours, 1)
        await asyncio.sleep(0.02)
        assert ours == [signal.SIGTERM]
        assert server_got == []
        chain.forward(signal.SIGTERM)
        assert server_got == [signal.SIGTERM]
        chain.restore()
        signal.raise_signal(signal.SIGTERM)
        await _until(server_got, 2)
        assert server_got == [signal.SIGTERM, signal.SIGTERM]
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def test_install_off_the_main_thread_changes_nothing() -> None:
    """Signal handlers can only be set on the main thread; elsewhere we only say so."""
    loop = asyncio.get_running_loop()
    before = signal.getsignal(signal.SIGTERM)
    installed = await asyncio.to_thread(SignalChain(loop, lambda sig: None).install)
    assert installed is False
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.usefixtures("saved_handlers")
def test_a_loop_that_keeps_its_signals_gets_a_warning_naming_the_recipe(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1. uvloop holds SIGTERM (hypercorn -k uvloop); 2. installing says, as a warning, that
    the server hears signals at once and names the drain endpoint; 3. the server does hear
    the signal at once, and forwarding does not deliver it twice."""

    async def main() -> tuple[list[int], list[int]]:
        loop = asyncio.get_running_loop()
        server_got: list[int] = []
        loop.add_signal_handler(signal.SIGTERM, server_got.append, signal.SIGTERM)
        try:
            ours: list[int] = []
            chain = SignalChain(loop, ours.append)
            chain.install()
            signal.raise_signal(signal.SIGTERM)
            await _until(ours, 1)
            await _until(server_got, 1)
            chain.forward(signal.SIGTERM)
            await asyncio.sleep(0.02)
            chain.restore()
            return ours, server_got
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    with caplog.at_level(logging.WARNING, logger="asgi_supervisor"):
        ours, server_got = uvloop.run(main())
    assert ours == [signal.SIGTERM]
    assert server_got == [signal.SIGTERM]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("SIGTERM reaches the server at once on this event loop (uvloop.Loop)")
    assert "preStop httpGet to /drain" in warning


@pytest.mark.usefixtures("saved_handlers")
async def test_a_child_that_gets_no_signals_gets_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGINT ignored and no SIGTERM handler (hypercorn's child process): a warning says
    signals give no early trigger, and names the drain endpoint."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    chain = SignalChain(asyncio.get_running_loop(), lambda sig: None)
    with caplog.at_level(logging.WARNING, logger="asgi_supervisor"):
        chain.install()
    chain.restore()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("no server signal handler in this process, and SIGINT is ignored")
    assert "preStop httpGet to /drain" in warning
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
