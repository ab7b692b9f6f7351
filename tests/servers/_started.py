"""The one way the tests' real processes (servers, Prometheus, Chromium, containers) are used
as context managers: started on entry, and stopped on exit, or at once when starting fails
half-way, since a process that never became ready is still ours to end."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Started:
    """A context manager over `start` and `stop`, which subclasses define.

    `stop` must be safe to call whatever `start` got to, and more than once.
    """

    def start(self) -> None:
        """Start the process and wait until it is ready."""
        raise NotImplementedError

    def stop(self) -> None:
        """End what `start` began, if anything; never raises for a process already gone."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
