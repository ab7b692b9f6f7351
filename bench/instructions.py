"""Instructions per request of the middleware, counted by valgrind: what load cannot change.

On a shared machine timings swing by more than the whole difference being measured (a
tenth of a microsecond on a 5 µs request), so the per-request cost is also counted in CPU
instructions. Each variant runs in a fresh process under ``valgrind --tool=callgrind`` with
``PYTHONHASHSEED=0``: it serves `WARMUP` requests in-process, as `bench.overhead` does, then
N more; instructions per request are (total at N - total at 0) / N, so start-up, imports and
the warm-up cancel out. To read them as time, one needs the machine's rate for this
workload: `overhead` gives plain Starlette's median µs, and the ratio of the two converts.

``python -m bench instructions [--quick]``; valgrind is ``$VALGRIND`` (default ``valgrind``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from asgi_supervisor import Supervisor, SupervisorMiddleware
from asgi_supervisor.testing import LifespanManager
from bench.overhead import App, NoOp, per_request, starlette

WARMUP = 2_000
VARIANTS = ("plain Starlette", "+ SupervisorMiddleware", "+ no-op pure ASGI middleware")
REPO = Path(__file__).resolve().parents[1]


async def _serve(variant: str, requests: int) -> None:
    if variant == "plain Starlette":
        app: App = starlette()
    elif variant == "+ no-op pure ASGI middleware":
        app = NoOp(starlette())
    else:
        supervisor = Supervisor(handle_signals=False, watchdog=False, local_token=False)
        app = SupervisorMiddleware(starlette(), supervisor=supervisor)
        async with LifespanManager(app):
            await per_request(app, WARMUP)()
            if requests:
                await per_request(app, requests)()
        return
    await per_request(app, WARMUP)()
    if requests:
        await per_request(app, requests)()


def serve(variant: str, requests: int) -> None:
    """The child's part: warm up, then serve *requests* more (under valgrind)."""
    asyncio.run(_serve(variant, requests))


def count(variant: str, requests: int) -> int:
    """The instructions a fresh process takes to serve `WARMUP` and *requests* requests."""
    valgrind = shlex.split(os.environ.get("VALGRIND", "valgrind"))
    code = f"from bench.instructions import serve; serve({variant!r}, {requests})"
    result = subprocess.run(
        [*valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-c", code],
        cwd=REPO, env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return int(found.group(1))


def measure(requests: int) -> dict[str, float]:
    """Instructions per request of each variant."""
    return {
        variant: (count(variant, requests) - count(variant, 0)) / requests for variant in VARIANTS
    }


def main(argv: Sequence[str] = ()) -> int:
    requests = 200 if "--quick" in argv else 10_000
    try:
        per = measure(requests)
    except FileNotFoundError:
        print("instructions: valgrind is not installed (apt-get install valgrind)")
        return 0
    plain = per["plain Starlette"]
    print(f"\nInstructions per request, {requests:,} requests after {WARMUP:,} (callgrind)")
    print(f"  {'variant':<34} {'instructions':>12} {'vs plain':>9} {'vs no-op':>9}")
    noop = per["+ no-op pure ASGI middleware"]
    for variant, value in per.items():
        print(f"  {variant:<34} {value:>12,.0f} {value - plain:>+9,.0f} {value - noop:>+9,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
