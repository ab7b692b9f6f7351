"""The shutdown sequence: draining, closing, stopping, stopped, under one `Deadline`.

Read `Shutdown._run` top to bottom: each step is a method, with why it comes where it does.
Every wait is bounded by the deadline and cut short by a forcing second signal. The sequence
reads and moves only what it is given (the lifespan's lifecycle, registry, request count and
stopping event); it never reaches back into the supervisor.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from asgi_supervisor._core.cancel import CANCEL_MESSAGE, cancel_and_wait, wait_resisting
from asgi_supervisor._core.deadline import Deadline
from asgi_supervisor._core.lifecycle import Lifecycle, State
from asgi_supervisor._core.notice import ClosingNotice
from asgi_supervisor._core.registry import Ending, Kind, Registry
from asgi_supervisor._core.report import (
    AbandonedTask,
    ShutdownProgress,
    ShutdownReport,
    log_report,
    log_summary,
)
from asgi_supervisor._core.requests import RequestCount
from asgi_supervisor._host.server_facts import (
    listener_taken_over,
    replaces_exited_workers,
    wait_stopped_accepting,
)
from asgi_supervisor._host.signals import SignalChain
from asgi_supervisor._host.watchdog import Watchdog

from .config import Config
from .server_stop import ServerStop

__all__ = ["Shutdown"]

logger = logging.getLogger("asgi_supervisor")

_Finder = Callable[[], list[asyncio.Task[Any]]]


class Shutdown:
    """One lifespan's shutdown: its triggers, its deadline, its signals and its report."""

    def __init__(
        self,
        config: Config,
        loop: asyncio.AbstractEventLoop,
        *,
        lifecycle: Lifecycle,
        registry: Registry,
        requests: RequestCount,
        stopping: asyncio.Event,
        notice: ClosingNotice | None = None,
        find_requests: _Finder,
        is_replaceable: Callable[[], bool] = lambda: False,
        server: object = None,
        listening_ports: Callable[[], frozenset[int]] = frozenset,
    ) -> None:
        """*is_replaceable* says whether this is one worker of several, which its server
        would replace with a fresh, ready one if it exited by itself (see `_after_stopped`).
        *server* is an object of the server's that may hold its configuration, and
        *listening_ports* the ports found since startup (see `ServerStop`).
        """
        self.config = config
        self._loop = loop
        self._lifecycle = lifecycle
        self._registry = registry
        self._requests = requests
        self._stopping = stopping
        self._notice = ClosingNotice() if notice is None else notice
        self._find_requests = find_requests
        self.deadline: Deadline | None = None
        self.trigger_name: str | None = None
        self.started_at = 0.0
        self.report: ShutdownReport | None = None
        # True once the process is meant to exit (a signal, lifespan shutdown, or our own
        # request to the server): then the watchdog guards the deadline.
        self.exiting = False
        # True when the sequence ended and nothing will end the process: liveness fails.
        self.lingering = False
        # Another process took over our listener (a gunicorn reload): see step 1 of `_run`.
        self.handed_over = False
        self._is_replaceable = is_replaceable
        self._task: asyncio.Task[ShutdownReport] | None = None
        self._wakeup: asyncio.Future[None] = loop.create_future()
        self._drained = asyncio.Event()
        self._signals = SignalChain(loop, self._on_signal, self._arm_watchdog_now)
        self._signals_received: list[int] = []
        self._signals_forwarded = 0
        self._server_stop = ServerStop(
            loop,
            server_parts=lambda: (self._signals.server_handler_owner, server),
            known_ports=listening_ports,
        )
        self._watchdog = Watchdog(loop, last_words=self._last_words)
        self._closes: list[asyncio.Task[None]] = []
        self._websockets_closed: collections.Counter[int] = collections.Counter()
        self._abandoned: frozenset[asyncio.Task[Any]] = frozenset()

    # -- triggers ---------------------------------------------------------------------------

    def install_signals(self) -> None:
        """Chain our signal handlers onto the server's, if the settings ask for it."""
        if self.config.handle_signals:
            self._signals.install()
        # A server that would wait for its connections with no bound, should it stop
        # without us (signals not handled, or delivered at once), waits no longer than
        # the grace period: its lifespan shutdown, and ours, then run.
        self._server_stop.bound_at_startup(self.config.grace_period)

    def finish(self) -> None:
        """The app's own lifespan shutdown has completed: hand on held signals, clean up.

        The watchdog stays armed while an abandoned task still runs. Scenario: a task
        swallowed every cancellation; after the server returns, asyncio.run cancels every
        task left and waits for each with no limit (on SIGINT, or as PID 1 where the
        re-raised SIGTERM is dropped), so it would hang the exit forever.
        """
        self._forward_signals()
        self._signals.restore()
        self._server_stop.cancel()  # the server is past its wait for connections
        if all(task.done() for task in self._abandoned):
            self._watchdog.disarm()

    def trigger(self, name: str, *, exiting: bool = False, deadline: float | None = None) -> None:
        """Start the sequence once; later triggers join it.

        Args:
            name: what began it, for the log and the report.
            exiting: the process is meant to exit (a signal, lifespan shutdown): arm the
                watchdog.
            deadline: a ``time.monotonic()`` end set elsewhere (a sibling worker that began
                first); the earlier end wins.
        """
        config = self.config
        if self.deadline is None:
            now = time.monotonic()
            start = now if deadline is None else min(now, deadline - config.grace_period)
            self.deadline = Deadline(
                grace_period=config.grace_period,
                shutdown_delay=config.effective_shutdown_delay,
                cancel_timeout=config.cancel_timeout,
                start=start,
            )
            if deadline is not None:
                self.deadline.tighten(deadline)
            self.trigger_name = name
            self.started_at = time.time()
            self._lifecycle.advance(State.DRAINING)
            self._stopping.set()
            self._registry.begin_tally()
            self._requests.on_change = self._wake
            self._server_stop.look_for_ports()
            logger.info(
                "draining: %s; deadline in %.1f s",
                name,
                self.deadline.remaining(),
                extra={"state": "draining", "trigger": name},
            )
            self._task = self._loop.create_task(self._run(), name="asgi-supervisor shutdown")
        elif deadline is not None and self.deadline.tighten(deadline):
            self._wake()
        if exiting:
            self.exiting = True
            if config.watchdog:
                # Scenario: /drain was called long ago and this SIGTERM comes after the
                # deadline; the app's own shutdown still deserves cancel_timeout.
                end = max(self.deadline.end, time.monotonic() + config.cancel_timeout)
                self._watchdog.arm(end + config.watchdog_delay)

    def force(self) -> None:
        """Skip the remaining waits and keep at most ``cancel_timeout`` for cancellation."""
        assert self.deadline is not None
        if self.deadline.forced:
            return
        self.deadline.force()
        if self._watchdog.armed:
            self._watchdog.arm(self.deadline.end + self.config.watchdog_delay)
        logger.warning("forced: skipping the remaining waits", extra={"state": "forced"})
        self._wake()

    # -- what others ask --------------------------------------------------------------------

    def websocket_done(self) -> None:
        """A websocket handler returned while draining: the drain may be over."""
        self._wake()

    def remaining(self) -> float | None:
        """Seconds left before the deadline, or None before the first trigger."""
        return None if self.deadline is None else self.deadline.remaining()

    async def wait_drained(self) -> None:
        """Wait until requests and websockets are drained (or their budget is spent)."""
        await self._drained.wait()

    async def wait_stopped(self) -> ShutdownReport:
        """Wait for the sequence to end and return its report.

        Cancellation: cancelling the waiter does not cancel the shutdown.
        """
        assert self._task is not None
        return await asyncio.shield(self._task)

    def progress(self) -> dict[str, object]:
        """The shutdown so far (`ShutdownProgress`), or its report once it ended, as `/drain`
        answers them: JSON-ready, with the one-line ``summary`` the command line prints."""
        if self.report is not None:
            return self.report.to_dict()
        assert self.deadline is not None
        requests = self._requests
        return ShutdownProgress(
            trigger=self.trigger_name or "unknown",
            forced=self.deadline.forced,
            started_at=self.started_at,
            elapsed=time.monotonic() - self.deadline.start,
            phases=self._lifecycle.shutdown_phases(),
            requests_drained_count=requests.drained_count,
            requests_rejected_count=requests.rejected_count,
            requests_in_flight_count=requests.in_flight,
            websockets_closed=dict(self._websockets_closed),
        ).to_dict()

    # -- the sequence -----------------------------------------------------------------------

    async def _run(self) -> ShutdownReport:
        deadline = self.deadline
        assert deadline is not None
        # 1. Draining: keep serving while load balancers notice the failing readiness. After
        #    a handover (a gunicorn reload) no balancer needs telling: serve until the server
        #    has stopped accepting, so that nothing new reaches us to be refused.
        if self.handed_over:
            await wait_stopped_accepting(deadline.drain_end)
        else:
            await self._wait_until(lambda: False, lambda: deadline.delay_end)
        # 2. Closing: refuse new requests, and say goodbye to websockets ourselves, before the
        #    server's own sweep closes them with its code and no reason.
        self._lifecycle.advance(State.CLOSING)
        logger.info("closing: refusing new requests", extra={"state": "closing"})
        self._close_websockets()
        # The closing notice: long-lived responses (server-sent events, long polls) end
        # themselves now, their clients seeing the body end, rather than cut at the deadline.
        self._notice.give()
        # 3. In-flight requests and websocket handlers get until the cancel budget. The
        #    server keeps listening meanwhile, so a late client gets a 503 with Retry-After
        #    rather than a refused connection.
        requests, registry = self._requests, self._registry
        await self._wait_until(
            lambda: requests.in_flight == 0 and not registry.websockets,
            lambda: deadline.drain_end,
        )
        self._drained.set()
        # 4. Now the server may stop listening and wait for its connections, which the
        #    stopping phase is about to end.
        self._forward_signals(upto=1)
        # 5. Stopping: cancel what is left, requests first, then spawned tasks, then workers
        #    in reverse order of registration (later workers may depend on earlier ones).
        self._lifecycle.advance(State.STOPPING)
        logger.info("stopping: cancelling what is left", extra={"state": "stopping"})
        report = await self._stop_tasks(deadline)
        # 6. Every handler has ended: a connection whose client stopped reading would hold
        #    the server's own shutdown to the deadline, so it ends now (named in the report).
        connections = await self._server_stop.end_stalled()
        if connections:
            report = dataclasses.replace(report, connections_ended=connections)
        # 7. Stopped: the app's own lifespan shutdown may now run.
        self._lifecycle.advance(State.STOPPED)
        self.report = report
        log_report(report)
        self._after_stopped(deadline)
        if self.exiting:
            # What is still open at the deadline ends then, for servers that would wait
            # for it with no bound of their own.
            self._server_stop.end_all_at(deadline.end, self._connections_ended_late)
        return report

    async def _wait_until(self, done: Callable[[], bool], mark: Callable[[], float]) -> None:
        # `mark` is read again after every wake-up: a forcing signal or a sibling's earlier
        # deadline moves it.
        while not done():
            until = mark()
            if time.monotonic() >= until:
                return
            if self._wakeup.done():
                self._wakeup = self._loop.create_future()
            await wait_resisting(self._wakeup, until)

    def _wake(self) -> None:
        if not self._wakeup.done():
            self._wakeup.set_result(None)

    def _close_websockets(self) -> None:
        # Not awaited here: a slow close must not delay the others nor the drain. Each one
        # is counted when its frame is out; those still pending are cancelled in step 5.
        code, reason = self.config.websocket_close_code, self.config.websocket_close_reason
        for connection in list(self._registry.websockets.values()):
            close = self._loop.create_task(connection.close(code, reason))
            close.add_done_callback(self._websocket_closed)
            self._closes.append(close)

    def _websocket_closed(self, close: asyncio.Task[None]) -> None:
        if not close.cancelled() and close.exception() is None:
            self._websockets_closed[self.config.websocket_close_code] += 1
        self._wake()

    async def _stop_tasks(self, deadline: Deadline) -> ShutdownReport:
        registry = self._registry
        requests = self._find_requests() if self._requests.in_flight else []
        websockets = list(registry.websockets)
        closes = [close for close in self._closes if not close.done()]
        if requests:
            # Nothing runs between this and the cancel: each count is the one before ours.
            self._requests.deadline_cancels = {task: task.cancelling() for task in requests}
        records = registry.records
        outcome = await cancel_and_wait(
            # Newest first: spawned tasks, then workers in reverse order of registration.
            [*requests, *websockets, *closes, *reversed(records)],
            deadline=deadline.stop_end(),
            notified=lambda watcher: registry.stopping_all(CANCEL_MESSAGE, watcher),
            notified_tasks=records,
        )
        self._abandoned = outcome.abandoned
        untracked = {*requests, *websockets, *closes}
        abandoned = []
        for task in outcome.abandoned:
            registry.abandon(task)
            record = records.get(task)
            if record is not None:
                abandoned.append(AbandonedTask.of(task, record.id, record.name, record.kind.value))
            elif task not in closes:
                kind = Kind.REQUEST if task in requests else Kind.WEBSOCKET
                abandoned.append(AbandonedTask.of(task, id(task), task.get_name(), kind.value))
        return self._report(
            deadline,
            websockets_cancelled_count=sum(1 for task in websockets if task in outcome.stopped),
            cut_short=tuple(
                sorted(task.get_name() for task in outcome.cut_short if task not in untracked)
            ),
            abandoned=tuple(abandoned),
        )

    def _report(self, deadline: Deadline, **outcome: Any) -> ShutdownReport:
        # What the requests, websockets, tasks and the notice say now; *outcome* is what
        # only the stopping phase knows (the tasks it cancelled).
        requests, endings = self._requests, self._registry.endings
        return ShutdownReport(
            trigger=self.trigger_name or "unknown",
            forced=deadline.forced,
            started_at=self.started_at,
            duration=time.monotonic() - deadline.start,
            phases=self._lifecycle.shutdown_phases(),
            requests_drained_count=requests.drained_count,
            requests_rejected_count=requests.rejected_count,
            requests_cancelled_count=requests.cancelled_count,
            requests_cut_count=requests.cut_count,
            requests_cut=tuple(requests.cut_names),
            streams_ended_count=self._notice.ended_count,
            websockets_closed=dict(self._websockets_closed),
            # Closes that never went out: cancelled by the stopping phase, or still pending.
            # One that failed found its client gone, which needs no close frame.
            websockets_unclosed_count=sum(
                1 for close in self._closes if close.cancelled() or not close.done()
            ),
            tasks_finished_count=endings.get(Ending.COMPLETED, 0),
            tasks_cancelled_count=endings.get(Ending.CANCELLED, 0),
            tasks_failed_count=endings.get(Ending.FAILED, 0),
            **outcome,
        )

    def _connections_ended_late(self, connections: tuple[str, ...]) -> None:
        # Ended at the deadline, after the report was logged: the logged warning names
        # them, and the report kept (for `/metrics` and `last_report`) counts them too.
        if self.report is not None:
            ended = (*self.report.connections_ended, *connections)
            self.report = dataclasses.replace(self.report, connections_ended=ended)

    def _last_words(self) -> None:
        # In the watchdog's thread, right before it ends the process: the report says the
        # watchdog ended it. Before the stopping phase ended there is no report yet (a
        # loop blocked in sync code, a step that hangs): what is known so far, then.
        report = self.report
        if report is None:
            deadline = self.deadline
            if deadline is None:
                return  # the loop never began the shutdown: the watchdog's dump says why
            running = [(t, r) for t, r in list(self._registry.records.items()) if not t.done()]
            abandoned = tuple(
                AbandonedTask.of(task, record.id, record.name, record.kind.value)
                for task, record in running
            )
            report = self._report(deadline, abandoned=abandoned)
        log_summary(dataclasses.replace(report, ended_by_watchdog=True))

    def _after_stopped(self, deadline: Deadline) -> None:
        if self._signals.default_action:
            self._forward_signals()  # no server handler: the process ends with the signal
        elif self._signals_forwarded < len(self._signals_received):
            # A forcing signal still held goes to the server when the app's own shutdown
            # completed (`finish`; uvicorn would skip it on a second SIGINT), or at the
            # deadline if the server never gets that far.
            delay = deadline.remaining() if deadline.remaining() > 0 else 0.0
            self._loop.call_later(delay, self._forward_signals)
        if self.exiting:
            return
        # Nothing said this process should end (a preStop /drain, drain(), a critical worker
        # that gave up): ask the server to stop as if it got SIGTERM, or fail liveness so
        # that the orchestrator restarts the process. Never linger serving 503.
        replaceable = self._is_replaceable() or replaces_exited_workers()  # gunicorn restarts it
        if self._signals.can_stop_server and not replaceable:
            logger.info(
                "stopped without a signal: asking the server to exit",
                extra={"state": "stopped"},
            )
            self.exiting = True
            if self.config.watchdog:
                end = time.monotonic() + self.config.cancel_timeout
                self._watchdog.arm(end + self.config.watchdog_delay)
            self._server_stop.bound(deadline.remaining())
            self._signals.forward(signal.SIGTERM)
        else:
            self.lingering = True
            logger.warning(
                "stopped, and no signal will end this process: %s/health/live now fails so "
                "that it is restarted",
                self.config.path_prefix,
                extra={"state": "stopped"},
            )

    # -- signals ----------------------------------------------------------------------------

    def _arm_watchdog_now(self, sig: int) -> None:
        # In the signal handler, before the loop hears of the signal (it may never: a handler
        # blocking it in sync code is the case the watchdog exists for). A first signal gets
        # the grace period, a later one cancel_timeout, as `trigger` and `force` will.
        config = self.config
        if not config.watchdog:
            return
        now = time.monotonic()
        if self.deadline is None:
            end = now + config.grace_period
        elif self._signals_received:
            end = min(self.deadline.end, now + config.cancel_timeout)
        else:
            end = max(self.deadline.end, now + config.cancel_timeout)
        self._watchdog.arm(end + config.watchdog_delay)

    def _on_signal(self, sig: int) -> None:
        self._signals_received.append(sig)
        name = signal.Signals(sig).name
        first_trigger = self.deadline is None
        self.trigger(f"signal {name}", exiting=True)
        if first_trigger:
            if listener_taken_over():  # a sibling accepts from now on (gunicorn reload)
                self.handed_over = True
                self._forward_signals(upto=1)  # so stop accepting now, not after closing
            return
        if len(self._signals_received) == 1:
            # The sequence began elsewhere (preStop drain endpoint, API): this is the first
            # signal. Once drained it goes to the server at once; before, it waits its turn.
            if self._drained.is_set():
                self._forward_signals()
            return
        self.force()
        # The first signal goes to the server now, so it stops accepting and waits for its
        # connections, which the stopping phase is about to end. The forcing one is held
        # until the app's own shutdown has run (see `_after_stopped`): uvicorn, on a second
        # SIGINT, skips lifespan shutdown and dies before any cleanup could run.
        self._forward_signals(upto=1)

    def _forward_signals(self, upto: int | None = None) -> None:
        if self._signals.default_action and self._lifecycle.state is not State.STOPPED:
            return  # forwarding would end the process at once: wait until stopped
        limit = len(self._signals_received) if upto is None else upto
        while self._signals_forwarded < min(limit, len(self._signals_received)):
            sig = self._signals_received[self._signals_forwarded]
            if self._signals_forwarded == 0 and self.deadline is not None:
                # The server stops now and waits for its connections: no longer than us.
                self._server_stop.bound(self.deadline.remaining())
            self._signals_forwarded += 1
            logger.info("passing %s on to the server", signal.Signals(sig).name)
            self._signals.forward(sig)
