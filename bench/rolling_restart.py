"""The zero-downtime proof, long form: ``make proof`` (or ``python bench/rolling_restart.py``).

Runs N rounds of rolling restarts behind HAProxy under wrk load (see ``tests/servers/rig``)
and prints, per round, the requests served, the failures (non-2xx plus socket errors), and
SIGTERM -> marked DOWN -> exit times. Exits non-zero if the supervised app lost anything.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from tests.servers.rig import PLAIN_APP, SUPERVISED_APP, SUPERVISED_ENV, Rig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10, help="rolling restarts (default 10)")
    parser.add_argument("--app", choices=("supervised", "plain"), default="supervised")
    args = parser.parse_args(argv)
    app, env = (SUPERVISED_APP, SUPERVISED_ENV) if args.app == "supervised" else (PLAIN_APP, {})
    print(f"{args.rounds} rolling restarts of 2 replicas ({args.app}) behind HAProxy, wrk -c16")
    print(f"{'round':>5} {'requests':>9} {'failures':>9} {'to DOWN (s)':>22} {'to exit (s)':>22}")
    failed_rounds = 0
    downs: list[float] = []
    exits: list[float] = []
    for number in range(1, args.rounds + 1):
        with Rig(app, env) as rig:
            load, transitions = rig.rolling_restart(rounds=1)
        to_down = [t.to_down for t in transitions if t.to_down is not None]
        to_exit = [t.to_exit for t in transitions if t.to_exit is not None]
        downs += to_down
        exits += to_exit
        failed_rounds += load.failures > 0
        print(
            f"{number:>5} {load.requests:>9} {load.failures:>9} "
            f"{' / '.join(f'{d:.3f}' for d in to_down):>22} "
            f"{' / '.join(f'{e:.3f}' for e in to_exit):>22}"
        )
    print(
        f"\n{args.rounds - failed_rounds}/{args.rounds} rounds with 0 failures; "
        f"SIGTERM->DOWN median {statistics.median(downs):.3f} s, "
        f"SIGTERM->exit median {statistics.median(exits):.3f} s"
    )
    return 1 if args.app == "supervised" and failed_rounds else 0


if __name__ == "__main__":
    sys.exit(main())
