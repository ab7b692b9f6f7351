"""The supervisor's records reach the server's log when, and only when, nothing else takes them.

Each test builds its own logging hierarchy (a `logging.Manager` with its own root), so the
process-wide configuration pytest installs is neither seen nor changed.
"""

from __future__ import annotations

import logging
import re

import pytest

from asgi_supervisor._host.logs import show_logs_through_server
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import bare_app, quiet_supervisor


class ListHandler(logging.Handler):
    """Keeps the records it gets, and each formatted with the server-like format."""

    def __init__(self, fmt: str = "%(levelname)s: %(message)s") -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(fmt))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


def hierarchy(*, server: str | None = "uvicorn.error") -> tuple[logging.Logger, ListHandler]:
    """A fresh logging world: a WARNING root without handlers, as under a plain `uvicorn
    main:app`, and *server*'s logger at INFO with a handler; returns our logger and it."""
    manager = logging.Manager(logging.RootLogger(logging.WARNING))
    handler = ListHandler()
    if server is not None:
        server_logger = manager.getLogger(server)
        server_logger.setLevel(logging.INFO)
        server_logger.addHandler(handler)
    return manager.getLogger("asgi_supervisor"), handler


@pytest.mark.parametrize("server", ["uvicorn.error", "hypercorn.error", "_granian"])
def test_without_logging_config_records_go_through_the_server_logger(server: str) -> None:
    """No handler for our logger: INFO records reach the server's handler once, named, with
    their `extra=` fields."""
    logger, server_handler = hierarchy(server=server)
    assert show_logs_through_server(logger)
    logger.info("closing: refusing new requests", extra={"state": "closing"})
    assert server_handler.lines == ["INFO: asgi_supervisor: closing: refusing new requests"]
    assert server_handler.records[0].state == "closing"  # type: ignore[attr-defined]
    assert server_handler.records[0].name == "asgi_supervisor"


def test_installing_twice_adds_one_bridge() -> None:
    """Each lifespan startup calls it; a record still shows once."""
    logger, server_handler = hierarchy()
    assert show_logs_through_server(logger)
    assert show_logs_through_server(logger)
    logger.warning("forced")
    assert server_handler.lines == ["WARNING: asgi_supervisor: forced"]


def test_a_configured_root_logger_gets_every_record_and_the_server_none() -> None:
    """Users with their own logging (basicConfig, dictConfig, caplog) keep it: no bridge, no
    level change, no line in the server's log."""
    logger, server_handler = hierarchy()
    users = ListHandler()
    root = logger.parent
    assert root is not None
    root.addHandler(users)
    root.setLevel(logging.INFO)
    assert not show_logs_through_server(logger)
    assert logger.level == logging.NOTSET
    logger.info("ready", extra={"state": "ready"})
    assert [r.getMessage() for r in users.records] == ["ready"]
    assert users.records[0].state == "ready"  # type: ignore[attr-defined]
    assert server_handler.records == []


def test_a_handler_on_our_own_logger_counts_as_configured() -> None:
    """A handler on ``asgi_supervisor`` itself (even a NullHandler, to silence it) wins."""
    logger, server_handler = hierarchy()
    logger.addHandler(logging.NullHandler())
    assert not show_logs_through_server(logger)
    logger.warning("forced")
    assert server_handler.records == []


def test_logging_configured_after_startup_takes_over_without_duplicates() -> None:
    """The bridge steps aside at each record once someone else has a handler."""
    logger, server_handler = hierarchy()
    assert show_logs_through_server(logger)
    users = ListHandler()
    assert logger.parent is not None
    logger.parent.addHandler(users)
    logger.warning("forced")
    assert [r.getMessage() for r in users.records] == ["forced"]
    assert server_handler.records == []


def test_the_server_log_level_is_respected() -> None:
    """``uvicorn --log-level warning`` hides our INFO lines too."""
    logger, server_handler = hierarchy()
    manager = logger.manager
    manager.getLogger("uvicorn.error").setLevel(logging.WARNING)
    show_logs_through_server(logger)
    logger.info("closing: refusing new requests")
    logger.error("abandoned")
    assert server_handler.lines == ["ERROR: asgi_supervisor: abandoned"]


def test_without_a_server_logger_warnings_still_reach_last_resort(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a server we do not know, what Python does anyway: WARNING and up on stderr."""
    logger, _ = hierarchy(server=None)
    last_resort = ListHandler()
    last_resort.setLevel(logging.WARNING)
    monkeypatch.setattr(logging, "lastResort", last_resort)
    show_logs_through_server(logger)
    logger.info("closing: refusing new requests")
    logger.warning("forced")
    assert [r.getMessage() for r in last_resort.records] == ["forced"]


async def test_drain_logs_the_report_as_one_line_with_the_dict_in_extra(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real drain: the report record reads as a line, and carries the full report."""
    caplog.set_level(logging.INFO, logger="asgi_supervisor")
    supervisor = quiet_supervisor()
    async with LifespanManager(bare_app(supervisor)):
        await supervisor.drain()
    (record,) = [r for r in caplog.records if r.getMessage().startswith("shutdown report")]
    assert re.fullmatch(
        r"shutdown report: api, clean, \d+\.\d\d s: draining \d+\.\d\d s, closing .*; "
        r"requests drained 0, rejected 0, cancelled 0, cut mid-body 0; streams ended at the "
        r"notice 0; websockets closed 0, cancelled 0; "
        r"tasks finished 0, cancelled 0, failed 0, cut short 0, abandoned 0",
        record.getMessage(),
    )
    assert supervisor.last_report is not None
    assert record.getMessage() == f"shutdown report: {supervisor.last_report.summary()}"
    assert record.report == supervisor.last_report.to_dict()  # type: ignore[attr-defined]
