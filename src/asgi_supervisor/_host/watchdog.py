"""The hard deadline: a thread that ends the process when the event loop cannot.

Every deadline the supervisor keeps is kept by the event loop. A handler stuck in sync code
(``time.sleep``, a blocking driver) stops the loop, and with it every timer: uvicorn's own
grace period then means nothing. This thread does not need the loop. When the deadline plus
a margin has passed and the process is still alive, it has the shutdown report logged (its
one line says the watchdog ended the process), logs every thread's stack and the task the
loop was running, and calls ``os._exit``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable

from asgi_supervisor._core.stacks import format_stack

__all__ = ["Watchdog"]

logger = logging.getLogger("asgi_supervisor")

EXIT_STATUS = 70  # EX_SOFTWARE: the process did not stop by itself in time


class Watchdog:
    """Ends the process at a wall-clock deadline unless disarmed first.

    Arming twice keeps the earlier deadline; `disarm` stops the thread.

    Args:
        loop: the loop whose tasks the dump shows.
        exit_status: the process's exit status when the watchdog ends it.
        last_words: called in the watchdog's thread right before the dump and the exit (the
            shutdown logs its report there, saying the watchdog ended the process); an
            exception it raises is logged and the exit goes on.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        exit_status: int = EXIT_STATUS,
        *,
        last_words: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop
        self._exit_status = exit_status
        self._last_words = last_words
        self._deadline: float | None = None
        # Re-entrant: `arm` also runs inside a signal handler, which may interrupt the main
        # thread while it holds this very lock in another `arm` or `disarm`.
        self._changed = threading.Condition(threading.RLock())
        self._thread: threading.Thread | None = None

    @property
    def armed(self) -> bool:
        """True while a deadline is set."""
        return self._deadline is not None

    def arm(self, deadline: float) -> None:
        """Fire at *deadline* (``time.monotonic()`` seconds) unless disarmed before."""
        with self._changed:
            if self._deadline is not None and self._deadline <= deadline:
                return
            self._deadline = deadline
            self._changed.notify()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="asgi-supervisor-watchdog", daemon=True
            )
            self._thread.start()

    def disarm(self) -> None:
        """Never fire; the process is ending by itself."""
        with self._changed:
            self._deadline = None
            self._changed.notify()

    def _run(self) -> None:
        with self._changed:
            while self._deadline is not None:
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            if self._deadline is None:
                self._thread = None
                return
        self._fire()

    def _fire(self) -> None:
        if self._last_words is not None:
            try:
                self._last_words()
            except Exception:  # read from another thread while the loop may run: go on
                logger.exception("the watchdog could not log the shutdown report")
        running = asyncio.current_task(self._loop) if not self._loop.is_closed() else None
        lines = [
            "asgi-supervisor watchdog: the shutdown deadline has passed and the process is "
            "still alive: the event loop is blocked, a shutdown step hangs, or an abandoned "
            f"task holds up the exit. Exiting with status {self._exit_status}.",
            f"Task running on the loop: {running!r}",
        ]
        lines.extend(_task_chains(self._loop))
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            lines.append(f"Thread {names.get(ident, ident)!s}:")
            lines.extend(line.rstrip("\n") for line in traceback.format_stack(frame))
        report = "\n".join(lines)
        logger.critical(report)
        # Logging handlers may be buffered or broken; stderr is the last word.
        try:
            sys.stderr.write(report + "\n")
            sys.stderr.flush()
        finally:
            os._exit(self._exit_status)


def _task_chains(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Every task of *loop* with the await chain it waits in, as /tasks walks it, and on
    Python 3.14 and later the tasks awaiting it.

    A thread stack shows only the loop's own frames; a hung lifespan shutdown or a stuck task
    is a coroutine parked at an ``await``, which only this walk names. Read from another
    thread while the loop may run: the set of tasks can change under us, so retry briefly.
    """
    for _ in range(3):
        try:
            tasks = list(asyncio.all_tasks(loop))
            break
        except RuntimeError:  # "Set changed size during iteration"
            continue
    else:
        return ["Tasks: could not be listed (the loop kept changing them)."]
    lines = [f"Tasks on the loop: {len(tasks)}"]
    for task in tasks[:200]:
        lines.append(f"Task {task.get_name()!r}:")
        try:
            lines.extend(f"  {line}" for line in format_stack(task))
        except Exception as exc:  # a frame changed under us; the others still matter
            lines.append(f"  (stack unavailable: {exc!r})")
    return lines
