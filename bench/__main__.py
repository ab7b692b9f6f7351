"""``python -m bench [NAME ...] [--quick]``: run every benchmark, or the ones named."""

from __future__ import annotations

import logging
import sys

from bench import (
    call_graph,
    instructions,
    overhead,
    spawn,
    stop_tasks,
    tasks_endpoint,
    wrk_throughput,
)

BENCHMARKS = {
    "overhead": overhead.main,
    "stop_tasks": stop_tasks.main,
    "spawn": spawn.main,
    "tasks_endpoint": tasks_endpoint.main,
    "call_graph": call_graph.main,
    "instructions": instructions.main,
    "wrk": wrk_throughput.main,
}


def main(argv: list[str]) -> int:
    # The shutdowns the benchmarks run log their reports; the figures are what matters here.
    logging.getLogger("asgi_supervisor").setLevel(logging.CRITICAL)
    names = [arg for arg in argv if not arg.startswith("--")] or list(BENCHMARKS)
    flags = [arg for arg in argv if arg.startswith("--")]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        status = BENCHMARKS[name](flags)
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
