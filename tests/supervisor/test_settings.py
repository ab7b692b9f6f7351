"""The settings are typed: mypy --strict refuses a misspelt one or a wrong type, and so does
the code at run time for callers no type checker has read."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from asgi_supervisor import Config, Restart, Settings, Supervisor
from tests._inprocess import quiet_supervisor

CASES = Path(__file__).parent / "typing_cases"
REPO = Path(__file__).resolve().parents[2]


def test_settings_name_every_field_of_config_with_its_type() -> None:
    """`Settings` (what type checkers read) and `Config` (what runs) list the same settings,
    with the same types, in the same order."""
    fields = {field.name: field.type for field in dataclasses.fields(Config)}
    assert list(typing.get_type_hints(Settings)) == list(fields)
    assert typing.get_type_hints(Settings) == typing.get_type_hints(Config)
    assert Settings.__optional_keys__ == frozenset(fields)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Supervisor(grace_peroid=5),  # type: ignore[call-arg]
        lambda: Supervisor.from_env({}, grace_peroid=5),  # type: ignore[call-arg]
        lambda: Config.from_env({}, grace_peroid=5),  # type: ignore[call-arg]
    ],
    ids=["Supervisor", "Supervisor.from_env", "Config.from_env"],
)
def test_a_misspelt_setting_is_refused_at_run_time_with_the_closest(
    build: typing.Callable[[], object],
) -> None:
    """An unknown keyword is a TypeError naming it and the setting it resembles."""
    with pytest.raises(
        TypeError,
        match=r"^'grace_peroid' is not a setting of asgi-supervisor; did you mean "
        r"'grace_period'\?$",
    ):
        build()


def test_a_misspelt_supervisor_option_is_suggested_too() -> None:
    """`on_critical_failure` is not a Config setting, but a near miss still finds it."""
    with pytest.raises(TypeError, match=r"did you mean 'on_critical_failure'\?"):
        Supervisor(on_critical_failur="shutdown")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"'x' is not a setting .*; see Config for the settings"):
        Supervisor(x=1)  # type: ignore[call-arg]


def test_the_worker_decorator_takes_every_option_of_add_worker() -> None:
    """`@supervisor.worker(...)` passes the backoff options on, returns the function itself,
    and takes the policy by name or as the enum."""
    supervisor = quiet_supervisor()

    @supervisor.worker(restart="always", backoff_delay=1.0, backoff_max_delay=2.0)
    async def consume() -> None: ...

    @supervisor.worker(restart=Restart.NEVER)
    async def once() -> None: ...

    first, second = supervisor._specs
    assert (first.fn, first.restart, first.backoff_delay, first.backoff_max_delay) == (
        consume,
        Restart.ALWAYS,
        1.0,
        2.0,
    )
    assert (second.fn, second.restart) == (once, Restart.NEVER)


def _expected_errors(path: Path) -> dict[int, set[str]]:
    expected = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if match := re.search(r"# error: \[([a-z, -]+)\]$", line):
            expected[number] = {code.strip() for code in match.group(1).split(",")}
    return expected


@pytest.mark.slow
def test_mypy_strict_refuses_misspelt_settings_and_wrong_types(tmp_path: Path) -> None:
    """mypy --strict reports exactly the marked lines of refused.py, each with its error
    code, and nothing in accepted.py (which also pins the decorated workers' types)."""
    accepted, refused = CASES / "accepted.py", CASES / "refused.py"
    result = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--config-file", str(REPO / "pyproject.toml"),
            "--cache-dir", str(tmp_path), "--no-error-summary", "--hide-error-context",
            str(accepted), str(refused),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found: dict[tuple[str, int], set[str]] = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(.+?):(\d+): error: .*\[([a-z-]+)\]$", line)
        if match:
            key = (Path(match.group(1)).name, int(match.group(2)))
            found.setdefault(key, set()).add(match.group(3))
    expected = {("refused.py", n): codes for n, codes in _expected_errors(refused).items()}
    assert len(expected) >= 10
    assert found == expected, result.stdout + result.stderr
