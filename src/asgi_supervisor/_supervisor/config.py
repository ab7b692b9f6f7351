"""Settings of a supervisor: validated once, frozen, and readable from the environment.

Each setting is documented once, in `Config`'s ``Attributes:``; `settings.Settings` is the
same settings as keyword arguments, for type checkers (``Supervisor(**settings)``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any, Unpack

from asgi_supervisor._admin.admin_token import admin_token, admin_token_from_variable

from . import budget
from .settings import Settings, check_setting_names

__all__ = ["DEFAULT_PATH_PREFIX", "Config"]

_ENV_PREFIX = "ASGI_SUPERVISOR_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# Kubernetes sets this in every container; endpoints take a few seconds to forget a pod.
_KUBERNETES_SHUTDOWN_DELAY = 5.0
# Loop-lag detection runs a callback every threshold/2 s: below this it would cost real CPU.
_MIN_LOOP_LAG_THRESHOLD = 0.01
# Reserved for the supervisor, so that no app route is ever shadowed by default, as Spring
# Boot keeps its endpoints under /actuator and Quarkus under /q.
DEFAULT_PATH_PREFIX = "/_supervisor"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Every setting of a `Supervisor`, validated when built.

    Example::

        config = Config.from_env(grace_period=20.0)   # ASGI_SUPERVISOR_* variables, overridden
        supervisor = Supervisor(config=config)

    Durations are seconds. Every setting is also read from ``ASGI_SUPERVISOR_<NAME>`` by
    `from_env` (booleans: ``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``;
    ``none`` clears an optional one).

    The shutdown budget: ``grace_period`` is shared between the phases, and what is left
    for the requests in flight once new ones are refused, ``grace_period - shutdown_delay -
    cancel_timeout``, must be at least 1 s and at least ``shutdown_delay``, or the settings
    are refused (see `budget`).

    Attributes:
        grace_period: seconds from the first trigger that bound the whole shutdown; the
            default fits Kubernetes' 30 s ``terminationGracePeriodSeconds``.
        shutdown_delay: seconds to keep serving after the trigger, with readiness failing,
            so that load balancers stop routing here before anything is refused. ``None``
            means 5 s in Kubernetes (``KUBERNETES_SERVICE_HOST`` is set), 0 elsewhere.
        cancel_timeout: the part of ``grace_period`` kept for cancelling what is still
            running and awaiting its cleanup; with ``shutdown_delay`` it must leave the
            requests in flight their share (see the budget above).
        websocket_close_code: the close code sent to websockets when closing (1000-1014 but
            1004-1006, or 3000-4999).
        websocket_close_reason: the close reason, at most 123 bytes.
        retry_after: the ``Retry-After`` seconds on 503 answers while closing.
        handle_signals: chain SIGTERM and SIGINT handlers onto the server's own, for the
            early trigger.
        admin_token: the bearer token for the admin endpoints (``/tasks``, ``/drain``) from
            other hosts; whitespace around it is stripped. Without one, only callers that
            can read the local token file are admitted.
        local_token: write the local token file that ``asgi-supervisor`` reads, in the
            listener folder of each port the process listens on.
        path_prefix: where the endpoints live, ``/_supervisor`` by default (so
            ``/_supervisor/health/ready``), reserved so that no route of the app is
            shadowed. ``""`` (or ``"/"``) serves them at the root, only when asked for.
            It is matched against the full request path: include the server's
            ``--root-path`` if you use one. At startup, an app route the endpoints would
            shadow fails the lifespan startup, naming the route.
        watchdog: end the process (status 70) if it is still alive ``watchdog_delay``
            seconds after the deadline: a loop blocked in sync code keeps no deadline.
        watchdog_delay: seconds after the deadline before the watchdog fires.
        check_cache_period: seconds a readiness check's result is reused.
        history_size: finished tasks kept for ``/tasks``.
        loop_lag_threshold: seconds the event loop may be stuck before the code holding it
            is logged (at least 0.01); ``None`` turns loop-lag detection off.
        process_group: drain every worker process of the server together (``--workers
            N``); off, a worker neither sends nor acts on a drain.
        runtime_dir: the private folder (mode 0700) for the listener folders, where each
            worker's socket and the local token live. ``None`` means
            ``$ASGI_SUPERVISOR_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/asgi-supervisor`` or
            ``/run/user/<uid>/asgi-supervisor`` when safe, else ``asgi-supervisor-<uid>`` in
            ``$TMPDIR`` or ``/tmp`` (under another name if another user made that one
            first). The command line reads only the variable: a folder set in code must be
            given to it that way too.

    Raises:
        ValueError: a setting is out of range; the message names it and says what to use.
        TypeError: a setting has the wrong type.
    """

    grace_period: float = 25.0
    shutdown_delay: float | None = None
    cancel_timeout: float = 5.0
    websocket_close_code: int = 1012
    websocket_close_reason: str = "server restarting"
    retry_after: int = 5
    handle_signals: bool = True
    admin_token: str | None = None
    local_token: bool = True
    path_prefix: str = DEFAULT_PATH_PREFIX
    watchdog: bool = True
    watchdog_delay: float = 0.5
    check_cache_period: float = 1.0
    history_size: int = 100
    loop_lag_threshold: float | None = 0.5
    process_group: bool = True
    runtime_dir: str | None = None

    def __post_init__(self) -> None:
        _positive("grace_period", self.grace_period)
        _positive("cancel_timeout", self.cancel_timeout)
        if self.cancel_timeout > self.grace_period:
            raise ValueError(
                f"cancel_timeout={self.cancel_timeout!r} is larger than "
                f"grace_period={self.grace_period!r}; the time kept for cancelling tasks is "
                "part of the grace period, so make cancel_timeout smaller."
            )
        if self.shutdown_delay is not None:
            _non_negative("shutdown_delay", self.shutdown_delay)
        # With shutdown_delay=None the delay is 0 here; Kubernetes' is checked at startup.
        budget.check(self.grace_period, self.shutdown_delay or 0.0, self.cancel_timeout)
        _non_negative("watchdog_delay", self.watchdog_delay)
        _non_negative("check_cache_period", self.check_cache_period)
        _integer("websocket_close_code", self.websocket_close_code)
        # 1000-1015 less the codes reserved for the wire (1004-1006, 1015), or the 3000-4999
        # ranges for libraries and applications (RFC 6455 section 7.4).
        code = self.websocket_close_code
        if not (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) and not (
            3000 <= code <= 4999
        ):
            raise ValueError(
                f"websocket_close_code={code!r} cannot be sent in a close frame; use 1001 "
                "(going away), 1012 (service restart) or an application code in 3000-4999."
            )
        if not isinstance(self.websocket_close_reason, str):
            raise TypeError("websocket_close_reason must be a str.")
        if len(self.websocket_close_reason.encode()) > 123:
            raise ValueError(
                "websocket_close_reason is longer than the 123 bytes a close frame can carry; "
                "shorten it."
            )
        _integer("retry_after", self.retry_after)
        if self.retry_after < 0:
            raise ValueError(f"retry_after={self.retry_after!r} must be 0 or more seconds.")
        if self.loop_lag_threshold is not None:
            _number("loop_lag_threshold", self.loop_lag_threshold)
            if not self.loop_lag_threshold >= _MIN_LOOP_LAG_THRESHOLD:
                raise ValueError(
                    f"loop_lag_threshold={self.loop_lag_threshold!r} is below "
                    f"{_MIN_LOOP_LAG_THRESHOLD} s; use a larger number of seconds, or None to "
                    "turn loop-lag detection off."
                )
        _integer("history_size", self.history_size)
        if self.history_size < 0:
            raise ValueError(f"history_size={self.history_size!r} must be 0 or more.")
        if self.admin_token is not None:
            # A secret mounted from a file usually ends in a newline: that must not lock
            # every caller out, so surrounding whitespace is not part of the token.
            token = admin_token(self.admin_token, source="admin_token")
            object.__setattr__(self, "admin_token", token)
        _optional_string("runtime_dir", self.runtime_dir)
        if self.runtime_dir is not None and not self.runtime_dir.strip():
            raise ValueError("runtime_dir is empty; pass None to use the default folder.")
        for name in ("handle_signals", "local_token", "watchdog", "process_group"):
            _boolean(name, getattr(self, name))
        object.__setattr__(self, "path_prefix", _path_prefix(self.path_prefix))

    @property
    def effective_shutdown_delay(self) -> float:
        """`shutdown_delay`, with ``None`` resolved for the environment the process runs in.

        Read when a shutdown begins and at startup, where `budget.warn_at_startup` checks
        what it leaves the requests in flight.
        """
        if self.shutdown_delay is not None:
            return self.shutdown_delay
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            return min(_KUBERNETES_SHUTDOWN_DELAY, self.grace_period - self.cancel_timeout)
        return 0.0

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Unpack[Settings]
    ) -> Config:
        """Build a `Config` from ``ASGI_SUPERVISOR_*`` variables; keyword overrides win.

        Raises:
            ValueError: a variable holds a value that does not parse or is out of range.
            TypeError: an override names no setting (the message suggests the closest).
        """
        check_setting_names(overrides)
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(_ENV_PREFIX + field.name.upper())
            if raw is None or field.name in overrides:
                continue
            values[field.name] = _parse(field.name, str(field.type), raw)
        values.update(overrides)
        return cls(**values)


