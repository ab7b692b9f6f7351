"""Run one worker under its restart policy: backoff with jitter, a cap per period, give up.

The worker's loop (`run_worker`) is the one writer of its `WorkerState` and last error: it
is the only code that sees every crash, restart and ending. The registry reads them.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .errors import StartupError
from .registry import Kind, Registry, TaskRecord
from .worker_state import WorkerState

__all__ = ["Restart", "StartWindow", "WorkerSpec", "run_worker", "start_workers"]

logger = logging.getLogger("asgi_supervisor")


class Restart(enum.Enum):
    """When a worker that ended is started again."""

    NEVER = "never"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """How to run and restart one worker; validated on registration."""

    fn: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...]
    name: str
    restart: Restart
    critical: bool
    max_restarts: int
    restart_period: float
    backoff_delay: float
    backoff_max_delay: float

    def __post_init__(self) -> None:
        if not callable(self.fn) or not (
            inspect.iscoroutinefunction(self.fn)
            or inspect.iscoroutinefunction(getattr(self.fn, "__call__", None))  # noqa: B004
        ):
            raise TypeError(
                f"Worker {self.fn!r} is not an async function; define it with `async def` so "
                "the supervisor can cancel it at an await."
            )
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts={self.max_restarts!r} must be 0 or more.")
        for name in ("restart_period", "backoff_delay", "backoff_max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name}={value!r} must be 0 or more seconds.")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before restart number *attempt* (1-based): doubling, jittered."""
        ceiling = min(self.backoff_max_delay, self.backoff_delay * 2 ** (attempt - 1))
        # "Equal jitter": never less than half the ceiling, so a crash loop still backs off,
        # yet replicas that crashed together do not restart in lockstep.
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))


def parse_restart(value: str | Restart) -> Restart:
    """The `Restart` named by *value*.

    Raises:
        ValueError: *value* names no policy.
    """
    if isinstance(value, Restart):
        return value
    try:
        return Restart(value)
    except ValueError:
        choices = ", ".join(repr(r.value) for r in Restart)
        raise ValueError(
            f"restart={value!r} is not a restart policy; use one of {choices}."
        ) from None


class StartWindow:
    """Open while a worker runs its first step: a failure then fails the lifespan startup."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


async def run_worker(
    spec: WorkerSpec,
    record: TaskRecord,
    *,
    stopping: asyncio.Event,
    window: StartWindow,
    on_give_up: Callable[[TaskRecord], None],
) -> None:
    """Run *spec* until it ends for good, restarting it per its policy.

    Cancellation: propagates from the worker's own ``await`` (its ``finally`` runs there) and
    ends the loop, ``stopped``; a backoff sleep in progress is cut short by ``stopping`` as
    well.

    Raises:
        StartupError: the worker raised before the supervisor finished starting.
    """
    try:
        await _restart_loop(spec, record, stopping, window, on_give_up)
    except asyncio.CancelledError:
        record.state = WorkerState.STOPPED
        raise
    except BaseException as exc:
        # It failed while starting or stopping (the loop noted the error), or raised what no
        # loop catches, such as KeyboardInterrupt: its final failure either way.
        if not isinstance(exc, Exception):
            record.last_error = f"{type(exc).__name__}: {exc}"
        record.state = WorkerState.FAILED
        raise


async def _restart_loop(
    spec: WorkerSpec,
    record: TaskRecord,
    stopping: asyncio.Event,
    window: StartWindow,
    on_give_up: Callable[[TaskRecord], None],
) -> None:
    recent: collections.deque[float] = collections.deque()
    while True:
        record.state = WorkerState.RUNNING
        try:
            await spec.fn(*spec.args)
        except Exception as exc:
            record.last_error = f"{type(exc).__name__}: {exc}"
            if stopping.is_set():
                # Its cleanup raised while it was being stopped: a failure of the shutdown,
                # which the report counts; restarting would be wrong now.
                logger.error(
                    "worker %r failed while stopping: %s",
                    spec.name,
                    record.last_error,
                    exc_info=exc,
                    extra={"worker": spec.name},
                )
                raise
            if window.open:
                raise StartupError(f"worker {spec.name!r} failed while starting: {exc!r}") from exc
            logger.error(
                "worker %r crashed: %s",
                spec.name,
                record.last_error,
                exc_info=exc,
                extra={"worker": spec.name, "restarts": record.restarts},
            )
            if spec.restart is Restart.NEVER:
                _give_up(spec, record, on_give_up, "its restart policy is 'never'")
                return
        else:
            if spec.restart is not Restart.ALWAYS or stopping.is_set():
                record.state = WorkerState.COMPLETED
                logger.info("worker %r returned", spec.name, extra={"worker": spec.name})
                return
        # Here it crashed or returned to be run again, and `stopping` is unset: both branches
        # above checked it, with no await since.
        now = time.monotonic()
        recent.append(now)
        while recent and recent[0] < now - spec.restart_period:
            recent.popleft()
        if len(recent) > spec.max_restarts:
            why = f"it needed more than {spec.max_restarts} restarts in {spec.restart_period:g} s"
            _give_up(spec, record, on_give_up, why)
            return
        record.restarts += 1
        record.state = WorkerState.RESTARTING
        delay = spec.backoff(len(recent))
        logger.warning(
            "worker %r restarts in %.2f s (restart %d)",
            spec.name,
            delay,
            record.restarts,
            extra={"worker": spec.name, "restarts": record.restarts, "delay": delay},
        )
        try:
            async with asyncio.timeout(delay):
                await stopping.wait()
        except TimeoutError:
            continue
        record.state = WorkerState.STOPPED
        return


async def start_workers(
    specs: list[WorkerSpec],
    registry: Registry,
    *,
    stopping: asyncio.Event,
    on_give_up: Callable[[TaskRecord], None],
) -> StartupError | None:
    """Start a task per spec, tracked in *registry*; return the first failure to start.

    A worker fails to start when it raises before its first real suspension. Under the
    default task factory that first step runs at the next loop iteration; under an eager
    task factory (3.12+) it has already run inside ``create_task``. Either way the window
    closes after that first step, so a crash after the worker's first ``await`` is a crash
    to restart, not a failed startup.
    """
    loop = asyncio.get_running_loop()
    windows = []
    for spec in specs:
        window = StartWindow()
        record = registry.new_record(spec.name, Kind.WORKER)
        coro = run_worker(spec, record, stopping=stopping, window=window, on_give_up=on_give_up)
        task = loop.create_task(coro, name=f"worker {spec.name}")
        registry.track(task, record)
        if inspect.getcoroutinestate(coro) != inspect.CORO_CREATED:
            window.open = False  # run eagerly: its first step is over
        windows.append((task, window))
    # One loop iteration runs each lazily started worker up to its first suspension (their
    # first steps were scheduled before our wake-up).
    await asyncio.sleep(0)
    for _, window in windows:
        window.open = False
    for task, _ in windows:
        if task.done() and not task.cancelled():
            exc = task.exception()
            if isinstance(exc, StartupError):
                return exc
    return None


def _give_up(
    spec: WorkerSpec, record: TaskRecord, on_give_up: Callable[[TaskRecord], None], why: str
) -> None:
    record.state = WorkerState.FAILED
    logger.error(
        "worker %r gave up: %s; last error: %s",
        spec.name,
        why,
        record.last_error,
        extra={"worker": spec.name, "restarts": record.restarts, "critical": spec.critical},
    )
    on_give_up(record)
