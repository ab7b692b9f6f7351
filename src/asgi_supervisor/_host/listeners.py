"""One look at the TCP sockets this process listens on, for everything that needs them.

The presence in the listener folders (`presence`: a folder per address and port, where the
process group and the local admin token meet) needs this process's listening sockets.
Reading them from ``/proc`` (`tcp_table`) costs milliseconds on a host with many sockets, so
the `ListenerWatch` looks in a thread, never on the loop, one look at a time, and every
subscriber is told the answer of every look that finds a listener.

* **When.** uvicorn and gunicorn workers hold their parent's socket before the lifespan
  startup; granian's workers and single-process servers bind only after it. So the watch
  starts when the app's startup is over (`Run.start`), looks at once, then 0.05 s later,
  the delay doubling up to 12.8 s (about 25 s in all). Once a listener is known it goes on
  only through the 3.2 s step (about 6 s in: a server may open another, and each address and
  port gets its folder), and it stops when nobody is subscribed. An endpoint called while no
  token is known asks for a look at once (`LocalTokens.refresh_soon`, at most once a
  second), which joins the look under way, if any.
* **Who.** Each lifespan's `Presence` makes one watch, starts it when the app's startup is
  over and closes it when the lifespan ends: the schedule stops, the subscribers are dropped
  and a look under way is waited for, so nothing of it runs after the lifespan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .tcp_table import Listener, endpoint_text, listening_sockets

__all__ = ["ListenerWatch"]

logger = logging.getLogger("asgi_supervisor")

# Seconds to wait before each look, from the start of the schedule.
_DELAYS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8)
# Longer delays are waited for only while no listener is known.
_ONCE_FOUND_UNTIL = 3.2
# A look is milliseconds of /proc reads; closing waits this long for one under way.
_CLOSE_TIMEOUT = 2.0

OnFound = Callable[[frozenset[Listener]], None]


class ListenerWatch:
    """Finds the TCP sockets this process listens on, on one bounded schedule, for all.

    Example::

        watch = ListenerWatch()
        watch.subscribe(found, not_found)               # told of each look that finds one
        watch.start()                                   # in the loop: look now, then backing off
        found = await asyncio.shield(watch.look())      # look now, or join the look under way
        await watch.aclose()                            # at the end of the lifespan

    Subscribers are called in the loop and must not raise (an exception is logged).

    Args:
        find: the lookup, run in a thread; `tcp_table.listening_sockets` unless a test
            passes its own.
    """

    def __init__(self, find: Callable[[], set[Listener]] = listening_sockets) -> None:
        self._find = find
        # The answer of the last look; empty before the first.
        self.listeners: frozenset[Listener] = frozenset()
        # Every listener a look found since the watch was made: a server closes its listener
        # when it stops, and the shutdown still needs the ports it served (`ServerStop`).
        self.seen: frozenset[Listener] = frozenset()
        self._subscribers: dict[OnFound, Callable[[], None] | None] = {}
        self._schedule: asyncio.Task[None] | None = None
        self._looking: asyncio.Task[frozenset[Listener]] | None = None

    def __repr__(self) -> str:
        found = ",".join(sorted(endpoint_text(listener.endpoint) for listener in self.listeners))
        running = "watching" if self._schedule is not None else "idle"
        subscribers = len(self._subscribers)
        return f"<ListenerWatch {running} listeners={found or 'none'} subscribers={subscribers}>"

    def subscribe(self, on_found: OnFound, on_none: Callable[[], None] | None = None) -> None:
        """Call ``on_found(listeners)`` after every look that finds one, from now on, and
        ``on_none()`` if the schedule ends without finding any."""
        self._subscribers[on_found] = on_none

    def unsubscribe(self, on_found: OnFound) -> None:
        """Stop telling *on_found*; nothing if it is not subscribed."""
        self._subscribers.pop(on_found, None)

    def start(self) -> None:
        """Look now, then on the schedule; in the loop. Nothing if already watching."""
        if self._schedule is None:
            self._schedule = asyncio.get_running_loop().create_task(
                self._watch(), name="asgi-supervisor listening ports"
            )

    def look(self) -> asyncio.Task[frozenset[Listener]]:
        """Look now, or join the look under way; in the loop.

        The task ends once every subscriber was told, with the listeners found. Await it
        through `asyncio.shield`: cancelling it stops no thread, and the next look would
        start while this one still reads ``/proc``.
        """
        if self._looking is None:
            self._looking = asyncio.get_running_loop().create_task(
                self._look(), name="asgi-supervisor listening ports look"
            )
        return self._looking

    async def aclose(self) -> None:
        """Stop the schedule, drop every subscriber and forget the listeners; wait for a look
        under way, for 2 s at most (a stuck one then ends alone, telling nobody).

        Cancellation: the caller's cancellation is raised once the schedule has stopped.
        """
        self._subscribers.clear()
        schedule, self._schedule = self._schedule, None
        if schedule is not None:
            schedule.cancel()
            await asyncio.wait({schedule})
        if self._looking is not None:
            await asyncio.wait({self._looking}, timeout=_CLOSE_TIMEOUT)
        self.listeners = frozenset()

    async def _watch(self) -> None:
        try:
            for delay in _DELAYS:
                if not self._subscribers or (self.listeners and delay > _ONCE_FOUND_UNTIL):
                    return
                await asyncio.sleep(delay)
                await asyncio.shield(self.look())
            if not self.listeners:
                for on_none in list(self._subscribers.values()):
                    if on_none is not None:
                        _tell(on_none)
        finally:
            if self._schedule is asyncio.current_task():
                self._schedule = None

    async def _look(self) -> frozenset[Listener]:
        try:
            # /proc/net/tcp lists every socket of the network namespace: never on the loop,
            # which serves requests meanwhile.
            found = frozenset(await asyncio.to_thread(self._find))
        finally:
            self._looking = None
        self.listeners = found
        self.seen |= found
        if found:
            for on_found in list(self._subscribers):
                _tell(on_found, found)
        return found


def _tell(subscriber: Callable[..., None], *args: frozenset[Listener]) -> None:
    # One subscriber's bug must not keep the others from hearing.
    try:
        subscriber(*args)
    except Exception:
        logger.exception("telling %r of the listening sockets failed", subscriber)
