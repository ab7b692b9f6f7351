"""How long the server waits for its connections once it stops: no longer than our deadline.

When the supervisor lets the server stop (it passes the held signal on, or asks the server to
exit after a drain), the server closes its listener and waits for its connections before it
sends ``lifespan.shutdown``. uvicorn waits forever unless ``timeout_graceful_shutdown`` is
set (gunicorn's uvicorn worker never sets it); hypercorn waits ``graceful_timeout`` (3 s by
default), which may be shorter than the cleanup the stopping phase allows, or longer than
what is left. A connection that outlives the stopping phase (a client that stopped reading,
its handler cancelled) then holds the server past the deadline, and the watchdog ends the
process before the app's own lifespan shutdown runs.

So the supervisor sets the server's own wait to what remains of its deadline, by the
server's own setting, where the server lets it:

* **uvicorn** (also under gunicorn's uvicorn worker): ``Config.timeout_graceful_shutdown``,
  which ``Server.shutdown`` reads when it begins to wait, after the signal: setting it when
  the signal is passed on takes effect. The `Config` is reached from the ``Server`` whose
  ``handle_exit`` is the signal handler we chained in front of, or from the lifespan's
  ``receive`` (a method of uvicorn's ``LifespanOn``, which holds the same `Config`).
* **hypercorn**: ``Config.graceful_timeout``, read when its wait begins, after
  ``server.wait_closed()``; reached from the lifespan's ``receive`` (a method of hypercorn's
  ``Lifespan``).
* **granian** has no such setting: it waits for its connections with no limit. There, and
  on hypercorn where ``wait_closed()`` itself waits for every connection (Python 3.12+),
  the supervisor ends the connections left instead (`connections`).

Nothing is imported from the servers: the objects are recognised by the module their
configuration's class comes from.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["bound_server_wait"]

# The server whose configuration class lives in this package, and the setting that bounds
# its wait for connections once it stops.
_SETTINGS = (("uvicorn", "timeout_graceful_shutdown"), ("hypercorn", "graceful_timeout"))


def bound_server_wait(
    parts: Iterable[object], seconds: float, *, unbounded_only: bool = False
) -> str | None:
    """Make the server wait at most *seconds* for its connections once it stops.

    Args:
        parts: objects of the server's that may hold its configuration as ``config``:
            uvicorn's ``Server``, the owner of the lifespan's ``receive``. Others are
            skipped.
        seconds: the longest wait, ``>= 0``.
        unbounded_only: change only a wait that has no bound yet (uvicorn's default).

    Returns:
        The setting changed, for the log (``"uvicorn's timeout_graceful_shutdown"``), or None
        when no part belongs to a server we know, or there was nothing to change.
    """
    for part in parts:
        config = getattr(part, "config", None)
        package = type(config).__module__.partition(".")[0]
        for server, setting in _SETTINGS:
            if package != server or not hasattr(config, setting):
                continue
            if unbounded_only and getattr(config, setting) is not None:
                return None
            setattr(config, setting, max(0.0, seconds))
            return f"{server}'s {setting}"
    return None
