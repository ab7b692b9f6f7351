"""sse-starlette's own shutdown flag, raised at the closing notice.

sse-starlette ends every ``EventSourceResponse`` when it sees the server shutting down: it
polls uvicorn's ``Server.should_exit`` (found through the SIGTERM handler) and its own
``AppStatus.should_exit`` every 0.5 s. With the supervisor chained in front of the server's
signal handler, uvicorn hears the signal only once the drain is over, so an endless stream
ran on until the deadline cut it (its client saw a reset), and elsewhere (hypercorn,
granian) sse-starlette never sees a shutdown at all.

So at the closing notice the middleware raises ``AppStatus.should_exit``, sse-starlette's
documented flag: each stream ends within the watcher's 0.5 s, and one that begins later ends
at once. sse-starlette ends a stream by cancelling its sender, so the response never sends
its last message; the middleware ends the body for it (see `SupervisorMiddleware`), and the
client sees the stream end. An app that turned sse-starlette's automatic drain off
(``AppStatus.disable_automatic_graceful_drain()``) keeps its streams: the flag is left alone.

The flag belongs to the whole process and nothing in sse-starlette lowers it (its issue
#211): the flag we raised is lowered when the lifespan ends, so that a later lifespan in the
same process (a test client's next test) streams again. sse-starlette is never imported
here: if the app uses it, it is loaded already.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["SseStarletteFlag"]

_MODULE = "sse_starlette.sse"


class SseStarletteFlag:
    """sse-starlette's ``AppStatus.should_exit``, as one lifespan raises and lowers it."""

    __slots__ = ("_raised",)

    def __init__(self) -> None:
        self._raised: Any = None  # the AppStatus class whose flag we raised

    def raise_flag(self) -> None:
        """End sse-starlette's streams, unless the app turned its automatic drain off."""
        status = getattr(sys.modules.get(_MODULE), "AppStatus", None)
        if status is None or not getattr(status, "enable_automatic_graceful_drain", True):
            return
        if not status.should_exit:
            status.should_exit = True
            self._raised = status

    def lower_flag(self) -> None:
        """Lower the flag if we raised it; nothing otherwise."""
        status, self._raised = self._raised, None
        if status is not None:
            status.should_exit = False
