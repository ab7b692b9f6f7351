"""The command line's arguments and help: every command, option, default timeout and exit
status is written here once, and ``--help`` (and the documentation's command reference,
generated from this parser) shows them.

A usage error is the exit status 2, as argparse has it, but raised (`UsageError`) rather
than exiting, so that ``--json`` can report it like any other failure.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import sys
from collections.abc import Callable
from typing import NoReturn

from asgi_supervisor._admin.admin_token import VARIABLE as TOKEN_VARIABLE
from asgi_supervisor._admin.signed import LOGIN_LIFETIME, SESSION_LIFETIME

from .output import EXIT_CODES
from .prefix import DEFAULT_PREFIX
from .prefix import VARIABLE as PREFIX_VARIABLE

__all__ = ["TIMEOUTS", "UsageError", "parser"]

# Each command's default --timeout, in seconds; `open` sends no request.
TIMEOUTS = {"drain": 60.0, "tasks": 10.0, "health": 10.0}
_KINDS = ("worker", "task", "websocket", "request", "untracked")
_MAX_LIMIT = 10_000


class UsageError(Exception):
    """The arguments are wrong; the message says which and how to see the usage."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def parser() -> argparse.ArgumentParser:
    """The ``asgi-supervisor`` parser: ``args.command`` is the command, ``args.url`` its URL."""
    main = _Parser(
        prog="asgi-supervisor",
        description="Talk to the endpoints of an app run under asgi-supervisor: drain it, "
        "list its tasks, ask whether it is ready, or open its tasks page in a browser.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    main.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = main.add_subparsers(required=True, metavar="COMMAND", title="commands")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=description)
        sub.set_defaults(command=name)
        sub.add_argument(
            "url",
            metavar="URL",
            help="the server's URL, such as http://127.0.0.1:8000; a path in it, such as "
            "http://127.0.0.1:8000/_ops, is the endpoints' prefix",
        )
        sub.add_argument(
            "--prefix",
            default=None,
            help="the server's path_prefix, for a URL without a path (default: "
            f"${PREFIX_VARIABLE}, else {DEFAULT_PREFIX}; '/' for endpoints at the root)",
        )
        sub.add_argument(
            "--json",
            action="store_true",
            help="print one JSON document on stdout: the command, the URL, the exit status "
            "and its outcome, and the server's answer or the error",
        )
        timeout = TIMEOUTS.get(name)
        if timeout is not None:
            sub.add_argument(
                "--timeout",
                type=_seconds,
                default=timeout,
                metavar="SECONDS",
                help=f"how long to wait for the server's answer (default: {timeout:g})",
            )
        return sub

    def token(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--token",
            default=None,
            help=f"the server's admin token (default: ${TOKEN_VARIABLE}, else, for a loopback "
            "URL, the local token file of the server, readable by its user only)",
        )

    drain = command(
        "drain",
        "start draining and wait until requests are drained",
        "Start draining the app (POST /drain) and wait until its in-flight requests are "
        "done. Exit 0 once every worker process of the server has drained, 1 if one has not.",
    )
    token(drain)
    tasks = command(
        "tasks",
        "print the tracked tasks as a table",
        "Print the tasks the supervisor tracks (GET /tasks) as a table, filtered and paged "
        "as /tasks is; with --json, the whole answer.",
    )
    token(tasks)
    tasks.add_argument("--kind", choices=_KINDS, help="only tasks of this kind")
    tasks.add_argument("--state", help="only tasks in this state (running, cancelling, ...)")
    tasks.add_argument("--name", help="only tasks whose name contains this text")
    tasks.add_argument(
        "--limit",
        type=_count(1, _MAX_LIMIT),
        default=100,
        help=f"at most this many tasks, 1 to {_MAX_LIMIT} (default: %(default)s)",
    )
    tasks.add_argument(
        "--offset", type=_count(0, None), default=0, help="skip this many tasks (default: 0)"
    )
    tasks.add_argument("--stack", action="store_true", help="print each task's whole stack")
    tasks.add_argument(
        "--all",
        action="store_true",
        help="list the loop's other tasks too, as kind 'untracked'",
    )
    health = command(
        "health",
        "exit 0 when the app is ready, 1 when it is not",
        "Ask whether the app is ready (GET /health/ready). Readiness needs no token and none "
        "is sent, whatever --token or the environment say. Exit 0 when ready, 1 when not.",
    )
    health.add_argument("--token", default=None, help="accepted and ignored: none is sent")
    opening = command(
        "open",
        "print a one-time link that opens the tasks page in a browser",
        f"Print a link that opens the tasks page in a browser: it works once, within "
        f"{LOGIN_LIFETIME} s, and gives the browser a session of {SESSION_LIFETIME // 60} "
        "minutes for the read-only views (the tasks page and its JSON), never for /drain. "
        "The link is signed here with the token, which is sent nowhere: no request is made. "
        "Run it as the server's user, like every command that uses the local token.",
    )
    token(opening)
    opening.add_argument(
        "--browser",
        action="store_true",
        help="also open the link in the default browser, through a file only this user can "
        "read (a link given to a browser on its command line can be read by other users)",
    )
    return main


def _epilog() -> str:
    statuses = "\n".join(f"  {code}  {words}" for code, (_, words) in EXIT_CODES.items())
    timeouts = ", ".join(f"{name} {seconds:g} s" for name, seconds in TIMEOUTS.items())
    return (
        f"exit status:\n{statuses}\n\n"
        f"default timeouts: {timeouts} (--timeout SECONDS); open sends no request.\n\n"
        f"the token: --token, else ${TOKEN_VARIABLE} ('none' turns it off), else, for a "
        "loopback URL,\nthe local token file the server wrote for its port, which only "
        "its user can read.\nNo request follows a redirect, and health sends no token.\n\n"
        "Run `asgi-supervisor COMMAND --help` for a command's options."
    )


def _version() -> str:
    try:
        return importlib.metadata.version("asgi-supervisor")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown: not installed as a distribution)"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _count(least: int, most: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        # At most 9 digits, as /tasks takes them.
        value = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else -1
        if value < least or (most is not None and value > most):
            upper = f" to {most}" if most is not None else " or more"
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {least}{upper}")
        return value

    return parse
