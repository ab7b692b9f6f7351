"""Run other projects' test suites with the middleware around every app, against their own
baseline.

Usage (``make peers`` runs it on the peers' own virtualenv)::

    python peers/run.py [--baseline] [--keep] [SUITE ...]

For each suite, in the version installed here: its sdist comes from PyPI (``pip download
--no-binary :all:``), once, into a cache outside the clone, and is unpacked twice, with the
tests that no sdist carries (starlette-context's) copied in from ``vendored/``. Its own
pytest runs as the project runs itself (its pytest configuration, its warnings filters) with
``--supervise-every-app`` (see `supervise_every_app`); the tests that fail are rerun alone,
with and without the middleware. With ``--baseline`` the whole suite also runs without the
middleware, side by side, for its figures (about twice the time). A test that fails with the
middleware and passes without it, again when rerun, is a finding, unless
``expected-differences.toml`` names it with the reason the middleware cannot keep what it
checks. The suites that run in one process run at the same time; FastAPI's, which spreads
itself over processes as its own scripts do, runs alone after them. Every pytest run is
bounded (`RUN_TIMEOUT`) and so is every test (`TEST_TIMEOUT`, or the suite's own).

Exit status: 0 when no suite has a new failure and every expected difference still differs;
1 otherwise; 2 when a suite could not be run (no sdist, a pytest that did not finish).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The library under test, for every suite's environment (it needs nothing else).
SOURCE = HERE.parent / "src"
EXPECTED = HERE / "expected-differences.toml"
# What a suite's sdists lack, from the project's repository at the tag of the version pinned
# in requirements.txt: vendored/<dist>-<version>/, with a README saying where it came from.
VENDORED = HERE / "vendored"
# Each pytest run is bounded; the suites' own per-test timeouts end a stuck test sooner.
RUN_TIMEOUT = 900.0
TEST_TIMEOUT = "60"
# Warnings that mean code misbehaved are errors in every suite, as Starlette's and FastAPI's
# configurations make every warning; asgi-lifespan's and sse-starlette's turn none.
WARNINGS_AS_ERRORS = tuple(
    f"-Werror::{category}"
    for category in (
        "RuntimeWarning",  # a coroutine never awaited
        "ResourceWarning",
        "pytest.PytestUnraisableExceptionWarning",
        "pytest.PytestUnhandledThreadExceptionWarning",
    )
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Suite:
    """One peer project's test suite, and what its own configuration lacks to run here."""

    name: str
    dist: str  # the PyPI distribution whose sdist carries the suite
    args: tuple[str, ...] = ()  # options, as the project's own scripts pass them
    paths: tuple[str, ...] = ()  # what pytest collects; its configuration's testpaths if none
    alone: tuple[str, ...] = ()  # how it spreads over processes, when it runs alone
    needs: tuple[str, ...] = ("tests",)  # what the sdist must carry, relative to its root
    env: tuple[tuple[str, str], ...] = ()
    # A suite written for older releases of what it tests (asgi-lifespan's pins Starlette
    # 0.26) runs in an environment of its own, made from its requirements file, without
    # the lines naming its linters and packaging tools.
    requirements: str | None = None
    tools: tuple[str, ...] = ()
    # The folders, relative to the sdist's root, that no sdist carries and that are vendored
    # for the installed version (`VENDORED`); copied into each unpacked copy.
    vendored: tuple[str, ...] = ()


