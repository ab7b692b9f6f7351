"""The demo's own settings, read once from the environment (the supervisor's are separate)."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Where the queue lives and how the workers behave.

    Raises:
        ValueError: a variable does not parse or is out of range; the message names it.
    """

    queue_path: str = "./demo-queue.sqlite3"
    workers: int = 2
    lease_period: float = 10.0
    tick_period: float = 1.0
    poll_period: float = 0.5

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"APP_WORKERS={self.workers} must be at least 1.")
        for name in ("lease_period", "tick_period", "poll_period"):
            if not getattr(self, name) > 0:
                raise ValueError(f"APP_{name.upper()}={getattr(self, name)} must be positive.")

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``APP_QUEUE_PATH``, ``APP_WORKERS``, ``APP_LEASE_PERIOD``, ``APP_TICK_PERIOD``."""
        env = os.environ
        try:
            return cls(
                queue_path=env.get("APP_QUEUE_PATH", "./demo-queue.sqlite3"),
                workers=int(env.get("APP_WORKERS", "2")),
                lease_period=float(env.get("APP_LEASE_PERIOD", "10")),
                tick_period=float(env.get("APP_TICK_PERIOD", "1")),
                poll_period=float(env.get("APP_POLL_PERIOD", "0.5")),
            )
        except ValueError as exc:
            raise ValueError(f"Bad demo setting in the environment: {exc}") from None
