"""Refuse, in one clear sentence, to run on anything but an asyncio event loop.

The supervisor is built on asyncio tasks, events and signal handling. Under trio (hypercorn
``-k trio``, anyio's trio backend) every asyncio call fails with ``RuntimeError: no running
event loop``, which names neither the library nor the fix, and readiness would say
"starting" forever. So the middleware checks once, when the lifespan starts. (Requests
outside a lifespan are passed to the app untouched, on any loop.)
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .types import Receive, Send

__all__ = ["NotAsyncioError", "on_asyncio", "refuse_lifespan"]

logger = logging.getLogger("asgi_supervisor")

_logged = False


class NotAsyncioError(RuntimeError):
    """The app runs on an event loop that is not asyncio's."""


def on_asyncio() -> bool:
    """True when called from code running on an asyncio event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def explain() -> str:
    """The sentence users see: what runs the app, and what to do about it."""
    return (
        f"asgi-supervisor runs on asyncio; this app runs on {_running_library()}. Serve it "
        "on an asyncio loop (uvicorn, granian, hypercorn -k asyncio or -k uvloop, or anyio's "
        "asyncio backend), or remove SupervisorMiddleware."
    )


async def refuse_lifespan(receive: Receive, send: Send) -> None:
    """Answer the server's ``lifespan.startup`` with ``startup.failed``, then raise.

    Raising as well as answering is what Starlette's router does: some servers and test
    clients treat a lifespan as failed only when the app raises.

    Raises:
        NotAsyncioError: always, with the sentence of `explain`.
    """
    message = explain()
    _log_once(message)
    if (await receive())["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.failed", "message": message})
    raise NotAsyncioError(message)


def _log_once(message: str) -> None:
    global _logged
    if not _logged:
        _logged = True
        logger.error(message)


def _running_library() -> str:
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        return "trio"
    return "an event loop that is not asyncio's"