def _parse(name: str, annotation: str, raw: str) -> object:
    if name == "path_prefix" and not raw.strip():
        # An empty variable is as often a template's unset value as a choice: the root,
        # which may shadow the app's routes, must be asked for explicitly.
        raise ValueError(
            f"{_ENV_PREFIX}PATH_PREFIX is empty; unset it for the default "
            f"{DEFAULT_PATH_PREFIX!r}, or set it to '/' to serve the endpoints at the root "
            "(where they answer before any app route of the same path)."
        )
    if name == "admin_token":
        # As the command line reads it: errors name the variable, and 'none' turns it off.
        return admin_token_from_variable(raw)
    variable = _ENV_PREFIX + name.upper()
    text = raw.strip()
    if "None" in annotation and text.lower() in ("", "none"):
        return None
    try:
        if annotation.startswith("bool"):
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if annotation.startswith("float"):
            return float(text)
        if annotation.startswith("int"):
            return int(text)
    except ValueError:
        kind = annotation.split()[0]
        raise ValueError(
            f"{variable}={raw!r} is not a valid {kind}; set it to a {kind} such as "
            f"{_EXAMPLES[kind]}."
        ) from None
    return raw


_EXAMPLES = {"bool": "'true' or 'false'", "float": "'25.0'", "int": "'5'"}


