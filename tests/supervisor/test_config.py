"""Settings are validated when built and read from the environment on request only."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_supervisor import Config, Supervisor


def test_defaults_fit_kubernetes_grace_period() -> None:
    """The defaults leave room inside Kubernetes' 30 s terminationGracePeriodSeconds."""
    config = Config()
    assert config.grace_period == 25.0
    assert config.cancel_timeout == 5.0
    assert config.websocket_close_code == 1012


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"grace_period": 0}, r"grace_period=0 must be a positive number"),
        ({"grace_period": -1.0}, r"grace_period=-1.0 must be a positive number"),
        ({"grace_period": float("nan")}, r"grace_period=nan must be a finite number"),
        ({"grace_period": float("inf")}, r"must be a finite number"),
        ({"cancel_timeout": 0}, r"cancel_timeout=0 must be a positive"),
        (
            {"grace_period": 3, "cancel_timeout": 5},
            r"cancel_timeout=5 is larger than grace_period=3",
        ),
        ({"shutdown_delay": -1}, r"shutdown_delay=-1 must be 0 or more"),
        (
            {"grace_period": 6, "shutdown_delay": 4, "cancel_timeout": 3},
            r"grace_period=6 - shutdown_delay=4 - cancel_timeout=3 leaves 0 s",
        ),
        ({"websocket_close_code": 1006}, r"websocket_close_code=1006 cannot be sent"),
        ({"websocket_close_code": 5000}, r"websocket_close_code=5000 cannot be sent"),
        ({"websocket_close_reason": "x" * 124}, r"longer than the 123 bytes"),
        ({"retry_after": -1}, r"retry_after=-1 must be 0 or more"),
        ({"admin_token": "  "}, r"admin_token is empty"),
        ({"path_prefix": "ops"}, r"path_prefix='ops' must start with '/'"),
        ({"path_prefix": "/ops/"}, r"path_prefix='/ops/' must start with '/' and not end"),
        ({"path_prefix": "/o ps"}, r"path_prefix='/o ps' must .* with no space, '\?' or '#'"),
    ],
)
def test_bad_settings_raise_value_error_naming_them(settings: dict[str, Any], match: str) -> None:
    """Each invalid setting raises ValueError with its name, its value and the fix."""
    with pytest.raises(ValueError, match=match):
        Supervisor(**settings)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"grace_period": "25"}, r"grace_period='25' must be a number of seconds, not str"),
        ({"retry_after": 1.5}, r"retry_after=1.5 must be an int"),
        ({"handle_signals": "no"}, r"handle_signals='no' must be True or False, not str"),
        ({"process_group": 1}, r"process_group=1 must be True or False, not int"),
        ({"path_prefix": None}, r"path_prefix=None must be a str such as '/_supervisor'"),
        ({"runtime_dir": 3}, r"runtime_dir=3 must be a str or None, not int"),
    ],
)
def test_wrong_types_raise_type_error(settings: dict[str, Any], match: str) -> None:
    """A value of the wrong type, from a caller no type checker has read, is a TypeError
    that names the setting."""
    with pytest.raises(TypeError, match=match):
        Config(**settings)


def test_the_endpoints_are_under_a_reserved_prefix_unless_the_root_is_asked_for() -> None:
    """The default prefix is /_supervisor; '' or '/' asks for the root; a variable left empty
    (a template's unset value) is refused, naming both choices."""
    assert Config().path_prefix == "/_supervisor"
    assert Config(path_prefix="").path_prefix == ""
    assert Config(path_prefix="/").path_prefix == ""
    assert Config.from_env({"ASGI_SUPERVISOR_PATH_PREFIX": "/"}).path_prefix == ""
    with pytest.raises(
        ValueError,
        match=r"ASGI_SUPERVISOR_PATH_PREFIX is empty; unset it for the default '/_supervisor', "
        r"or set it to '/' to serve the endpoints at the root",
    ):
        Config.from_env({"ASGI_SUPERVISOR_PATH_PREFIX": ""})


def test_supervisor_rejects_config_and_settings_together() -> None:
    """Passing both a Config and loose settings is ambiguous and refused."""
    with pytest.raises(TypeError, match="either config= or individual settings"):
        Supervisor(config=Config(), grace_period=3.0)


def test_shutdown_delay_none_depends_on_kubernetes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`shutdown_delay=None` is 5 s inside Kubernetes and 0 s elsewhere."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert Config().effective_shutdown_delay == 0.0
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert Config().effective_shutdown_delay == 5.0
    assert Config(shutdown_delay=1.5).effective_shutdown_delay == 1.5


def test_from_env_reads_every_kind_of_setting() -> None:
    """from_env parses floats, ints, booleans, optional values and strings."""
    env = {
        "ASGI_SUPERVISOR_GRACE_PERIOD": "12.5",
        "ASGI_SUPERVISOR_SHUTDOWN_DELAY": "2",
        "ASGI_SUPERVISOR_CANCEL_TIMEOUT": "3",
        "ASGI_SUPERVISOR_WEBSOCKET_CLOSE_CODE": "1001",
        "ASGI_SUPERVISOR_WEBSOCKET_CLOSE_REASON": "bye",
        "ASGI_SUPERVISOR_HANDLE_SIGNALS": "false",
        "ASGI_SUPERVISOR_ADMIN_TOKEN": "s3cret",
        "ASGI_SUPERVISOR_PATH_PREFIX": "/_ops",
        "ASGI_SUPERVISOR_WATCHDOG": "off",
    }
    config = Config.from_env(env)
    assert config.grace_period == 12.5
    assert config.shutdown_delay == 2.0
    assert config.cancel_timeout == 3.0
    assert config.websocket_close_code == 1001
    assert config.websocket_close_reason == "bye"
    assert config.handle_signals is False
    assert config.admin_token == "s3cret"
    assert config.path_prefix == "/_ops"
    assert config.watchdog is False


def test_from_env_overrides_win_and_none_is_accepted() -> None:
    """Keyword overrides beat the environment; 'none' clears an optional setting."""
    env = {"ASGI_SUPERVISOR_GRACE_PERIOD": "12", "ASGI_SUPERVISOR_SHUTDOWN_DELAY": "none"}
    config = Config.from_env(env, grace_period=20.0)
    assert config.grace_period == 20.0
    assert config.shutdown_delay is None
    supervisor = Supervisor.from_env(env, handle_signals=False)
    assert supervisor.config.grace_period == 12.0
    assert supervisor.config.handle_signals is False


@pytest.mark.parametrize(
    ("variable", "value", "match"),
    [
        (
            "ASGI_SUPERVISOR_GRACE_PERIOD",
            "soon",
            r"ASGI_SUPERVISOR_GRACE_PERIOD='soon' is not a valid float",
        ),
        (
            "ASGI_SUPERVISOR_RETRY_AFTER",
            "1.5",
            r"ASGI_SUPERVISOR_RETRY_AFTER='1.5' is not a valid int",
        ),
        (
            "ASGI_SUPERVISOR_WATCHDOG",
            "maybe",
            r"ASGI_SUPERVISOR_WATCHDOG='maybe' is not a valid bool",
        ),
        ("ASGI_SUPERVISOR_GRACE_PERIOD", "-3", r"grace_period=-3.0 must be a positive"),
    ],
)
def test_from_env_names_the_bad_variable(variable: str, value: str, match: str) -> None:
    """A variable that does not parse is reported by its name and value."""
    with pytest.raises(ValueError, match=match):
        Config.from_env({variable: value})
