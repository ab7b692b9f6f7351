"""Code a type checker must accept: settings spelt right, with the right types, and workers
whose decorated type is kept. `tests/supervisor/test_settings.py` runs mypy --strict on it."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, assert_type

from asgi_supervisor import Config, Restart, Settings, Supervisor

settings: Settings = {"grace_period": 20.0, "shutdown_delay": None, "path_prefix": "/_ops"}
supervisor = Supervisor(**settings, on_critical_failure="shutdown")
Supervisor(grace_period=10, cancel_timeout=2.5, handle_signals=False, admin_token=None)
Supervisor.from_env({"ASGI_SUPERVISOR_GRACE_PERIOD": "12"}, shutdown_delay=1.0)
Supervisor(config=Config.from_env(retry_after=3, loop_lag_threshold=None))


@supervisor.worker
async def plain() -> None: ...


@supervisor.worker(restart="always", critical=True, backoff_delay=1.0, backoff_max_delay=5.0)
async def counted() -> int:
    return 1


@supervisor.worker(restart=Restart.NEVER, name="enum-policy")
async def by_enum() -> None: ...


assert_type(plain, Callable[[], Coroutine[Any, Any, None]])
assert_type(counted, Callable[[], Coroutine[Any, Any, int]])


async def fetch(url: str, attempts: int) -> None: ...


supervisor.add_worker(fetch, "https://example.com/feed", 3, restart="on-failure")
task = supervisor.spawn(fetch, "https://example.com", 1)