def _positive(name: str, value: float) -> None:
    _number(name, value)
    if not value > 0:
        raise ValueError(f"{name}={value!r} must be a positive number of seconds.")


def _non_negative(name: str, value: float) -> None:
    _number(name, value)
    if not value >= 0:
        raise ValueError(f"{name}={value!r} must be 0 or more seconds.")


def _number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{name}={value!r} must be a number of seconds, not {type(value).__name__}."
        )
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number of seconds.")


def _path_prefix(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"path_prefix={value!r} must be a str such as {DEFAULT_PATH_PREFIX!r}, not "
            f"{type(value).__name__}."
        )
    if value in ("", "/"):
        return ""  # the root, asked for explicitly
    if (
        not value.startswith("/")
        or value.endswith("/")
        or any(c in "?#" or not c.isprintable() or c.isspace() for c in value)
    ):
        raise ValueError(
            f"path_prefix={value!r} must start with '/' and not end with one, with no space, "
            f"'?' or '#', like {DEFAULT_PATH_PREFIX!r}; use '' or '/' for the root."
        )
    return value


def _boolean(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name}={value!r} must be True or False, not {type(value).__name__}.")


def _optional_string(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name}={value!r} must be a str or None, not {type(value).__name__}.")


def _integer(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r} must be an int, not {type(value).__name__}.")
