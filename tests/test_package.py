"""The package as a release would publish it: built from the sdist, installed alone.

`make package` builds and checks the same files with twine; these tests read what is in them
and then use the wheel as a user would: alone in a fresh venv outside the checkout, serving
the README's FastAPI example under uvicorn. They build and install for real (about 30 s), so
they run once, with the real-server tests, not on every Python.
"""

from __future__ import annotations

import email.message
import email.parser
import json
import re
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from asgi_supervisor._supervisor.config import Config
from tests.servers._process import ServerProcess, wait_for_status

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# The extras a user may ask for: the only requirements the wheel may carry.
EXTRAS = {"gunicorn", "metrics"}
# Where the README's example answers: the default prefix, whatever it becomes.
PREFIX = Config().path_prefix


def run(*command: str | Path, cwd: Path, timeout: float = 180) -> str:
    """Run *command*, failing the test with its output unless it succeeds; its stdout."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built as a release is: the wheel from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, REPO, cwd=REPO)
    return out


def wheel_of(dist: Path) -> Path:
    (wheel,) = dist.glob("asgi_supervisor-*.whl")
    return wheel


def metadata(dist: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel_of(dist)) as wheel:
        (name,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(wheel.read(name).decode())


def pythons_tested() -> set[str]:
    """The Pythons `make test` runs the suite on: the main venv's and the Makefile's others."""
    makefile = (REPO / "Makefile").read_text()
    versions = {f"{sys.version_info.major}.{sys.version_info.minor}"}
    for variable in ("HOST_PYTHONS", "ROOT_PYTHONS"):
        match = re.search(rf"^{variable} \?= (.*)$", makefile, re.M)
        assert match is not None, variable
        versions.update(match.group(1).split())
    return versions


def test_the_wheel_carries_the_license_and_only_the_user_extras(dist: Path) -> None:
    """The license is in the wheel and named by its metadata (PEP 639); the only
    requirements are those of the user-facing extras: no runtime one, no tool of ours."""
    meta = metadata(dist)
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    with zipfile.ZipFile(wheel_of(dist)) as wheel:
        names = wheel.namelist()
        (license_name,) = (n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert wheel.read(license_name) == (REPO / "LICENSE").read_bytes()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {
        "asgi_supervisor"
    }
    assert set(meta.get_all("Provides-Extra") or []) == EXTRAS
    for requirement in meta.get_all("Requires-Dist") or []:
        extra = re.search(r"""; extra == ['"](\w+)['"]$""", requirement)
        assert extra is not None, f"{requirement!r} is a runtime requirement"
        assert extra.group(1) in EXTRAS, requirement


def test_the_sdist_carries_the_license(dist: Path) -> None:
    (sdist,) = dist.glob("asgi_supervisor-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml"} <= names


def test_the_claimed_pythons_are_the_tested_ones(dist: Path) -> None:
    """Each ``Python :: 3.X`` classifier is a Python `make test` runs the suite on, and the
    other way round; Requires-Python starts at the oldest."""
    meta = metadata(dist)
    claimed = {
        c.removeprefix("Programming Language :: Python :: ")
        for c in meta.get_all("Classifier") or []
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    tested = pythons_tested()
    assert claimed == tested
    oldest = min(tested, key=lambda v: tuple(map(int, v.split("."))))
    assert meta["Requires-Python"] == f">={oldest}"


def readme_fastapi_example() -> str:
    """The README's FastAPI example: its first Python block that builds a FastAPI app."""
    for block in re.findall(r"^```python[^\n]*\n(.*?)^```$", README.read_text(), re.M | re.S):
        if "FastAPI(" in block and "SupervisorMiddleware" in block:
            return str(block)
    raise AssertionError("the README has no Python block that wires a FastAPI app")


def installed(python: Path, cwd: Path) -> set[str]:
    """The distributions *python*'s environment has."""
    listed = json.loads(run(python, "-m", "pip", "list", "--format=json", cwd=cwd))
    return {package["name"] for package in listed}


async def test_the_wheel_alone_serves_the_readme_example(dist: Path, tmp_path: Path) -> None:
    """1. the wheel installs alone into a fresh venv outside the checkout and brings nothing
    else; 2. with fastapi and uvicorn next to it, the README's example runs as
    ``uvicorn main:app`` from that venv, importing the installed package; 3. readiness is
    200; 4. SIGTERM drains it: readiness fails at once, and the shutdown report is clean."""
    venv, app_dir = tmp_path / "venv", tmp_path / "app"
    app_dir.mkdir()
    assert not tmp_path.is_relative_to(REPO)
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    pip: list[str | Path] = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    before = installed(python, tmp_path)
    run(*pip, wheel_of(dist), cwd=tmp_path)
    assert installed(python, tmp_path) - before == {"asgi-supervisor"}
    run(*pip, "fastapi", "uvicorn", cwd=tmp_path)
    where = run(python, "-I", "-c", "import asgi_supervisor; print(asgi_supervisor.__file__)",
                cwd=app_dir)  # fmt: skip
    assert Path(where.strip()).is_relative_to(venv), where

    (app_dir / "main.py").write_text(readme_fastapi_example())
    with ServerProcess(
        "main:app",
        tmp_path=tmp_path,
        python=str(python),
        cwd=app_dir,
        ready_path=f"{PREFIX}/health/ready",
    ) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5.0) as http:
            queued = await http.post("/emails", params={"address": "a@b.c"})
            assert queued.json() == {"status": "queued"}
            sent = server.signal(signal.SIGTERM)
            failed_at = await wait_for_status(
                f"{server.base_url}{PREFIX}/health/ready", 503, within=1
            )
            assert failed_at - sent < 0.5
            # The example's shutdown delay (5 s) keeps serving while a balancer catches up.
            assert (await http.get(f"{PREFIX}/health/live")).status_code == 200
        server.wait_exit(timeout=40)
    output = server.output()
    assert re.search(r"shutdown report: signal SIGTERM, clean, ", output), output
