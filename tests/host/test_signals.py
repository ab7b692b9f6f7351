"""Chaining onto the server's signal handlers: hold the signal, pass it on, restore."""

from __future__ import annotations

import asyncio
import logging
import signal
import types
from collections.abc import Iterator

import pytest
import uvloop

from asgi_supervisor._host.signals import DRAIN_FIRST, SignalChain


@pytest.fixture
def saved_handlers() -> Iterator[None]:
    """Put the handlers of the signals these tests raise back as they were, whatever the test
    did."""
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
    before = {sig: signal.getsignal(sig) for sig in signals}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


class Heard:
    """A signal callback that keeps the signals it got and lets a test wait for them."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self._changed = asyncio.Event()

    def __call__(self, sig: int) -> None:
        self.signals.append(sig)
        self._changed.set()

    def python_handler(self, sig: int, frame: types.FrameType | None) -> None:
        """The same, as a handler for `signal.signal`."""
        self(sig)

    async def wait_for(self, count: int) -> None:
        """Return once *count* signals came; fail after 5 s."""
        async with asyncio.timeout(5):
            while len(self.signals) < count:
                self._changed.clear()
                await self._changed.wait()


async def loop_caught_up(loop: asyncio.AbstractEventLoop) -> None:
    """Return once *loop* has run the handler of every signal raised before this call.

    A signal's C handler writes its number to the loop's wakeup fd, and the loop reads the
    numbers in order and schedules their handlers in that order: once a SIGUSR1 raised now
    is handled, no earlier signal's loop handler is left to run. What waits for it asserts
    on a state that has settled, not on a pause.
    """
    handled = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, handled.set)
    try:
        signal.raise_signal(signal.SIGUSR1)
        async with asyncio.timeout(5):
            await handled.wait()
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


@pytest.mark.usefixtures("saved_handlers")
async def test_python_handler_is_held_then_forwarded_then_restored() -> None:
    """1. the server's handler is chained; 2. a signal reaches us, not it; 3. forward calls it;
    4. restore puts it back."""
    server = Heard()
    signal.signal(signal.SIGTERM, server.python_handler)
    ours = Heard()
    chain = SignalChain(asyncio.get_running_loop(), ours)
    assert chain.install()
    signal.raise_signal(signal.SIGTERM)
    # A Python handler runs inside raise_signal: had the server's still been installed, it
    # would have its signal by now.
    assert server.signals == []
    await ours.wait_for(1)
    assert ours.signals == [signal.SIGTERM]
    assert server.signals == []
    chain.forward(signal.SIGTERM)
    assert server.signals == [signal.SIGTERM]
    chain.restore()
    assert signal.getsignal(signal.SIGTERM) == server.python_handler


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
    server = Heard()
    loop.add_signal_handler(signal.SIGTERM, server, signal.SIGTERM)
    try:
        ours = Heard()
        chain = SignalChain(loop, ours)
        chain.install()
        signal.raise_signal(signal.SIGTERM)
        await ours.wait_for(1)
        await loop_caught_up(loop)
        assert ours.signals == [signal.SIGTERM]
        assert server.signals == []
        chain.forward(signal.SIGTERM)
        assert server.signals == [signal.SIGTERM]
        chain.restore()
        signal.raise_signal(signal.SIGTERM)
        await server.wait_for(2)
        assert server.signals == [signal.SIGTERM, signal.SIGTERM]
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
        server = Heard()
        loop.add_signal_handler(signal.SIGTERM, server, signal.SIGTERM)
        try:
            ours = Heard()
            chain = SignalChain(loop, ours)
            chain.install()
            signal.raise_signal(signal.SIGTERM)
            await ours.wait_for(1)
            await server.wait_for(1)
            chain.forward(signal.SIGTERM)
            # Had forwarding raised the signal again, the loop would have handled it by now.
            await loop_caught_up(loop)
            chain.restore()
            return ours.signals, server.signals
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    with caplog.at_level(logging.WARNING, logger="asgi_supervisor"):
        ours, server_got = uvloop.run(main())
    assert ours == [signal.SIGTERM]
    assert server_got == [signal.SIGTERM]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("SIGTERM reaches the server at once on this event loop (uvloop.Loop)")
    assert DRAIN_FIRST in warning  # the recipe that works: a preStop exec, never an httpGet


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
    assert DRAIN_FIRST in warning  # the recipe that works: a preStop exec, never an httpGet
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


async def test_off_the_main_thread_the_warning_names_a_drain_that_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server running the app off the main thread: nothing is installed, and the warning
    recommends the CLI's drain as a preStop exec (a kubelet httpGet cannot POST nor send the
    token), in the words the Kubernetes recipe uses."""
    chain = SignalChain(asyncio.get_running_loop(), lambda sig: None)
    with caplog.at_level(logging.WARNING, logger="asgi_supervisor"):
        assert await asyncio.to_thread(chain.install) is False
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("not on the main thread: signals are not watched")
    assert DRAIN_FIRST in warning
    assert "asgi-supervisor drain http://127.0.0.1:PORT" in DRAIN_FIRST
    assert "as a preStop exec hook: an httpGet hook cannot POST nor send the token" in DRAIN_FIRST
