"""Code a type checker must refuse: each line marked ``# error: [code]`` is one mypy --strict
reports, and no other line is. `tests/supervisor/test_settings.py` runs it."""

from __future__ import annotations

from asgi_supervisor import Config, Settings, Supervisor

Supervisor(grace_peroid=5)  # error: [call-arg]
Supervisor(shutdown_delay="five")  # error: [arg-type]
Supervisor(handle_signals="yes")  # error: [arg-type]
Supervisor(on_critical_failure="explode")  # error: [arg-type]
Supervisor.from_env(cancel_timout=1.0)  # error: [call-arg]
Supervisor.from_env(path_prefix=None)  # error: [arg-type]
Config.from_env(retry_after=1.5)  # error: [arg-type]
settings: Settings = {"grace_period": "25"}  # error: [typeddict-item]
supervisor = Supervisor()


@supervisor.worker(restart="sometimes")  # error: [call-overload, untyped-decorator]
async def misspelt_policy() -> None: ...


@supervisor.worker  # error: [type-var]
async def needs_an_argument(url: str) -> None: ...


async def fetch(url: str) -> None: ...


supervisor.add_worker(fetch, 42)  # error: [arg-type]
supervisor.spawn(fetch)  # error: [arg-type]
