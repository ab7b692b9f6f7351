"""The settings as keyword arguments: what a type checker holds ``Supervisor(...)`` to.

`Settings` names each setting of `Config` with its type, so that ``Supervisor(**settings)``,
``Supervisor.from_env(**overrides)`` and ``Config.from_env(**overrides)`` are checked by
mypy and pyright (PEP 692): a misspelt setting or a value of the wrong type is an error
before the code runs. For callers no type checker has read, `check_setting_names` refuses an
unknown name at run time with the closest setting, and `Config` checks every value.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypedDict

__all__ = ["Settings", "check_setting_names"]


class Settings(TypedDict, total=False):
    """The settings of `Config` as keyword arguments: ``Supervisor(**settings)``.

    Example::

        settings: Settings = {"grace_period": 20.0, "shutdown_delay": 5.0}
        supervisor = Supervisor(**settings)

    Each key is the `Config` attribute of the same name, with its type, and documented
    there; a type checker refuses a misspelt key or a value of the wrong type.
    """

    grace_period: float
    shutdown_delay: float | None
    cancel_timeout: float
    websocket_close_code: int
    websocket_close_reason: str
    retry_after: int
    handle_signals: bool
    admin_token: str | None
    local_token: bool
    path_prefix: str
    watchdog: bool
    watchdog_delay: float
    check_cache_period: float
    history_size: int
    loop_lag_threshold: float | None
    process_group: bool
    runtime_dir: str | None


# Every setting's name; `tests/supervisor/test_settings.py` holds them to Config's fields.
_NAMES = tuple(Settings.__annotations__)


def check_setting_names(settings: Mapping[str, object], *, also: tuple[str, ...] = ()) -> None:
    """Refuse a keyword that names no setting, for callers no type checker has read.

    Raises:
        TypeError: the message names the keyword and the closest setting.
    """
    for name in settings:
        if name not in _NAMES:
            close = difflib.get_close_matches(name, (*_NAMES, *also), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see Config for the settings."
            raise TypeError(f"{name!r} is not a setting of asgi-supervisor; {hint}")
