"""The shutdown sequence: draining, closing, stopping, stopped, under one deadline.

Read `Shutdown._run` top to bottom: each step is a method, with why it comes where it does.
Every wait is bounded by the deadline and cut short by a forcing second signal.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._cancel import CANCEL_MESSAGE, cancel_and_wait
from ._registry import Kind
from ._report import AbandonedTask, Phase, ShutdownReport
from ._server_facts import check_kill_timeout, listener_taken_over, wait_stopped_accepting
from ._signals import SignalChain
from ._state import State
from ._watchdog import Watchdog

if TYPE_CHECKING:
    from ._supervisor import Supervisor

__all__ = ["Shutdown"]

logger = logging.getLogger("asgi_supervisor")


class Shutdown:
    """One lifespan's shutdown: its triggers, its deadline, and the task that runs it."""

    def __init__(self, supervisor: Supervisor, loop: asyncio.AbstractEventLoop) -> None:
        self._sup = supervisor
        self._loop = loop
        self.config = supervisor.config
        self.trigger_name: str | None = None
        self.forced = False
        # Another process took over our listener (issue 12): see step 1 of `_run`.
        self.handed_over = False
        self._started_at = 0.0
        self._t0 = 0.0
        self.deadline = float("inf")
        self._task: asyncio.Task[ShutdownReport] | None = None
        # Set whenever a condition a wait may be watching changes (a request ended, force).
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._signals = SignalChain(loop, self._on_signal, self._arm_watchdog_now)
        self._signals_received: list[int] = []
        self._signals_forwarded = 0
        self._watchdog = Watchdog(loop)
        self._abandoned: frozenset[asyncio.Task[Any]] = frozenset()
        self.requests_drained_count = 0
        self.requests_rejected_count = 0
        self._requests_cancelled_count = 0
        self.websockets_closed: collections.Counter[int] = collections.Counter()

    # -- triggers ---------------------------------------------------------------------------

    def install_signals(self) -> None:
        """Chain our signal handlers onto the server's, if the settings ask for it."""
        check_kill_timeout(self.config)  # a server that kills before our deadline (issue 12)
        if self.config.handle_signals:
            self._signals.install()

    def restore_signals(self) -> None:
        """Hand on any signal still held, give the handlers back, and disarm the watchdog.

        Called when the app's own lifespan shutdown has completed.
        """
        self._forward_signals()
        self._signals.restore()
        # Scenario: a task swallowed every cancellation and was abandoned. After the server
        # returns, asyncio.run cancels every task left and waits for each with no limit
        # (on SIGINT, or as PID 1 where the re-raised SIGTERM is dropped), so it would hang
        # the exit forever. The watchdog stays armed for exactly that case.
        if all(task.done() for task in self._abandoned):
            self._watchdog.disarm()

    def trigger(self, name: str, *, exiting: bool = False) -> None:
        """Start the sequence once; later triggers join it. *exiting* arms the watchdog."""
        if self._task is None:
            self.trigger_name = name
            self._started_at = time.time()
            self._t0 = self._loop.time()
            self.deadline = self._t0 + self.config.grace_period
            self._sup.lifecycle.advance(State.DRAINING)
            self._sup.stopping.set()
            logger.warning(
                "draining: %s; deadline in %.1f s",
                name,
                self.config.grace_period,
                extra={"state": "draining", "trigger": name},
            )
            self._task = self._loop.create_task(self._run(), name="asgi-supervisor shutdown")
        if exiting and self.config.watchdog:
            # Scenario: /drain was called long ago and this SIGTERM comes after the deadline;
            # the app's own shutdown still deserves cancel_timeout before the hard stop.
            remaining = max(self.deadline - self._loop.time(), self.config.cancel_timeout)
            self._watchdog.arm(time.monotonic() + remaining + self.config.watchdog_delay)

    def force(self) -> None:
        """Skip the remaining waits and keep at most ``cancel_timeout`` for cancellation."""
        if self.forced:
            return
        self.forced = True
        self.deadline = min(self.deadline, self._loop.time() + self.config.cancel_timeout)
        if self._watchdog.armed:
            remaining = self.deadline - self._loop.time()
            self._watchdog.arm(time.monotonic() + remaining + self.config.watchdog_delay)
        logger.warning(
            "forced: skipping the remaining waits", extra={"state": self._sup.state.value}
        )
        self._wakeup.set()

    def _arm_watchdog_now(self, sig: int) -> None:
        # In the signal handler, before the loop hears of the signal (it may never: a handler
        # blocking it in sync code is the case the watchdog exists for). A first signal gets
        # the grace period, a later one cancel_timeout, as `trigger` and `force` will.
        if not self.config.watchdog:
            return
        if self._task is None:
            budget = self.config.grace_period
        elif self._signals_received:
            budget = self.config.cancel_timeout
        else:
            budget = max(self.deadline - self._loop.time(), self.config.cancel_timeout)
        self._watchdog.arm(time.monotonic() + budget + self.config.watchdog_delay)

    def _on_signal(self, sig: int) -> None:
        self._signals_received.append(sig)
        name = signal.Signals(sig).name
        if self._task is None:
            self.trigger(f"signal {name}", exiting=True)
            if listener_taken_over():  # a sibling accepts from now on (gunicorn reload): issue 12
                self.handed_over = True
                self._forward_signals(upto=1)  # so stop accepting now, not after closing
            return
        if len(self._signals_received) == 1:
            # The sequence began elsewhere (preStop drain endpoint, API): this is the first
            # signal. Once drained it goes to the server at once; before, it waits its turn.
            self.trigger(f"signal {name}", exiting=True)
            if self._drained.is_set():
                self._forward_signals()
            return
        self.trigger(f"signal {name}", exiting=True)
        self.force()
        # The first signal goes to the server now, so it stops accepting and waits for its
        # connections, which the stopping phase is about to end. The forcing one is held
        # until the app's own shutdown has run (see step 6 of `_run`): uvicorn, on a second
        # SIGINT, skips lifespan shutdown and dies before any cleanup could run.
        self._forward_signals(upto=1)

    def _forward_signals(self, upto: int | None = None) -> None:
        if self._signals.default_action and self._sup.lifecycle.state is not State.STOPPED:
            return  # forwarding would end the process at once: wait until stopped
        limit = len(self._signals_received) if upto is None else upto
        while self._signals_forwarded < min(limit, len(self._signals_received)):
            sig = self._signals_received[self._signals_forwarded]
            self._signals_forwarded += 1
            logger.info("passing %s on to the server", signal.Signals(sig).name)
            self._signals.forward(sig)

    # -- what the middleware calls ----------------------------------------------------------

    def request_done(self) -> None:
        """An in-flight request finished while draining."""
        self.requests_drained_count += 1
        self._wakeup.set()

    def websocket_done(self) -> None:
        """A websocket handler returned while draining."""
        self._wakeup.set()

    def remaining(self) -> float | None:
        """Seconds left before the deadline, or None before the first trigger."""
        if self._task is None:
            return None
        return max(0.0, self.deadline - self._loop.time())

    def progress(self) -> dict[str, object]:
        """The report so far, as `/drain` answers it before the sequence has ended."""
        if self._sup.last_report is not None:
            return self._sup.last_report.to_dict()
        return {
            "trigger": self.trigger_name,
            "forced": self.forced,
            "started_at": self._started_at,
            "elapsed": round(self._loop.time() - self._t0, 6),
            "phases": [phase.to_dict() for phase in self._phases()],
            "requests": {
                "drained": self.requests_drained_count,
                "rejected": self.requests_rejected_count,
                "in_flight": len(self._sup.registry.requests),
            },
            "websockets_closed": {str(c): n for c, n in sorted(self.websockets_closed.items())},
        }

    async def wait_drained(self) -> None:
        """Wait until requests and websockets are drained (or their budget is spent)."""
        await self._drained.wait()

    async def wait_stopped(self) -> ShutdownReport:
        """Wait for the sequence to end and return its report.

        Cancellation: cancelling the waiter does not cancel the shutdown.
        """
        assert self._task is not None
        return await asyncio.shield(self._task)

    # -- the sequence -----------------------------------------------------------------------

    async def _run(self) -> ShutdownReport:
        sup = self._sup
        # 1. Draining: keep serving while load balancers notice the failing readiness.
        if self.handed_over:  # issue 12: no balancer to wait for; serve until the server
            #  has stopped accepting, so nothing new reaches us to be refused
            await wait_stopped_accepting(self.deadline - self.config.cancel_timeout)
        else:
            await self._wait_until(lambda: False, self._t0 + self.config.effective_shutdown_delay)
        # 2. Closing: refuse new requests, and say goodbye to websockets ourselves, before the
        #    server's own sweep closes them with its code and no reason.
        sup.lifecycle.advance(State.CLOSING)
        logger.info("closing: refusing new requests", extra={"state": "closing"})
        await self._close_websockets()
        # 3. In-flight requests and websocket handlers get until the cancel budget. The
        #    server keeps listening meanwhile, so a late client gets a 503 with Retry-After
        #    rather than a refused connection.
        registry = sup.registry
        await self._wait_until(
            lambda: not registry.requests and not registry.websockets,
            self.deadline - self.config.cancel_timeout,
        )
        self._drained.set()
        # 4. Now the server may stop listening and wait for its connections, which the
        #    stopping phase is about to end.
        self._forward_signals(upto=1)
        # 5. Stopping: cancel what is left, requests first, then spawned tasks, then workers
        #    in reverse order of registration (later workers may depend on earlier ones).
        sup.lifecycle.advance(State.STOPPING)
        outcome_report = await self._stop_tasks()
        # 6. Stopped: the app's own lifespan shutdown may now run. A forcing signal still held
        #    goes to the server when that shutdown completes (uvicorn would skip it on a
        #    second SIGINT), or at the deadline if the server never gets that far.
        sup.lifecycle.advance(State.STOPPED)
        sup.last_report = outcome_report
        if self._signals.default_action:
            self._forward_signals()
        elif self._signals_forwarded < len(self._signals_received):
            self._loop.call_at(max(self.deadline, self._loop.time()), self._forward_signals)
        self._log_report(outcome_report)
        return outcome_report

    async def _wait_until(self, done: Callable[[], bool], until: float) -> None:
        while not done() and not self.forced:
            remaining = min(until, self.deadline) - self._loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                return
            except asyncio.CancelledError:
                _resist_cancellation()

    async def _close_websockets(self) -> None:
        connections = list(self._sup.registry.websockets.values())
        if not connections:
            return
        code, reason = self.config.websocket_close_code, self.config.websocket_close_reason
        closes = [self._loop.create_task(conn.close(code, reason)) for conn in connections]
        budget = max(0.0, self.deadline - self.config.cancel_timeout - self._loop.time())
        done, pending = await asyncio.wait(closes, timeout=min(budget, 1.0) or None)
        for task in pending:
            task.cancel()
        self.websockets_closed[code] += sum(
            1 for task in done if not task.cancelled() and task.exception() is None
        )

    async def _stop_tasks(self) -> ShutdownReport:
        registry = self._sup.registry
        requests = list(registry.requests)
        websockets = list(registry.websockets)
        workers = {r.task for r in registry.workers if r.task is not None}
        spawned = [task for task in registry.records if task not in workers]
        ordered_workers = [
            r.task for r in reversed(registry.workers) if r.task is not None and not r.task.done()
        ]
        tasks = [*requests, *websockets, *reversed(spawned), *ordered_workers]
        self._requests_cancelled_count = sum(1 for t in requests if not t.done())
        registry.cancel_reason = CANCEL_MESSAGE
        # Each tracked task's done callback would cost one more loop callback per task, half
        # again the cost of stopping 10 000 tasks; the bookkeeping is done below in one pass.
        tracked = [task for task in tasks if task in registry.records]
        for task in tracked:
            task.remove_done_callback(registry.task_done)
        stop_deadline = min(self.deadline, self._loop.time() + self.config.cancel_timeout)
        outcome = await cancel_and_wait(tasks, deadline=stop_deadline)
        self._abandoned = outcome.abandoned
        # The bounded history keeps the last entries only: make just those.
        done = list(outcome.done)
        first_kept = len(done) - (registry.history.maxlen or 0)
        for index, task in enumerate(done):
            registry.task_done(task, remember=index >= first_kept)
        for task in outcome.abandoned:
            if task in registry.records:
                task.add_done_callback(registry.task_done)
        finished = cancelled = failed = 0
        for task in outcome.done:
            if task.cancelled():
                cancelled += 1
            elif task.exception() is not None:
                failed += 1
            else:
                finished += 1
        abandoned = []
        for task in outcome.abandoned:
            record = registry.records.get(task)  # still there: abandoned tasks never ended
            if record is not None:
                abandoned.append(AbandonedTask.of(task, record.id, record.name, record.kind.value))
            else:
                kind = Kind.REQUEST if task in requests else Kind.WEBSOCKET
                abandoned.append(AbandonedTask.of(task, id(task), task.get_name(), kind.value))
        now = self._loop.time()
        return ShutdownReport(
            trigger=self.trigger_name or "unknown",
            forced=self.forced,
            started_at=self._started_at,
            duration=now - self._t0,
            phases=self._phases(),
            requests_drained_count=self.requests_drained_count,
            requests_rejected_count=self.requests_rejected_count,
            requests_cancelled_count=self._requests_cancelled_count,
            websockets_closed=dict(self.websockets_closed),
            tasks_finished_count=finished,
            tasks_cancelled_count=cancelled,
            tasks_failed_count=failed,
            tasks_recancelled_count=outcome.recancelled_count,
            abandoned=tuple(abandoned),
        )

    def _phases(self) -> tuple[Phase, ...]:
        # Loop time and monotonic time share a clock on asyncio, not always on uvloop.
        trigger = self._t0 + time.monotonic() - self._loop.time()
        return self._sup.lifecycle.shutdown_phases(since=trigger)

    def _log_report(self, report: ShutdownReport) -> None:
        level = logging.INFO if report.clean else logging.ERROR
        summary = report.to_dict()
        for task in report.abandoned:
            logger.error(
                "abandoned %s %r at the deadline, stuck at %s",
                task.kind,
                task.name,
                task.where,
                extra={"task": task.name, "where": task.where},
            )
        logger.log(level, "shutdown report: %s", summary, extra={"report": summary})


def _resist_cancellation() -> None:
    # The shutdown task must not die half-way: asyncio.run cancels every task when the
    # server returns early (a forced exit), yet our steps are all bounded by the deadline.
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
