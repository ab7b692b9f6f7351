"""The supervisor: registers work, runs workers, and owns the state machine."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, overload

from ._checks import CheckResult, Checks
from ._config import Config
from ._logs import show_logs_through_server
from ._looplag import LoopLagMonitor
from ._registry import Kind, Registry, TaskRecord
from ._report import ShutdownReport
from ._shutdown import Shutdown
from ._state import Lifecycle, State
from ._workers import Restart, WorkerSpec, parse_restart, start_worker, startup_failure
from .exceptions import NotRunningError, SupervisorClosedError

__all__ = ["Supervisor"]

logger = logging.getLogger("asgi_supervisor")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class Supervisor:
    """Registers an app's asynchronous work and stops it properly, within one deadline.

    Example::

        supervisor = Supervisor(grace_period=25.0, shutdown_delay=5.0)

        @supervisor.worker(restart="on-failure")
        async def consume_jobs() -> None:
            while not supervisor.stopping.is_set():
                await handle(await queue.get())

        app = SupervisorMiddleware(app, supervisor=supervisor)

    A supervisor serves one lifespan at a time; a new lifespan startup after a finished
    shutdown starts afresh (handy for test clients that run the lifespan per test).

    Args:
        grace_period: seconds from the first trigger that bound the whole shutdown.
        shutdown_delay: seconds to keep serving after the trigger, with readiness failing, so
            load balancers stop routing here; None means 5 s in Kubernetes, else 0.
        cancel_timeout: the part of the grace period kept for cancelling tasks and awaiting
            their cleanup.
        websocket_close_code, websocket_close_reason: the close frame sent to websockets.
        retry_after: the ``Retry-After`` seconds on 503 answers while closing.
        handle_signals: chain SIGTERM/SIGINT handlers onto the server's own.
        admin_token: bearer token for /tasks and /drain; without one, only loopback clients.
        path_prefix: where the endpoints live, like ``"/_ops"``.
        watchdog: end the process if it is still alive after the deadline plus
            ``watchdog_delay`` (a loop blocked in sync code cannot keep any deadline).
        loop_lag_threshold: log the code holding the event loop when it stalls for longer
            than this many seconds (None: off); counts are in ``supervisor.loop_lag.stats()``.
        on_critical_failure: ``"unready"`` (readiness fails) or ``"shutdown"`` (drain) when
            a critical worker gives up.

    Raises:
        ValueError, TypeError: a setting is invalid; the message names it.
    """

    def __init__(
        self,
        *,
        config: Config | None = None,
        on_critical_failure: str = "unready",
        **settings: Any,
    ) -> None:
        if config is not None and settings:
            raise TypeError("Pass either config= or individual settings, not both.")
        self.config = config if config is not None else Config(**settings)
        if on_critical_failure not in ("unready", "shutdown"):
            raise ValueError(
                f"on_critical_failure={on_critical_failure!r} is not supported; "
                "use 'unready' or 'shutdown'."
            )
        self._on_critical_failure = on_critical_failure
        self._specs: list[WorkerSpec] = []
        self._checks = Checks(self.config.check_cache_period)
        # These live as long as the supervisor and are reset in place for a new lifespan:
        # the middleware holds them directly, to keep the per-request path short.
        self.registry = Registry(self.config.history_size)
        self.lifecycle = Lifecycle()
        # issue 13: loop-lag detection; its counts span every lifespan of this supervisor.
        self.loop_lag = LoopLagMonitor(self.config.loop_lag_threshold)
        self._reset()

    def _reset(self) -> None:
        self.registry.reset()
        self.lifecycle.reset()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failures: dict[str, str] = {}
        self.shutdown: Shutdown | None = None
        self.last_report: ShutdownReport | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Supervisor:
        """A supervisor configured from ``ASGI_SUPERVISOR_*`` variables; *overrides* win.

        Raises:
            ValueError: a variable does not parse or is out of range; the message names it.
        """
        on_critical_failure = overrides.pop("on_critical_failure", "unready")
        config = Config.from_env(environ, **overrides)
        return cls(config=config, on_critical_failure=on_critical_failure)

    def __repr__(self) -> str:
        counts = self.registry.counts()
        return (
            f"<Supervisor {self.state.value} workers={counts['workers']} tasks={counts['tasks']} "
            f"requests={counts['requests']} websockets={counts['websockets']}>"
        )

    # -- what users read --------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current `State`."""
        return self.lifecycle.state

    @property
    def stopping(self) -> asyncio.Event:
        """Set when draining begins: cooperative tasks should finish when they see it."""
        return self._stopping

    @property
    def is_draining(self) -> bool:
        """True from the first trigger on."""
        return self.lifecycle.draining

    def failures(self) -> dict[str, str]:
        """Why the supervisor is unhealthy: critical workers that gave up, by name."""
        return dict(self._failures)

    async def check_results(self) -> tuple[CheckResult, ...]:
        """Run (or reuse the cached results of) the readiness checks; never raises."""
        return await self._checks.results()

    # -- registration -----------------------------------------------------------------------

    @overload
    def worker(self, fn: F, /) -> F: ...
    @overload
    def worker(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        restart: str | Restart = "on-failure",
        critical: bool = False,
        max_restarts: int = 5,
        restart_period: float = 60.0,
    ) -> Callable[[F], F]: ...

    def worker(
        self,
        fn: Any = None,
        /,
        *,
        name: str | None = None,
        restart: str | Restart = "on-failure",
        critical: bool = False,
        max_restarts: int = 5,
        restart_period: float = 60.0,
    ) -> Any:
        """Register the decorated async function as a worker; see `add_worker`."""
        options: dict[str, Any] = {
            "name": name,
            "restart": restart,
            "critical": critical,
            "max_restarts": max_restarts,
            "restart_period": restart_period,
        }
        if fn is not None:
            self.add_worker(fn, **options)
            return fn

        def decorate(fn: F) -> F:
            self.add_worker(fn, **options)
            return fn

        return decorate

    def add_worker(
        self,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        name: str | None = None,
        restart: str | Restart = "on-failure",
        critical: bool = False,
        max_restarts: int = 5,
        restart_period: float = 60.0,
        backoff_delay: float = 0.1,
        backoff_max_delay: float = 30.0,
    ) -> None:
        """Run ``fn(*args)`` as a long-lived worker from lifespan startup to shutdown.

        Workers start after the app's own startup, and are cancelled and awaited before its
        own shutdown, in reverse order of registration. A worker that crashes is restarted
        per *restart* with jittered exponential backoff; more than *max_restarts* restarts in
        *restart_period* seconds and it gives up; a *critical* one that gives up makes
        readiness fail.

        Raises:
            TypeError: *fn* is not an async function.
            ValueError: *restart* names no policy, or a number is out of range.
            SupervisorClosedError: the supervisor has started; register before startup.
        """
        if self.lifecycle.state is not State.STARTING or self._loop is not None:
            raise SupervisorClosedError(
                f"Cannot add a worker to {self!r}: workers are registered before startup; use "
                "spawn() for work that begins later."
            )
        worker_name = name or getattr(fn, "__qualname__", None) or repr(fn)
        if any(spec.name == worker_name for spec in self._specs):
            raise ValueError(f"A worker named {worker_name!r} exists; pass a distinct name=.")
        self._specs.append(
            WorkerSpec(
                fn=fn,
                args=args,
                name=worker_name,
                restart=parse_restart(restart),
                critical=critical,
                max_restarts=max_restarts,
                restart_period=restart_period,
                backoff_delay=backoff_delay,
                backoff_max_delay=backoff_max_delay,
            )
        )

    def add_check(
        self,
        name: str,
        fn: Callable[[], Awaitable[Any]],
        *,
        timeout: float = 1.0,
        critical: bool = True,
    ) -> None:
        """Add a readiness check: an async function that raises or returns False when unwell.

        Checks run concurrently when a probe asks, each bounded by *timeout* (one that hangs
        is reported as timed out and never hangs the probe). A failing *critical* check makes
        readiness fail under its name.

        Raises:
            ValueError: the name is empty or taken, or the timeout is not positive.
            TypeError: *fn* is not an async function.
        """
        self._checks.add(name, fn, timeout, critical)

    # -- spawning ---------------------------------------------------------------------------

    def spawn(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]] | Coroutine[Any, Any, T],
        *args: Any,
        name: str | None = None,
    ) -> asyncio.Task[T]:
        """Start a tracked fire-and-forget task and return it.

        Its exception, if any, is logged with its name and kept in the `/tasks` history. At
        shutdown it is cancelled and awaited with the other tasks.

        Raises:
            SupervisorClosedError: the supervisor is closing: new work would be cut short.
            TypeError: *fn* is neither a coroutine nor an async function.
        """
        if not self.lifecycle.accepting:
            if inspect.iscoroutine(fn):
                fn.close()  # never awaited by anyone: close it to silence the warning
            raise SupervisorClosedError(
                f"Cannot spawn: {self!r} is {self.state.value}; start the work before "
                "shutdown, or check supervisor.stopping first."
            )
        coro: Coroutine[Any, Any, T]
        if inspect.iscoroutine(fn):
            if args:
                fn.close()
                raise TypeError("spawn() takes arguments only with a function, not a coroutine.")
            coro = fn
        elif callable(fn):
            coro = fn(*args)
            if not inspect.iscoroutine(coro):
                raise TypeError(f"spawn() needs an async function; {fn!r} returned {coro!r}.")
        else:
            raise TypeError(f"spawn() needs a coroutine or an async function, not {fn!r}.")
        registry = self.registry
        record = TaskRecord(registry.next_id(), name or coro.__qualname__, Kind.TASK, None)
        # The lifespan's loop when there is one: get_running_loop() costs 0.3 us on 3.11.
        loop = self._loop or asyncio.get_running_loop()
        task = loop.create_task(coro, name=name)
        record.task = task
        registry.records[task] = record
        task.add_done_callback(registry.task_done)
        return task

    # -- lifespan ---------------------------------------------------------------------------

    def begin_startup(self) -> None:
        """Called by the middleware when the server sends ``lifespan.startup``."""
        if self._loop is not None:
            if self.lifecycle.state not in (State.STOPPED, State.FAILED):
                raise RuntimeError(f"{self!r} is already running a lifespan.")
            self._reset()
        self._loop = asyncio.get_running_loop()

    async def start(self) -> None:
        """Start the workers after the app's own startup; then the state is ``ready``.

        Raises:
            StartupError: a worker raised before its first suspension (before its first
                ``await`` that really waits).
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.shutdown = Shutdown(self, loop)
        self.shutdown.install_signals()
        for spec in self._specs:
            start_worker(
                spec,
                self.registry,
                loop,
                stopping=self._stopping,
                is_starting=lambda: self.lifecycle.state is State.STARTING,
                on_give_up=self._worker_gave_up,
            )
        # One loop iteration runs each new worker up to its first suspension (their first
        # steps were scheduled before our wake-up): one that raised by then is a startup
        # failure, not something to restart in a loop.
        await asyncio.sleep(0)
        failure = startup_failure(self.registry.workers)
        if failure is not None:
            await self.stop_after_failed_startup()
            raise failure
        # issue 13: now that the server and the app's startup have configured logging (or
        # not), make our records show; then watch the loop while it serves.
        show_logs_through_server()
        self.loop_lag.start(loop)
        if self.lifecycle.advance(State.READY):
            logger.info("ready", extra={"state": "ready", "workers": len(self._specs)})

    async def stop_after_failed_startup(self) -> None:
        """Stop whatever started, when startup fails after the workers began."""
        self.lifecycle.fail()
        self._stopping.set()
        tasks = [r.task for r in self.registry.records.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.cancel_timeout)
        if self.shutdown is not None:
            self.shutdown.restore_signals()

    def fail_startup(self) -> None:
        """Record that the app's own startup failed: nothing was started."""
        self.lifecycle.fail()
        self._stopping.set()

    def _worker_gave_up(self, record: TaskRecord) -> None:
        spec = next(s for s in self._specs if s.name == record.name)
        if not spec.critical:
            return
        self._failures[record.name] = f"critical worker {record.name!r} gave up"
        if self._on_critical_failure == "shutdown":
            self.begin_drain("critical worker failed")

    # -- draining ---------------------------------------------------------------------------

    def begin_drain(self, trigger: str = "api") -> None:
        """Start the shutdown sequence if it has not started; return at once.

        Raises:
            NotRunningError: the lifespan has not started, so there is nothing to drain.
        """
        if self.shutdown is None:
            raise NotRunningError(
                f"Cannot drain {self!r}: its lifespan has not started. Wrap the app in "
                "SupervisorMiddleware and run it under a server that sends lifespan events."
            )
        self.shutdown.trigger(trigger)

    async def drain(self) -> ShutdownReport:
        """Drain and stop everything, then return the shutdown report.

        Idempotent: a second call joins the shutdown in progress. Bounded by the deadline.
        Do not await it from a tracked request or task: it waits for those to end.

        Raises:
            NotRunningError: the lifespan has not started.
        """
        self.begin_drain("api")
        assert self.shutdown is not None
        return await self.shutdown.wait_stopped()

    async def wait_drained(self) -> None:
        """Wait until requests and websockets are drained or their share of the deadline is spent.

        Raises:
            NotRunningError: the lifespan has not started.
        """
        if self.shutdown is None:
            raise NotRunningError(f"Cannot wait for {self!r}: its lifespan has not started.")
        await self.shutdown.wait_drained()

    def deadline_remaining(self) -> float | None:
        """Seconds left before the shutdown deadline, or None before any trigger."""
        return None if self.shutdown is None else self.shutdown.remaining()
