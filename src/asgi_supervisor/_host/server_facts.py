"""What the server running this process tells the supervisors in it.

A server integration (`asgi_supervisor.gunicorn`) knows things the supervisor cannot see
from inside the app: how long the server lets a worker live after SIGTERM before killing it,
and whether another process keeps accepting on the listening socket this one shares. It
registers them here, once per process; every supervisor in the process reads them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import NamedTuple

__all__ = [
    "KILL_MARGIN",
    "KillTimeout",
    "ServerFacts",
    "kill_timeout",
    "listener_taken_over",
    "register",
    "replaces_exited_workers",
    "wait_stopped_accepting",
]

logger = logging.getLogger("asgi_supervisor")

# What the app's own lifespan shutdown, which runs after the supervisor's deadline, and the
# server's last steps may need before the kill (`_supervisor.budget` warns below it).
KILL_MARGIN = 2.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServerFacts:
    """What a server integration knows about the process it runs.

    Args:
        server: the server's name, for messages (``"gunicorn"``).
        kill_timeout: seconds the server waits after SIGTERM before it kills the process.
        kill_timeout_setting: the server's name for that setting, as users set it.
        listener_taken_over: answers, when a signal arrives, whether another process keeps
            accepting on the listening socket this one shares (a gunicorn reload); then the
            signal goes to the server at once, so this process stops accepting.
        stopped_accepting: set once the server has closed its listener and its idle
            connections, so that only requests already in flight can still arrive.
        replaces_exited_workers: the server starts a fresh worker when this one exits
            without being told to (gunicorn's master does), so after a drain that no signal
            followed this process must not end itself: its fresh replacement would be ready.
    """

    server: str
    kill_timeout: float | None = None
    kill_timeout_setting: str = ""
    listener_taken_over: Callable[[], bool] | None = None
    stopped_accepting: asyncio.Event | None = None
    replaces_exited_workers: bool = False


_facts: ServerFacts | None = None


def register(facts: ServerFacts) -> None:
    """Record what the server running this process knows; a later call replaces it."""
    global _facts
    _facts = facts


class KillTimeout(NamedTuple):
    """A server's kill timeout, as its users set it."""

    server: str
    setting: str
    seconds: float


def kill_timeout() -> KillTimeout | None:
    """How long the server lets this process live after SIGTERM, if an integration said."""
    if _facts is None or _facts.kill_timeout is None:
        return None
    return KillTimeout(_facts.server, _facts.kill_timeout_setting, _facts.kill_timeout)


def replaces_exited_workers() -> bool:
    """True when the server would replace this process with a fresh one if it exited."""
    return _facts is not None and _facts.replaces_exited_workers


def listener_taken_over() -> bool:
    """True when another process keeps accepting on our listening socket; never raises."""
    if _facts is None or _facts.listener_taken_over is None:
        return False
    try:
        return _facts.listener_taken_over()
    except Exception:
        logger.exception("could not tell whether the listening socket is taken over")
        return False


async def wait_stopped_accepting(deadline: float) -> None:
    """Wait until the server has stopped accepting, at most until *deadline*.

    Args:
        deadline: a ``time.monotonic()`` value.

    Returns at once when no integration can tell (the caller's own steps still bound it).
    """
    if _facts is None or _facts.stopped_accepting is None:
        return
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(loop.time() + deadline - time.monotonic()):
            await _facts.stopped_accepting.wait()
    except TimeoutError:
        logger.warning("the server did not stop accepting by the drain's deadline")
