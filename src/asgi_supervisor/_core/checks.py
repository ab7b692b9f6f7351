"""Readiness checks: run concurrently, each under its own timeout, results cached briefly."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CheckResult", "Checks"]

logger = logging.getLogger("asgi_supervisor")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """The outcome of one readiness check's last run, as ``Supervisor.check_results()`` gives it.

    Example::

        failing = [r.name for r in await supervisor.check_results() if not r.ok]

    Attributes:
        name: the name the check was added under.
        ok: True when it returned anything but False, within its timeout.
        critical: whether a failure makes readiness fail.
        error: why it failed (``"timed out after 1 s"``, ``"ValueError: ..."``), or None;
            for logs and admins, never for anonymous probes (``/health`` shows only ``ok``
            and ``critical``).
        duration: seconds its run took.
    """

    name: str
    ok: bool
    critical: bool
    error: str | None
    duration: float


@dataclass(frozen=True, slots=True)
class _Check:
    name: str
    fn: Callable[[], Awaitable[Any]]
    timeout: float
    critical: bool


class Checks:
    """The registered checks of one supervisor and the cache of their last results.

    Probes arriving together share one run (single flight), and a result is reused for
    ``cache_period`` seconds, so a probe storm does not hammer the dependencies checked.
    """

    def __init__(self, cache_period: float) -> None:
        self._checks: dict[str, _Check] = {}
        self._cache_period = cache_period
        self._results: tuple[CheckResult, ...] = ()
        self._checked_at = -float("inf")
        self._running: asyncio.Task[tuple[CheckResult, ...]] | None = None
        # Runs that ignored cancellation at their timeout, by check name: kept referenced,
        # never awaited, and never started again while one still runs (one leak at most).
        self._stuck: dict[str, tuple[asyncio.Task[Any], float]] = {}

    def add(
        self, name: str, fn: Callable[[], Awaitable[Any]], timeout: float, critical: bool
    ) -> None:
        """Register a check.

        Raises:
            ValueError: the name is taken or empty, or the timeout is not positive.
            TypeError: *fn* is not an async callable.
        """
        if not name:
            raise ValueError("A check needs a non-empty name; it is shown in /health.")
        if name in self._checks:
            raise ValueError(f"A check named {name!r} is already registered; pick another name.")
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"Check {name!r} must be an async function, got {fn!r}.")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"timeout={timeout!r} for check {name!r} must be positive seconds.")
        self._checks[name] = _Check(name, fn, float(timeout), critical)

    async def results(self) -> tuple[CheckResult, ...]:
        """The latest results, running the checks if the cache is stale.

        Cancellation: cancelling the caller does not cancel a run other probes share.
        """
        if not self._checks:
            return ()
        if time.monotonic() - self._checked_at < self._cache_period:
            return self._results
        if self._running is None:
            self._running = asyncio.create_task(self._run_all(), name="asgi-supervisor checks")
        return await asyncio.shield(self._running)

    async def _run_all(self) -> tuple[CheckResult, ...]:
        try:
            results = await asyncio.gather(*(self._run(check) for check in self._checks.values()))
            self._results = tuple(results)
            self._checked_at = time.monotonic()
            return self._results
        finally:
            self._running = None

    async def _run(self, check: _Check) -> CheckResult:
        started = time.monotonic()
        stuck = self._stuck.get(check.name)
        if stuck is not None:
            why = f"still running {started - stuck[1]:.1f} s after its timeout was cancelled"
            logger.warning("check %r failed: %s", check.name, why, extra={"check": check.name})
            return CheckResult(
                name=check.name, ok=False, critical=check.critical, error=why, duration=0.0
            )
        task = asyncio.ensure_future(check.fn())
        # `wait`, not `wait_for`: a check that swallows cancellation must not hang the probe.
        done, _ = await asyncio.wait({task}, timeout=check.timeout)
        error: str | None
        if not done:
            task.cancel()
            self._stuck[check.name] = (task, started)
            task.add_done_callback(lambda task: self._forget(check.name, task))
            error = f"timed out after {check.timeout:g} s"
        elif task.cancelled():
            error = "cancelled"
        elif (exc := task.exception()) is not None:
            error = f"{type(exc).__name__}: {exc}"
        else:
            error = None if task.result() is not False else "returned False"
        if error is not None:
            logger.warning("check %r failed: %s", check.name, error, extra={"check": check.name})
        return CheckResult(
            name=check.name,
            ok=error is None,
            critical=check.critical,
            error=error,
            duration=time.monotonic() - started,
        )

    def _forget(self, name: str, task: asyncio.Task[Any]) -> None:
        self._stuck.pop(name, None)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
