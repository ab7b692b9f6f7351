"""The supervisor: the public facade that registers work and answers for each lifespan's run.

Its public methods and properties are the library's API and name only public types. What
only the middleware calls (`_begin_startup`, `_start`, `_end`) and what only the endpoints
read (`_registry`, `_group`) is private to the package.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, Literal, TypeVar, TypeVarTuple, Unpack, overload

from asgi_supervisor._core.checks import CheckResult, Checks
from asgi_supervisor._core.errors import NotRunningError, SupervisorClosedError
from asgi_supervisor._core.lifecycle import State
from asgi_supervisor._core.registry import Registry
from asgi_supervisor._core.report import ShutdownReport
from asgi_supervisor._core.stopping import Closing, Stopping
from asgi_supervisor._core.worker_state import WorkerSnapshot
from asgi_supervisor._core.workers import Restart, WorkerSpec, parse_restart
from asgi_supervisor._group.membership import ProcessGroup
from asgi_supervisor._host.looplag import LoopLagMonitor, LoopLagStats

from .config import Config
from .run import Run
from .settings import Settings, check_setting_names

__all__ = ["Supervisor"]

logger = logging.getLogger("asgi_supervisor")

T = TypeVar("T")
# A decorated worker is called with no arguments; the decorator returns it unchanged.
F = TypeVar("F", bound=Callable[[], Awaitable[object]])
Ts = TypeVarTuple("Ts")
# What `restart=` accepts: a policy's name, or the enum.
RestartPolicy = Literal["never", "on-failure", "always"] | Restart
OnCriticalFailure = Literal["unready", "shutdown"]
_SUPERVISOR_ONLY = ("config", "on_critical_failure")


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
        config: every setting at once, as a `Config`; or give them one by one instead.
        on_critical_failure: ``"unready"`` (readiness fails) or ``"shutdown"`` (drain) when
            a critical worker gives up.
        **settings: any setting of `Config` by name (``grace_period``, ``shutdown_delay``,
            ``path_prefix``, ...), each documented there and on the configuration page;
            typed by `Settings`, so a type checker refuses a misspelt one or a value of the
            wrong type.

    Attributes:
        config: the settings, validated; fixed for the supervisor's life.

    Raises:
        ValueError: a setting is out of range; the message names it and says what to use.
        TypeError: a setting has the wrong type or names no setting (the closest is
            suggested), or both *config* and settings were given.
    """

    config: Config

    def __init__(
        self,
        *,
        config: Config | None = None,
        on_critical_failure: OnCriticalFailure = "unready",
        **settings: Unpack[Settings],
    ) -> None:
        check_setting_names(settings, also=_SUPERVISOR_ONLY)
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
        # The current lifespan's run, or the last one's until the next startup.
        self._run: Run | None = None
        self._stopping = Stopping(lambda: None if self._run is None else self._run.stopping)
        self._closing = Closing(lambda: None if self._run is None else self._run.notice.event)
        # Loop-lag detection; its counts span every lifespan of this supervisor, whose run
        # starts and stops it.
        self._loop_lag = LoopLagMonitor(self.config.loop_lag_threshold)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        on_critical_failure: OnCriticalFailure = "unready",
        **overrides: Unpack[Settings],
    ) -> Supervisor:
        """A supervisor configured from ``ASGI_SUPERVISOR_*`` variables; *overrides* win.

        Args:
            environ: the variables to read; ``os.environ`` by default.
            on_critical_failure: as for `Supervisor`.
            **overrides: settings of `Config` by name, which win over the variables.

        Raises:
            ValueError: a variable does not parse or is out of range; the message names it.
            TypeError: an override names no setting, or has the wrong type.
        """
        check_setting_names(overrides, also=_SUPERVISOR_ONLY)
        config = Config.from_env(environ, **overrides)
        return cls(config=config, on_critical_failure=on_critical_failure)

    def __repr__(self) -> str:
        counts = self.counts()
        return (
            f"<Supervisor {self.state.value} workers={counts['workers']} tasks={counts['tasks']} "
            f"requests={counts['requests']} websockets={counts['websockets']}>"
        )

    # -- what users read --------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current `State` (of the last lifespan, until the next one starts)."""
        return State.STARTING if self._run is None else self._run.lifecycle.state

    @property
    def stopping(self) -> Stopping:
        """Set when draining begins: cooperative tasks should finish when they see it.

        Event-like (``is_set()``, ``await wait()``) and the same object for the supervisor's
        whole life, while each lifespan gets a fresh event behind it.
        """
        return self._stopping

    @property
    def closing(self) -> Closing:
        """Set when the closing phase begins: long-lived responses should end themselves.

        The closing notice comes ``shutdown_delay`` after the trigger, once load balancers
        have stopped sending requests here; a stream that ends then is ended cleanly for its
        client, one still running at the deadline is cut. Event-like (``is_set()``,
        ``await wait()``) and the same object for the supervisor's whole life; see also
        `until_closing`.
        """
        return self._closing

    def until_closing(self, source: AsyncIterable[T]) -> AsyncIterator[T]:
        """*source*'s items until the closing notice; then *source* is closed and it ends.

        For the body of a long-lived response, so that it ends itself when the closing
        phase begins and its client sees the body end, instead of being cut at the deadline
        (the report counts it as a stream ended at the notice)::

            return StreamingResponse(supervisor.until_closing(events()))

        It ends even while *source* waits for its next item: the wait is cancelled and the
        cancellation withdrawn here. Between two items it ends before asking for the next.
        Outside a lifespan (no lifespan running, or one that never closes) it yields
        everything *source* yields.

        Cancellation: a cancellation that the notice did not cause propagates; *source* is
        closed first (its ``aclose()``), as when the iteration is abandoned.
        """
        run = self._run
        if run is None or run.loop.is_closed():
            return aiter(source)
        return run.notice.until(source)

    @property
    def is_draining(self) -> bool:
        """True from the first trigger on."""
        return self._run is not None and self._run.lifecycle.draining

    @property
    def last_report(self) -> ShutdownReport | None:
        """The report of the last shutdown that ended, or None."""
        return None if self._run is None else self._run.shutdown.report

    @property
    def has_started(self) -> bool:
        """True once the current (or last) lifespan's startup completed."""
        return self._run is not None and self._run.lifecycle.entered(State.READY) is not None

    @property
    def is_lingering(self) -> bool:
        """True when the shutdown ended and nothing will end the process: liveness fails."""
        return self._run is not None and self._run.shutdown.lingering

    @property
    def loop_lag(self) -> LoopLagStats:
        """What loop-lag detection has seen over every lifespan of this supervisor.

        A frozen snapshot, taken now; ``threshold`` is None when detection is off.
        """
        return self._loop_lag.stats()

    def counts(self) -> dict[str, int]:
        """Live requests, websockets, tasks and workers."""
        if self._run is None:
            return {"requests": 0, "websockets": 0, "tasks": 0, "workers": 0}
        return self._run.registry.counts(self._run.requests.in_flight)

    def workers(self) -> tuple[WorkerSnapshot, ...]:
        """Every worker of the current (or last) lifespan, as ``/health`` shows them.

        Frozen snapshots in order of registration, ended workers included; empty before the
        first startup.
        """
        return () if self._run is None else self._run.registry.worker_snapshots()

    def failures(self) -> dict[str, str]:
        """Why the supervisor is unhealthy: critical workers that gave up, by name."""
        return {} if self._run is None else dict(self._run.failures)

    async def check_results(self) -> tuple[CheckResult, ...]:
        """Run (or reuse the cached results of) the readiness checks; never raises.

        Each check is bounded by its own timeout. Cancellation: cancelling the caller does
        not cancel a run that other callers (probes, a metrics scrape) share.
        """
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
        restart: RestartPolicy = "on-failure",
        critical: bool = False,
        max_restarts: int = 5,
        restart_period: float = 60.0,
        backoff_delay: float = 0.1,
        backoff_max_delay: float = 30.0,
    ) -> Callable[[F], F]: ...

    def worker(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        restart: RestartPolicy = "on-failure",
        critical: bool = False,
        max_restarts: int = 5,
        restart_period: float = 60.0,
        backoff_delay: float = 0.1,
        backoff_max_delay: float = 30.0,
    ) -> F | Callable[[F], F]:
        """Register the decorated async function as a worker, called with no arguments.

        ``@supervisor.worker`` or ``@supervisor.worker(restart="always", ...)``: the options
        are `add_worker`'s, and the function is returned unchanged, with its type.

        Raises:
            TypeError: *fn* is not an async function (as `add_worker`).
            ValueError: *restart* names no policy, or a number is out of range.
            SupervisorClosedError: the supervisor has started; register before startup.
        """

        def decorate(fn: F) -> F:
            self.add_worker(
                fn,
                name=name,
                restart=restart,
                critical=critical,
                max_restarts=max_restarts,
                restart_period=restart_period,
                backoff_delay=backoff_delay,
                backoff_max_delay=backoff_max_delay,
            )
            return fn

        return decorate if fn is None else decorate(fn)

    def add_worker(
        self,
        fn: Callable[[*Ts], Awaitable[object]],
        *args: *Ts,
        name: str | None = None,
        restart: RestartPolicy = "on-failure",
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

        Args:
            fn: an async function; *args* are passed to it at each start.
            name: the worker's name in logs, ``/tasks`` and metrics (default: the function's
                qualified name); unique per supervisor.
            restart: ``"on-failure"`` (default), ``"always"`` (also when it returns while
                not stopping) or ``"never"``, or a `Restart`.
            critical: a critical worker that gives up fails readiness (see
                ``on_critical_failure``).
            max_restarts: restarts allowed within *restart_period* seconds before it gives
                up.
            restart_period: the sliding window, in seconds, that *max_restarts* counts in.
            backoff_delay: seconds before the first restart; each next one doubles it,
                jittered, up to *backoff_max_delay*.
            backoff_max_delay: the longest wait between restarts, in seconds.

        Raises:
            TypeError: *fn* is not an async function.
            ValueError: *restart* names no policy, or a number is out of range.
            SupervisorClosedError: the supervisor has started; register before startup.
        """
        if self._run is not None:
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
        fn: Callable[[*Ts], Coroutine[Any, Any, T]] | Coroutine[Any, Any, T],
        *args: *Ts,
        name: str | None = None,
    ) -> asyncio.Task[T]:
        """Start a tracked fire-and-forget task and return it.

        Its exception, if any, is logged with its name and kept in the `/tasks` history. At
        shutdown it is cancelled and awaited with the other tasks.

        Raises:
            SupervisorClosedError: the supervisor is closing: new work would be cut short.
            TypeError: *fn* is neither a coroutine nor an async function.
        """
        run = self._run
        if run is None or not run.lifecycle.accepting or run.loop.is_closed():
            if inspect.iscoroutine(fn):
                fn.close()  # never awaited by anyone: close it to silence the warning
            if run is None or run.loop.is_closed():
                raise NotRunningError(
                    f"Cannot spawn: {self!r} has no lifespan running; spawn from a request, "
                    "a worker, or after startup."
                )
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
        return run.spawn(coro, name or coro.__qualname__)

    # -- lifespan (called by the middleware) ---------------------------------------------------

    def _begin_startup(
        self, find_requests: Callable[[], list[asyncio.Task[Any]]], *, server: object = None
    ) -> Run:
        """Begin a lifespan: a fresh `Run` on the running loop (the last one is dropped).

        *server* is an object of the server's that may hold its configuration (see
        `_host.server_wait`), or None.

        Raises:
            RuntimeError: a lifespan of this supervisor is already running.
        """
        if self._run is not None and self._run.lifecycle.state not in (
            State.STOPPED,
            State.FAILED,
        ):
            raise RuntimeError(
                f"{self!r} is already running a lifespan; wrap each app in its own "
                "SupervisorMiddleware with its own Supervisor."
            )
        self._run = Run(
            self.config,
            asyncio.get_running_loop(),
            find_requests=find_requests,
            on_critical_failure=self._on_critical_failure,
            loop_lag=self._loop_lag,
            server=server,
        )
        return self._run

    async def _start(self, run: Run) -> None:
        """Start *run*'s workers after the app's own startup.

        Raises:
            StartupError: a worker raised before its first suspension.
        """
        await run.start(self._specs)

    def _end(self, run: Run) -> None:
        """*run*'s lifespan is over, whichever way it ended."""
        run.close()

    # -- draining ---------------------------------------------------------------------------

    def begin_drain(self, trigger: str = "api", *, deadline: float | None = None) -> None:
        """Start the shutdown sequence if it has not started; return at once.

        Args:
            trigger: what began it, for the log and the report.
            deadline: an absolute ``time.monotonic()`` end; the earlier of it and the
                supervisor's own (``grace_period`` from the first trigger) wins.

        Raises:
            NotRunningError: no lifespan is running, so there is nothing to drain.
        """
        self._running("drain").begin_drain(trigger, deadline=deadline)

    async def drain(self) -> ShutdownReport:
        """Drain and stop everything, then return the shutdown report.

        Idempotent: a second call joins the shutdown in progress. Bounded by the deadline.
        Under a server, the process then exits (docs/shutdown.md, "No process lingers
        stopped"). Do not await it from a tracked request or task: it waits for those to end.

        Cancellation: cancelling the caller does not cancel the shutdown.

        Raises:
            NotRunningError: no lifespan is running.
        """
        run = self._running("drain")
        run.begin_drain("api")
        return await run.shutdown.wait_stopped()

    async def wait_drained(self) -> None:
        """Wait until requests and websockets are drained or their share of the deadline is spent.

        Raises:
            NotRunningError: no shutdown has begun in a running lifespan.
        """
        run = self._running("wait for")
        if run.shutdown.deadline is None:
            raise NotRunningError(f"Cannot wait for {self!r}: no drain has begun.")
        await run.shutdown.wait_drained()

    def drain_progress(self) -> dict[str, object]:
        """The report of the drain under way so far (the final report once it ended).

        Raises:
            NotRunningError: no drain has begun.
        """
        run = self._run
        if run is None or run.shutdown.deadline is None:
            raise NotRunningError(f"{self!r} has not begun draining.")
        return run.shutdown.progress()

    def deadline_remaining(self) -> float | None:
        """Seconds left before the shutdown deadline, or None before any trigger."""
        return None if self._run is None else self._run.shutdown.remaining()

    # -- what the endpoints read --------------------------------------------------------------

    @property
    def _registry(self) -> Registry:
        """The tracked work of the current (or last) lifespan; empty before any."""
        if self._run is None:
            return Registry(self.config.history_size)
        return self._run.registry

    @property
    def _group(self) -> ProcessGroup | None:
        """The current lifespan's process group (see ``membership``), or None."""
        return None if self._run is None else self._run.group

    def _running(self, what: str) -> Run:
        run = self._run
        if run is None or run.lifecycle.state in (State.FAILED,) or run.loop.is_closed():
            raise NotRunningError(
                f"Cannot {what} {self!r}: its lifespan is not running. Wrap the app in "
                "SupervisorMiddleware and run it under a server that sends lifespan events."
            )
        return run