SUITES = (
    # pytest-asyncio, which this environment has and Starlette's does not, would warn
    # about its unset loop scope, an error under Starlette's filters.
    Suite(
        name="starlette",
        dist="starlette",
        args=("-p", "no:asyncio", f"--timeout={TEST_TIMEOUT}"),
        needs=("tests/conftest.py",),
    ),
    # scripts/test.sh: PYTHONPATH=./docs_src pytest -n auto --dist loadgroup tests (spread
    # over processes only when it runs alone). Its timeout is in its configuration.
    Suite(
        name="fastapi",
        dist="fastapi",
        args=("-p", "no:asyncio"),
        paths=("tests",),
        alone=("-n", "auto", "--dist", "loadgroup"),
        needs=("tests", "docs_src"),
        env=(("PYTHONPATH", "docs_src"),),
    ),
    # Its configuration asks for coverage at 90 % (pytest-cov), which says nothing of
    # behaviour: addopts is replaced by its report flags alone.
    Suite(
        name="asgi-lifespan",
        dist="asgi-lifespan",
        args=("-o", "addopts=-rxXs", f"--timeout={TEST_TIMEOUT}"),
        needs=("tests/conftest.py", "requirements.txt"),
        requirements="requirements.txt",
        tools=("-e .", "twine", "wheel", "autoflake", "black", "flake8", "isort", "mypy"),
    ),
    # Its Makefile's `test`: no integration tests (they need Docker) nor experiments.
    Suite(
        name="sse-starlette",
        dist="sse-starlette",
        args=(
            "--ignore=tests/experimentation",
            "-m",
            "not (integration or experimentation)",
            f"--timeout={TEST_TIMEOUT}",
        ),
        paths=("tests",),
        needs=("tests/conftest.py", "tests/anyio_compat.py"),
    ),
    # scripts/test: pytest --ignore=example --cov=starlette_context, without coverage here
    # (as for asgi-lifespan) and with no example folder to ignore in the sdist. Its sdist's
    # pyproject.toml, the repository's own, holds its configuration (asyncio_mode = auto,
    # testpaths); its tests are vendored from the tag of the installed version.
    Suite(
        name="starlette-context",
        dist="starlette-context",
        args=(f"--timeout={TEST_TIMEOUT}",),
        needs=("pyproject.toml", "tests/conftest.py"),
        vendored=("tests",),
    ),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Run:
    """One pytest run's outcomes by test id, and its crash lines."""

    status: int
    outcomes: dict[str, str]
    crashes: dict[str, str]

    def count(self, outcome: str) -> int:
        return sum(1 for value in self.outcomes.values() if value == outcome)


class SuiteError(Exception):
    """A suite could not be run: no sdist, a missing file, a pytest that did not finish."""


def cache_dir() -> Path:
    """Where sdists are kept between runs: outside the clone, so CI downloads each once."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "asgi-supervisor" / "peers"


def sdist(suite: Suite, version: str) -> Path:
    """The suite's sdist for *version*, from the cache or downloaded into it."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    found = _cached(cache, suite.dist, version)
    if found is not None:
        return found
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        command = [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
            *("--no-binary", ":all:", "--dest", scratch, f"{suite.dist}=={version}"),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        archives = list(Path(scratch).glob("*.tar.gz"))
        if done.returncode != 0 or len(archives) != 1:
            raise SuiteError(
                f"pip could not download the sdist of {suite.dist}=={version}:\n{done.stderr}"
            )
        target = cache / archives[0].name
        os.replace(archives[0], target)  # whole or absent, for a run beside this one
    return target


def _cached(cache: Path, dist: str, version: str) -> Path | None:
    # Sdist names normalise the distribution's name (sse_starlette-3.4.5.tar.gz).
    for name in {dist, dist.replace("-", "_")}:
        path = cache / f"{name}-{version}.tar.gz"
        if path.exists():
            return path
    return None


def unpack(archive: Path, into: Path, suite: Suite, version: str) -> Path:
    """The sdist unpacked into *into*, with what is vendored for *version* copied in; the
    root of its source tree.

    Raises:
        SuiteError: the sdist lacks a file the suite needs, or see `vendor`.
    """
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    (root,) = into.iterdir()
    vendor(suite, version, root)
    missing = [need for need in suite.needs if not (root / need).exists()]
    if missing:
        raise SuiteError(
            f"the sdist {archive.name} does not carry {', '.join(missing)}, which its "
            f"tests need: pin {suite.dist} in peers/requirements.txt to a version whose "
            "sdist does."
        )
    return root


def vendor(suite: Suite, version: str, root: Path) -> None:
    """Copy the suite's vendored folders for *version* into the unpacked sdist at *root*.

    Raises:
        SuiteError: nothing is vendored for *version* (the tests of another release would
            run against this one), or the sdist carries a vendored folder itself.
    """
    if not suite.vendored:
        return
    folder = VENDORED / f"{suite.dist}-{version}"
    if not folder.is_dir():
        found = sorted(path.name for path in VENDORED.glob(f"{suite.dist}-*"))
        raise SuiteError(
            f"{suite.dist} {version} is installed, and its tests are vendored only in "
            f"{', '.join(found) or 'no folder'} of {VENDORED}: pin {suite.dist} in "
            "peers/requirements.txt to a vendored version, or vendor the tests of its tag "
            "(peers/README.md says how)."
        )
    for name in suite.vendored:
        if (root / name).exists():
            raise SuiteError(
                f"the sdist of {suite.dist} {version} carries {name} itself now: run its own "
                f"and remove {folder} and the suite's `vendored`."
            )
        shutil.copytree(folder / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))


def environment(suite: Suite, version: str, root: Path) -> str:
    """The python of the suite's own environment (see `Suite.requirements`), made once.

    It holds the suite's requirements, the suite's package from PyPI in *version*, and
    pytest-timeout for the harness's bound; the library and the plugin come from this
    clone, on ``PYTHONPATH``.
    """
    assert suite.requirements is not None
    wanted = [f"{suite.dist}=={version}", "pytest-timeout"]
    for line in (root / suite.requirements).read_text().splitlines():
        line = line.split("#")[0].strip()
        name = line.split("=")[0].split("<")[0].split(">")[0].split(";")[0].strip()
        if line and line not in suite.tools and name not in suite.tools:
            wanted.append(line)
    key = hashlib.sha256("\n".join([sys.version, *wanted]).encode()).hexdigest()[:12]
    folder = cache_dir() / "envs" / f"{suite.name}-{version}-{key}"
    python = folder / "bin" / "python"
    if python.exists():
        return str(python)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent.parent, prefix="env-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(scratch)], check=True, timeout=120)
        install = [str(scratch / "bin" / "python"), "-m", "pip", "install", "--quiet", *wanted]
        done = subprocess.run(install, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SuiteError(f"pip could not install {wanted}:\n{done.stderr}")
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(scratch, folder)  # whole or absent, for a run beside this one
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return str(python)


def start(
    suite: Suite,
    python: str,
    root: Path,
    results: Path,
    log: Path,
    *,
    supervised: bool,
    only: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """Start the suite's pytest in *root*, on the tests *only* names if any; it writes its
    outcomes to *results*."""
    command = [
        *(python, "-m", "pytest", "-p", "no:cacheprovider"),
        *("-p", "supervise_every_app", f"--peers-results={results}"),
        "--continue-on-collection-errors",
        *WARNINGS_AS_ERRORS,
        *suite.args,
        *extra,
        *(only or suite.paths),
    ]
    if supervised:
        command.append("--supervise-every-app")
    env = {**os.environ, **dict(suite.env)}
    path = [str(HERE), str(SOURCE), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    with log.open("wb") as output:
        return subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish(process: subprocess.Popen[bytes], results: Path, log: Path, deadline: float) -> Run:
    """Wait for one pytest run until *deadline*; its outcomes.

    Raises:
        SuiteError: it did not finish in time, or ended without running its tests.
    """
    try:
        status = process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        stop(process)
        raise SuiteError(f"pytest did not finish within {RUN_TIMEOUT:g} s; see {log}") from None
    if status not in (0, 1) or not results.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise SuiteError(f"pytest ended with status {status}; the end of {log}:\n{tail}")
    body = json.loads(results.read_text())
    return Run(status=status, outcomes=body["outcomes"], crashes=body["crashes"])


def stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the process group of a pytest run still going (only ours: we made the group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        process.wait(timeout=30)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Result:
    """What one suite showed: its runs, and the tests that failed only with the middleware."""

    version: str
    supervised: Run
    baseline: Run | None  # the whole baseline, when it was run (``--baseline``)
    candidates: list[str]  # failed with the middleware, passed without it
    confirmed: list[str]  # the candidates that did so again when rerun alone


def run_suite(suite: Suite, work: Path, *, whole_baseline: bool) -> Result:
    """Run the suite with the middleware, and without it either whole, side by side
    (*whole_baseline*), or only on the tests that failed with it.

    A test that fails with the middleware is rerun alone, with and without it, before it
    counts: some failures depend on the order tests run in or on when the garbage collector
    runs (an unraisable warning is charged to whichever test is running then). Running the
    baseline only on those tests halves the time, and lets a suite that spreads itself over
    processes (`Suite.alone`) have every core.
    """
    version = importlib.metadata.version(suite.dist)
    archive = sdist(suite, version)
    roots = {}
    for variant in ("baseline", "supervised"):
        (work / suite.name / variant).mkdir(parents=True)
        roots[variant] = unpack(archive, work / suite.name / variant, suite, version)
    python = sys.executable
    if suite.requirements is not None:
        python = environment(suite, version, roots["baseline"])
    baseline: Run | None = None
    if whole_baseline:
        baseline, supervised = _runs(suite, python, roots, "run")
        candidates = _new_failures(baseline, supervised)
    else:
        (supervised,) = _runs(suite, python, roots, "run", variants=("supervised",))
        candidates = sorted(t for t, outcome in supervised.outcomes.items() if outcome == "failed")
    confirmed: list[str] = []
    if candidates:
        again = _runs(suite, python, roots, "rerun", only=tuple(candidates))
        confirmed = _new_failures(*again)
        if not whole_baseline:  # failing without the middleware too is not a candidate
            candidates = [t for t in candidates if again[0].outcomes.get(t) != "failed"]
    return Result(
        version=version,
        supervised=supervised,
        baseline=baseline,
        candidates=candidates,
        confirmed=confirmed,
    )


def _runs(
    suite: Suite,
    python: str,
    roots: dict[str, Path],
    name: str,
    *,
    variants: tuple[str, ...] = ("baseline", "supervised"),
    only: tuple[str, ...] = (),
) -> tuple[Run, ...]:
    """The *variants*' pytest runs, at the same time, in that order."""
    started = []
    for variant in variants:
        root = roots[variant]
        paths = (root.parent / f"{name}.json", root.parent / f"{name}.log")
        supervised = variant == "supervised"
        extra = suite.alone if len(variants) == 1 else ()
        process = start(suite, python, root, *paths, supervised=supervised, only=only, extra=extra)
        started.append((process, paths))
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        return tuple(finish(process, *paths, deadline) for process, paths in started)
    finally:
        for process, _ in started:
            stop(process)


def _new_failures(baseline: Run, supervised: Run) -> list[str]:
    return sorted(
        test
        for test, outcome in supervised.outcomes.items()
        if outcome == "failed" and baseline.outcomes.get(test) == "passed"
    )


def expected_differences() -> dict[str, dict[str, str]]:
    """The tests each suite is expected to fail only with the middleware, with why."""
    with EXPECTED.open("rb") as file:
        return tomllib.load(file)


def report(suite: Suite, result: Result) -> list[str]:
    """Print the suite's line and its findings; return the problems that fail the run."""
    expected = expected_differences().get(suite.name, {})
    confirmed = result.confirmed
    unexplained = [test for test in confirmed if test not in expected]
    stale = [test for test in expected if test not in confirmed]
    supervised, baseline = result.supervised, result.baseline
    counts = (
        f"collected {len(supervised.outcomes)}  passed {supervised.count('passed')}"
        f"  failed {supervised.count('failed')}"
    )
    if baseline is not None:
        counts = (
            f"collected {len(baseline.outcomes)}/{len(supervised.outcomes)}"
            f"  passed {baseline.count('passed')}/{supervised.count('passed')}"
            f"  failed {baseline.count('failed')}/{supervised.count('failed')}"
            "  (without/with the middleware)"
        )
    print(
        f"{suite.name} {result.version}: {counts}; new failures {len(confirmed)},"
        f" expected {len(confirmed) - len(unexplained)}"
    )
    problems = []
    for test in unexplained:
        problems.append(f"{suite.name}: {test} fails only with the middleware")
        print(f"  NEW  {test}\n       {supervised.crashes.get(test, '')}")
    for test in sorted(set(result.candidates) - set(confirmed)):
        print(f"  FLAKY  {test}: failed with the middleware; rerun alone, it passed with it")
    for test in stale:
        problems.append(f"{suite.name}: {test} is expected to differ and no longer does")
        print(f"  STALE  {test}: remove it from {EXPECTED.name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [suite.name for suite in SUITES]
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"of {', '.join(names)}")
    parser.add_argument("--keep", action="store_true", help="keep the unpacked runs and logs")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run each suite whole without the middleware, side by side (about twice "
        "the time), for its figures; by default only the tests that fail with it run without",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.suites) - set(names))
    if unknown:
        parser.error(f"no suite named {', '.join(unknown)}; the suites are {', '.join(names)}")
    chosen = [suite for suite in SUITES if not args.suites or suite.name in args.suites]
    work = Path(tempfile.mkdtemp(prefix="asgi-supervisor-peers-"))
    # A suite that spreads itself over processes runs alone; the others, one process each
    # unless the whole baseline runs beside them, run at the same time.
    alone = [suite for suite in chosen if args.baseline or suite.alone]
    together = [suite for suite in chosen if suite not in alone]
    problems: list[str] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(together))) as pool:
            timed = [pool.submit(_timed, suite, work, args.baseline) for suite in together]
            outcomes = [future.result() for future in timed]
        outcomes += [_timed(suite, work, args.baseline) for suite in alone]
        for suite, outcome, seconds in outcomes:
            if isinstance(outcome, SuiteError):
                print(f"{suite.name}: could not run: {outcome}")
                return 2
            problems += report(suite, outcome)
            print(f"  ({seconds:.0f} s)")
    finally:
        if args.keep:
            print(f"runs and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


def _timed(
    suite: Suite, work: Path, whole_baseline: bool
) -> tuple[Suite, Result | SuiteError, float]:
    started = time.monotonic()
    try:
        outcome: Result | SuiteError = run_suite(suite, work, whole_baseline=whole_baseline)
    except SuiteError as exc:
        outcome = exc
    return suite, outcome, time.monotonic() - started


if __name__ == "__main__":
    sys.exit(main())
