"""The watchdog ends a process whose loop cannot, and never fires once disarmed.

Each case runs in a subprocess: the watchdog calls ``os._exit``, which must never end the
test runner itself.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = """
import asyncio, time
from asgi_supervisor._host.watchdog import Watchdog

def stuck_in_sync_code():
    time.sleep({sleep})

async def main():
    watchdog = Watchdog(asyncio.get_running_loop())
    watchdog.arm(time.monotonic() + 0.3)
    if {disarm}:
        watchdog.disarm()
    stuck_in_sync_code()
    print("finished by itself")

asyncio.run(main())
"""


def run(sleep: float, disarm: bool) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(SCRIPT.format(sleep=sleep, disarm=disarm))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )


def test_fires_when_the_loop_is_blocked() -> None:
    """A loop blocked past the deadline is ended with status 70 and every thread's stack."""
    result = run(sleep=20, disarm=False)
    assert result.returncode == 70
    assert "asgi-supervisor watchdog: the shutdown deadline has passed" in result.stderr
    assert "in stuck_in_sync_code" in result.stderr
    assert "Thread MainThread:" in result.stderr
    assert "Task running on the loop: <Task pending name='Task-1'" in result.stderr
    assert "finished by itself" not in result.stdout


def test_disarmed_never_fires() -> None:
    """Disarmed, the watchdog lets the process finish on its own."""
    result = run(sleep=0.6, disarm=True)
    assert (result.returncode, result.stdout) == (0, "finished by itself\n")
    assert "watchdog" not in result.stderr


PARKED = """
import asyncio, time
from asgi_supervisor._host.watchdog import Watchdog

async def hung_app_shutdown():
    await asyncio.Event().wait()  # a lifespan shutdown that never returns

async def lifespan():
    await asyncio.create_task(hung_app_shutdown(), name="app shutdown")

async def main():
    watchdog = Watchdog(asyncio.get_running_loop())
    task = asyncio.create_task(lifespan(), name="app lifespan")
    watchdog.arm(time.monotonic() + 0.3)
    await asyncio.sleep(20)

asyncio.run(main())
"""


def test_names_the_coroutine_a_parked_task_waits_in() -> None:
    """The dump shows each task's await chain: a hung lifespan shutdown parked at an
    `await` is named, which no thread stack shows; from Python 3.14 on, with the task
    awaiting it."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PARKED)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 70
    chains = result.stderr.split("\nTask 'app shutdown':\n", 1)[1].split("\nTask ", 1)[0]
    assert "in hung_app_shutdown" in chains
    assert ("  Awaited by: 'app lifespan'" in chains) is (sys.version_info >= (3, 14))
    assert "Task 'app lifespan':" in result.stderr


LAST_WORDS = """
import asyncio, logging, sys, time
from asgi_supervisor._host.watchdog import Watchdog

logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(message)s")

def report():
    print("the report line", file=sys.stderr, flush=True)
    {fail}

async def main():
    watchdog = Watchdog(asyncio.get_running_loop(), last_words=report)
    watchdog.arm(time.monotonic() + 0.3)
    time.sleep(20)

asyncio.run(main())
"""


def run_last_words(fail: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(LAST_WORDS.format(fail=fail))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )


def test_the_last_words_come_before_the_dump_and_the_exit() -> None:
    """The shutdown's report is written first, then the dump, then the exit."""
    result = run_last_words(fail="")
    assert result.returncode == 70
    assert result.stderr.index("the report line") < result.stderr.index("watchdog: the shutdown")


def test_last_words_that_fail_do_not_keep_the_process_alive() -> None:
    """An error making the report is logged, and the watchdog still ends the process."""
    result = run_last_words(fail="raise RuntimeError('no report')")
    assert result.returncode == 70
    assert "the watchdog could not log the shutdown report" in result.stderr
    assert "RuntimeError: no report" in result.stderr
