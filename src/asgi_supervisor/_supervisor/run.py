"""One lifespan of a supervisor: everything that lives from startup to the end of shutdown.

A supervisor outlives its lifespans (test clients run one per test, on a new loop each time);
what belongs to one lifespan lives in one `Run`, made at ``lifespan.startup`` and dropped
when the next one begins. Nothing is reset in place.

The run is also the one owner of what the lifespan shares with other processes: it makes
the presence in the listener folders (`_host.presence`, which owns the listener watch), the
process group, the local tokens and the memory of used login codes on top of it, starts the
presence once the app's startup is over, and leaves (`leave`) before the server hears the
lifespan is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from asgi_supervisor._admin.local_token import LocalTokens
from asgi_supervisor._admin.login import OneTimeCodes
from asgi_supervisor._core.drain_outcome import drain_outcome
from asgi_supervisor._core.lifecycle import Lifecycle, State
from asgi_supervisor._core.notice import ClosingNotice
from asgi_supervisor._core.registry import Kind, Registry, TaskRecord
from asgi_supervisor._core.requests import RequestCount
from asgi_supervisor._core.workers import WorkerSpec, start_workers
from asgi_supervisor._group.membership import ProcessGroup
from asgi_supervisor._host.logs import show_logs_through_server
from asgi_supervisor._host.placement import locate
from asgi_supervisor._host.presence import Presence

from . import budget
from .config import Config
from .shutdown import Shutdown

if TYPE_CHECKING:
    from asgi_supervisor._core.report import ShutdownReport
    from asgi_supervisor._host.looplag import LoopLagMonitor

__all__ = ["Run"]

logger = logging.getLogger("asgi_supervisor")

T = TypeVar("T")


class Run:
    """The state of one lifespan: its loop, lifecycle, registry, requests and shutdown.

    It alone starts and stops what watches the lifespan while it serves: the request count's
    clock and the supervisor's loop-lag detection.
    """

    def __init__(
        self,
        config: Config,
        loop: asyncio.AbstractEventLoop,
        *,
        find_requests: Callable[[], list[asyncio.Task[Any]]],
        on_critical_failure: str,
        loop_lag: LoopLagMonitor,
        server: object = None,
    ) -> None:
        self.config = config
        self.loop = loop
        # The supervisor's, so that its counts span every lifespan; this run alone starts
        # and stops it (`start`, `stop`, `close`).
        self._loop_lag = loop_lag
        self.lifecycle = Lifecycle()
        self.registry = Registry(config.history_size)
        self.requests = RequestCount()
        self.stopping = asyncio.Event()
        # Given by the shutdown when closing begins: long-lived responses end themselves.
        self.notice = ClosingNotice()
        # Critical workers that gave up, by name: why readiness fails.
        self.failures: dict[str, str] = {}
        self._on_critical_failure = on_critical_failure
        self._critical: set[str] = set()
        self.shutdown = Shutdown(
            config,
            loop,
            lifecycle=self.lifecycle,
            registry=self.registry,
            requests=self.requests,
            stopping=self.stopping,
            notice=self.notice,
            find_requests=find_requests,
            is_replaceable=lambda: self.group is not None and self.group.is_shared(),
            server=server,
            listening_ports=self._listening_ports,
        )
        self.requests.start_clock(loop)
        # What other processes of this server see of this lifespan, from start() to leave().
        self.presence: Presence | None = None
        self.group: ProcessGroup | None = None
        self.local_tokens: LocalTokens | None = None
        if config.local_token or config.process_group:
            self._join_neighbours()
        # The login codes used here, told to and by the siblings, which accept the same codes.
        self.login_codes = OneTimeCodes(None if self.presence is None else self.presence.channel)

    def __repr__(self) -> str:
        return f"<Run {self.lifecycle.state.value} in_flight={self.requests.in_flight}>"

    async def start(self, specs: list[WorkerSpec]) -> None:
        """Start the workers after the app's own startup; then the state is ``ready``, and
        loop-lag detection watches the loop while it serves.

        Raises:
            StartupError: a worker raised before its first suspension (its first ``await``
                that really waits); what did start has been stopped.
        """
        # The server and the app's startup have configured logging (or not) by now: make
        # our records show, from the warnings below on.
        show_logs_through_server()
        # What only this process knows: Kubernetes' automatic shutdown delay, and a server
        # that kills it after SIGTERM (see `budget`).
        budget.warn_at_startup(self.config)
        self.shutdown.install_signals()
        # The app's startup is over: servers that bind after it do so now. The presence
        # joins the folder of each listener it finds, for the group and the local token.
        if self.presence is not None:
            self.presence.start()
        self._critical = {spec.name for spec in specs if spec.critical}
        failure = await start_workers(
            specs, self.registry, stopping=self.stopping, on_give_up=self._worker_gave_up
        )
        if failure is not None:
            await self._stop_after_failed_startup()
            raise failure
        if self.lifecycle.advance(State.READY):
            logger.info("ready", extra={"state": "ready", "workers": len(specs)})
        self._loop_lag.start(self.loop)

    async def stop(self) -> ShutdownReport:
        """The lifespan shutdown arrived: run the shutdown sequence (or join the one under
        way) to its end, then stop watching the loop, before the app's own shutdown runs
        (its sync cleanup is no stall anyone serves through).

        Cancellation: cancelling the caller does not cancel the shutdown.
        """
        # The late fallback: the server has already cut every connection, so only the
        # tasks are left to stop. A drain begun earlier is simply joined.
        self.shutdown.trigger("lifespan shutdown", exiting=True)
        report = await self.shutdown.wait_stopped()
        self._loop_lag.stop()
        await self._loop_lag.wait_finished()
        return report

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run *coro* as a tracked task of this lifespan, named *name*."""
        record = self.registry.new_record(name, Kind.TASK)
        task = self.loop.create_task(coro, name=name)
        self.registry.track(task, record)
        return task

    def fail(self) -> None:
        """The app's own startup failed: nothing of ours was started."""
        self.lifecycle.fail()
        self.stopping.set()
        self.close()

    def close(self) -> None:
        """The lifespan is over, whichever way it ended: stop the clock and loop-lag
        detection (both idempotent), give the signal handlers back."""
        self.requests.stop_clock()
        self._loop_lag.stop()
        self.shutdown.finish()

    async def leave(self) -> None:
        """Leave the listener folders: the last member removes the local token and the
        folder. Awaited before the server hears the lifespan is over (a server may cancel
        the lifespan task then); bounded by the folder locks' 2 s timeout.
        """
        if self.presence is not None:
            await self.presence.aclose()

    def begin_drain(self, trigger: str, *, deadline: float | None = None) -> None:
        """Start (or join) the drain, and tell the sibling worker processes of the server.

        For the drain endpoint, the API and a critical failure; never for a signal (each
        worker gets its own, and a reload signals only the old workers).
        """
        self.shutdown.trigger(trigger, deadline=deadline)
        if self.group is not None:
            assert self.shutdown.deadline is not None
            self.group.announce(trigger, self.shutdown.deadline.end)

    async def _stop_after_failed_startup(self) -> None:
        self.lifecycle.fail()
        self.stopping.set()
        tasks = list(self.registry.records)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.cancel_timeout)

    def _listening_ports(self) -> frozenset[int]:
        # What the listener watch found since startup (the server may have closed its
        # listener by the time the shutdown asks); empty without a presence.
        if self.presence is None:
            return frozenset()
        return frozenset(listener.port for listener in self.presence.watch.seen)

    def _worker_gave_up(self, record: TaskRecord) -> None:
        if record.name not in self._critical:
            return
        self.failures[record.name] = f"critical worker {record.name!r} gave up"
        if self._on_critical_failure == "shutdown":
            self.begin_drain("critical worker failed")

    def _join_neighbours(self) -> None:
        # One membership serves both: the local token needs the folder, and so does the
        # group; process_group=False only means no drain is sent or acted on.
        where = functools.partial(locate, self.config.runtime_dir, os.environ)
        presence = Presence(self.loop, runtime_dir=where)
        if self.config.process_group:

            async def describe(drain_timeout: float) -> dict[str, Any]:
                if self.shutdown.deadline is not None:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(drain_timeout):
                            await self.shutdown.wait_drained()
                counts = self.registry.counts(self.requests.in_flight)
                lifecycle = self.lifecycle
                remaining = self.shutdown.remaining()
                return drain_outcome(lifecycle.state.value, lifecycle.draining, counts, remaining)

            self.group = ProcessGroup(
                presence,
                on_drain=lambda trigger, deadline: self.begin_drain(trigger, deadline=deadline),
                describe=describe,
            )
        if self.config.local_token:
            self.local_tokens = LocalTokens(presence)
        self.presence = presence
