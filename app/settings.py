"""The demo's own settings, read once from the environment (the supervisor's are separate)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .jobs import check_url

__all__ = ["Settings"]

DEFAULT_DATABASE_URL = "sqlite:///demo-queue.sqlite3"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Where the queue lives, how the workers behave, and how big a request body may be.

    Raises:
        ValueError: a variable does not parse or is out of range; the message names it.
    """

    database_url: str = DEFAULT_DATABASE_URL
    workers: int = 2
    lease_period: float = 10.0
    tick_period: float = 1.0
    poll_period: float = 0.5
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        check_url(self.database_url)
        if self.workers < 1:
            raise ValueError(f"APP_WORKERS={self.workers} must be at least 1.")
        for name in ("lease_period", "tick_period", "poll_period"):
            if not getattr(self, name) > 0:
                raise ValueError(f"APP_{name.upper()}={getattr(self, name)} must be positive.")
        if self.max_body_bytes < 1:
            raise ValueError(f"APP_MAX_BODY_BYTES={self.max_body_bytes} must be at least 1.")

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``APP_DATABASE_URL``, ``APP_WORKERS``, ``APP_LEASE_PERIOD``,
        ``APP_TICK_PERIOD``, ``APP_POLL_PERIOD`` and ``APP_MAX_BODY_BYTES``."""
        env = os.environ
        if "APP_QUEUE_PATH" in env:
            # Renamed: ignoring it would silently move the queue to the default file.
            raise ValueError(
                f"APP_QUEUE_PATH={env['APP_QUEUE_PATH']!r} is no longer read; set "
                f"APP_DATABASE_URL=sqlite:///{env['APP_QUEUE_PATH']} instead."
            )
        try:
            return cls(
                database_url=env.get("APP_DATABASE_URL", DEFAULT_DATABASE_URL),
                workers=int(env.get("APP_WORKERS", "2")),
                lease_period=float(env.get("APP_LEASE_PERIOD", "10")),
                tick_period=float(env.get("APP_TICK_PERIOD", "1")),
                poll_period=float(env.get("APP_POLL_PERIOD", "0.5")),
                max_body_bytes=int(env.get("APP_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))),
            )
        except ValueError as exc:
            raise ValueError(f"Bad demo setting in the environment: {exc}") from None
