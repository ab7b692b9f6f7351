"""The shutdown budget: how ``grace_period`` is shared, and the time kept for requests in flight.

One deadline, ``grace_period`` seconds from the first trigger, is cut into three shares::

    trigger          closing                             stopping              end
      |-- shutdown_delay --|-- requests in flight finish --|-- cancel_timeout --|
      |   (serving, readiness 503)   (new ones get 503)      (cancel, await)    |
      |<------------------------------ grace_period ---------------------------->|

The middle share, the *closing budget* ``grace_period - shutdown_delay - cancel_timeout``,
is all the time a request that arrived before closing has to finish by itself; at its end it
is cancelled and answered 503. The rule (`MIN_IN_FLIGHT`, `shortfall`): the closing budget is
at least 1 s, and at least ``shutdown_delay``. The first bound is a floor under which even a
quick request can be cut. The second: requests keep arriving through the shutdown delay
(that is its purpose: balancers are still routing here), so the last of them start just
before closing, and a budget shorter than the delay means the settings give the balancers
more time to notice than the requests they send get to finish.

Settings that break the rule are refused when a `Config` is built (`check`), with a sentence
that shows the arithmetic. Two values are known only at startup, and the rule is checked
there with them, as a warning (`warn_at_startup`): the automatic shutdown delay in Kubernetes
(``shutdown_delay=None``), and a server that kills the process after SIGTERM (gunicorn's
``--graceful-timeout``, registered by `asgi_supervisor.gunicorn`), which cuts every share it
falls in.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from asgi_supervisor._host.server_facts import KILL_MARGIN, kill_timeout

if TYPE_CHECKING:
    from .config import Config

__all__ = ["MIN_IN_FLIGHT", "check", "shortfall", "warn_at_startup"]

logger = logging.getLogger("asgi_supervisor")

# The closing budget's floor, in seconds.
MIN_IN_FLIGHT = 1.0


def needed(shutdown_delay: float) -> float:
    """The least closing budget the rule allows for *shutdown_delay*."""
    return max(MIN_IN_FLIGHT, shutdown_delay)


def shortfall(grace_period: float, shutdown_delay: float, cancel_timeout: float) -> str | None:
    """The arithmetic of a closing budget that breaks the rule, as a sentence; else None."""
    left = grace_period - shutdown_delay - cancel_timeout
    floor = needed(shutdown_delay)
    if left >= floor:
        return None
    why = (
        _s(MIN_IN_FLIGHT)
        if floor == MIN_IN_FLIGHT
        else f"the {_s(shutdown_delay)} the balancers get"
    )
    return (
        f"grace_period={_n(grace_period)} - shutdown_delay={_n(shutdown_delay)} - "
        f"cancel_timeout={_n(cancel_timeout)} leaves {_s(max(left, 0.0))} for the requests in "
        f"flight to finish once new ones are refused, less than {why}: they would be "
        "cancelled and answered 503"
    )


def check(grace_period: float, shutdown_delay: float, cancel_timeout: float) -> None:
    """Refuse settings whose closing budget breaks the rule.

    Raises:
        ValueError: the sentence shows the arithmetic and the values that would do.
    """
    problem = shortfall(grace_period, shutdown_delay, cancel_timeout)
    if problem is None:
        return
    grace = shutdown_delay + needed(shutdown_delay) + cancel_timeout
    fixes = [f"raise grace_period to {_n(grace)} or more"]
    cancel = grace_period - shutdown_delay - needed(shutdown_delay)
    if cancel > 0:
        fixes.append(f"lower cancel_timeout to {_n(cancel)} or less")
    if shutdown_delay > 0:
        fixes.append("lower shutdown_delay")
    raise ValueError(f"{problem}. {_either(fixes).capitalize()}.")


def warn_at_startup(config: Config) -> None:
    """Check the rule again with what only startup knows, and warn once per problem.

    The automatic shutdown delay (``shutdown_delay=None`` in Kubernetes) and a server's kill
    timeout (gunicorn's ``--graceful-timeout``) are read now, in the process that serves.
    """
    grace, cancel = config.grace_period, config.cancel_timeout
    delay = config.effective_shutdown_delay
    if config.shutdown_delay is None and delay > 0:
        problem = shortfall(grace, delay, cancel)
        if problem is not None:
            logger.warning(
                "%s. shutdown_delay=None is %s in Kubernetes (KUBERNETES_SERVICE_HOST is set): "
                "set shutdown_delay to the seconds your load balancers need, or raise "
                "grace_period to %s or more.",
                problem,
                _s(delay),
                _n(delay + needed(delay) + cancel),
                extra={"grace_period": grace, "shutdown_delay": delay, "cancel_timeout": cancel},
            )
    kill = kill_timeout()
    if kill is None or kill.seconds >= grace + KILL_MARGIN:
        return
    # The kill comes `seconds` after SIGTERM, and a shutdown begun by SIGTERM loses every
    # share that falls after it: the requests in flight too, when it comes that early.
    left = min(grace - cancel, kill.seconds) - delay
    cut = ""
    if left < needed(delay):
        cut = (
            f"; the requests in flight get {_s(max(left, 0.0))} after "
            f"shutdown_delay={_n(delay)} before the kill, less than the {_s(needed(delay))} "
            "they need, so they are killed too"
        )
    logger.warning(
        "%s's %s is %s s, shorter than grace_period=%s s plus a %s s margin: %s kills this "
        "process before the shutdown ends, and the app's own shutdown never runs%s. Set %s "
        "to %s or more, or lower grace_period.",
        kill.server,
        kill.setting,
        _n(kill.seconds),
        _n(grace),
        _n(KILL_MARGIN),
        kill.server,
        cut,
        kill.setting,
        _n(math.ceil(grace + KILL_MARGIN)),
        extra={"kill_timeout": kill.seconds, "grace_period": grace},
    )


def _either(choices: list[str]) -> str:
    if len(choices) == 1:
        return choices[0]
    return ", ".join(choices[:-1]) + " or " + choices[-1]


def _n(value: float) -> str:
    """A number of seconds as a person writes it: ``6``, ``1.5``, ``0.25``."""
    return f"{value:g}" if value == round(value, 3) else f"{value:.3f}"


def _s(value: float) -> str:
    return f"{_n(value)} s"
