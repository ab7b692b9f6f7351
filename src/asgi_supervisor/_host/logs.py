"""Logs that show: the supervisor's records reach the server's log when nothing else would.

Under a plain ``uvicorn main:app`` the root logger has no handler and sits at WARNING, so a
library's INFO records are dropped and its warnings reach stderr through `logging.lastResort`,
unformatted. uvicorn configures only its own loggers (``uvicorn.error``, at INFO, with a
formatted handler). So, at lifespan startup, when no handler of our own or above us would take
our records, `show_logs_through_server` adds one handler to the ``asgi_supervisor`` logger (never
to the root) that hands each record to the server's error logger:

* uvicorn (also gunicorn with uvicorn workers, which copy gunicorn's handlers onto it):
  ``uvicorn.error``; hypercorn: ``hypercorn.error``; granian: ``_granian``; other gunicorn
  workers: ``gunicorn.error``;
* no server logger with a handler: what Python does without us, `logging.lastResort` for
  WARNING and above.

The server's handlers get a copy of each record, with its level and ``extra=`` fields, whose
message starts with ``asgi_supervisor:`` (server formats show no logger names). The bridge
checks again at every record that nobody else has a handler by then (logging configured after
startup), so no line is written twice; users who configure logging themselves get every
record on ``asgi_supervisor``, untouched, as before.
"""

from __future__ import annotations

import logging

__all__ = ["SERVER_LOGGERS", "show_logs_through_server"]

LOGGER_NAME = "asgi_supervisor"
# In order of preference: the first that exists and has a handler on its path takes our records.
SERVER_LOGGERS = ("uvicorn.error", "hypercorn.error", "_granian", "gunicorn.error")


class _ServerLogBridge(logging.Handler):
    """Hands a record to the server's error logger, unless another handler will take it."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if _has_handlers(self._logger, ignore=self):
                return  # logging was configured after startup: those handlers have it
            target = _server_logger(self._logger.manager)
            if target is None:
                last_resort = logging.lastResort
                if last_resort is not None and record.levelno >= last_resort.level:
                    last_resort.handle(record)
                return
            if target.isEnabledFor(record.levelno):
                target.handle(_prefixed(record))
        except Exception:
            self.handleError(record)


def show_logs_through_server(logger: logging.Logger | None = None) -> bool:
    """Make the supervisor's records visible in the server's log, if nothing else would.

    Called at lifespan startup, when the server and the app have configured logging. Does
    nothing when *logger* (``asgi_supervisor`` by default) or one above it has a handler;
    otherwise adds the bridge (once) and, when the logger's level is unset, sets it to INFO so
    that the drain's phases and the report are not dropped before any handler sees them.

    Returns:
        True when the bridge is in place.
    """
    logger = logging.getLogger(LOGGER_NAME) if logger is None else logger
    if any(isinstance(handler, _ServerLogBridge) for handler in logger.handlers):
        return True
    if _has_handlers(logger, ignore=None):
        return False
    logger.addHandler(_ServerLogBridge(logger))
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return True


def _has_handlers(logger: logging.Logger, *, ignore: logging.Handler | None) -> bool:
    """`Logger.hasHandlers`, not counting *ignore*."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(handler is not ignore for handler in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def _server_logger(manager: logging.Manager) -> logging.Logger | None:
    for name in SERVER_LOGGERS:
        # Look without creating: getLogger would add loggers for servers that are not here.
        candidate = manager.loggerDict.get(name)
        if isinstance(candidate, logging.Logger) and candidate.hasHandlers():
            return candidate
    return None


def _prefixed(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of *record* whose message says where it comes from: server formats omit names."""
    copy = logging.makeLogRecord(record.__dict__)
    copy.msg = f"{record.name}: {record.getMessage()}"
    copy.args = None
    return copy
