"""The ``asgi-supervisor`` command: drain, tasks and health against a running server.

Standard library only, so it works in slim images without curl (a Kubernetes preStop
``exec``, a Docker ``HEALTHCHECK``). Exit codes:

====  =====================================================================
0     done: drained, ready, or the table was printed
1     not drained, or not ready
2     usage error (argparse)
3     the server is unreachable (refused, timed out, bad URL)
4     the server refused us (401/403); the message says what to do
5     the server answered something unexpected
====  =====================================================================

The admin token comes from ``--token``, else ``$ASGI_SUPERVISOR_ADMIN_TOKEN`` (unless set to
``none``), else, for a loopback URL only, the local token the server wrote in the listener
folder of the URL's port (see `asgi_supervisor._admin.local_token.find_token`): run on the
server's host as its user, the command needs no configuration. The local token is never sent
to any other host. A given token is checked as the server checks its own
(`asgi_supervisor._admin.admin_token`): one that cannot go in a header is a usage error, in
the server's words.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, TextIO

from asgi_supervisor._admin.admin_token import VARIABLE as TOKEN_VARIABLE
from asgi_supervisor._admin.admin_token import admin_token, admin_token_from_variable
from asgi_supervisor._admin.local_token import find_token

__all__ = ["main"]

OK, NOT_READY, USAGE, UNREACHABLE, REFUSED, UNEXPECTED = 0, 1, 2, 3, 4, 5


class _Failure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit status."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        return int(args.command(args, out))
    except _Failure as failure:
        print(f"asgi-supervisor: {failure}", file=sys.stderr)
        return failure.status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asgi-supervisor",
        description="Talk to the endpoints of an app run under asgi-supervisor.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help: str, timeout: float) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("url", metavar="URL", help="base URL with any path prefix")
        sub.add_argument(
            "--token", default=None, help=f"admin bearer token (default: ${TOKEN_VARIABLE})"
        )
        sub.add_argument("--timeout", type=float, default=timeout, help="seconds to wait")
        return sub

    drain = command("drain", "start draining and wait until requests are drained", 60.0)
    drain.set_defaults(command=_drain)
    tasks = command("tasks", "print the tracked tasks as a table", 10.0)
    tasks.add_argument("--kind", choices=("worker", "task", "websocket", "request"))
    tasks.add_argument("--state")
    tasks.add_argument("--name")
    tasks.add_argument("--limit", type=int, default=100)
    tasks.set_defaults(command=_tasks)
    health = command("health", "exit 0 when the app is ready, 1 when it is not", 10.0)
    health.set_defaults(command=_health)
    return parser


def _request(
    args: argparse.Namespace,
    path: str,
    query: dict[str, Any] | None = None,
    *,
    method: str = "GET",
) -> tuple[int, Any]:
    base = args.url.rstrip("/")
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https"):
        raise _Failure(USAGE, f"URL {args.url!r} must start with http:// or https://")
    url = base + path
    if query:
        url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
    token, source = _explicit_token(args)
    local = token is None and _is_loopback(parts.hostname)
    if local:
        token, source = _local_token(parts)
    status, body = _send(url, method, token, args.timeout)
    if status == 401 and local:
        # The server writes its token file when it first sees its own socket, which a
        # request can be the first to show it (see `LocalTokens.refresh`): read it again.
        retry, source = _local_token(parts)
        if retry is not None and retry != token:
            status, body = _send(url, method, retry, args.timeout)
    if status in (401, 403):
        raise _Failure(REFUSED, _refused(url, status, body, source))
    try:
        return status, json.loads(body)
    except ValueError:
        raise _Failure(
            UNEXPECTED, f"{url} answered {status} with a body that is not JSON"
        ) from None


def _send(url: str, method: str, token: str | None, timeout: float) -> tuple[int, bytes]:
    data = b"" if method == "POST" else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Accept": "application/json"}
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise _Failure(UNREACHABLE, f"cannot reach {url}: {reason}") from None
    except (ValueError, http.client.InvalidURL) as error:
        # http.client refuses control characters in the URL or in a header value.
        raise _Failure(USAGE, f"cannot send a request to {url!r}: {error}") from None
    except http.client.HTTPException as error:
        raise _Failure(
            UNEXPECTED, f"{url} answered something that is not HTTP: {error!r}"
        ) from None


def _explicit_token(args: argparse.Namespace) -> tuple[str | None, str]:
    # As the server reads them (`admin_token`): set to 'none', the variable is unset.
    try:
        if args.token is not None:
            return admin_token(args.token, source="--token"), "--token"
        token = admin_token_from_variable(os.environ.get(TOKEN_VARIABLE))
    except ValueError as exc:
        raise _Failure(USAGE, str(exc)) from None
    return token, (TOKEN_VARIABLE if token is not None else "")


def _local_token(parts: urllib.parse.SplitResult) -> tuple[str | None, str]:
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _Failure(USAGE, f"the URL's port is not a number: {parts.netloc!r}") from None
    found = find_token(port, os.environ)
    if found.token is not None:
        return found.token, f"the local token file {found.path}"
    where = ", ".join(str(path) for path in found.searched)
    problems = "".join(f"; {problem}" for problem in found.problems)
    return None, f"no local token file for port {port} (looked in {where}{problems})"


def _refused(url: str, status: int, body: bytes, source: str) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    said = f" ({error})" if isinstance(error, str) else ""
    if source.startswith("no local token"):
        advice = (
            f"found {source}: run this command on the server's host as the user the server "
            f"runs as, or pass --token / set {TOKEN_VARIABLE} to the server's admin_token"
        )
    elif source:
        advice = (
            f"the token from {source} was refused: pass --token or set {TOKEN_VARIABLE} to "
            "the server's admin_token"
        )
    else:
        advice = (
            f"pass --token or set {TOKEN_VARIABLE} to the server's admin_token (the local "
            "token file is used only for loopback URLs such as http://127.0.0.1:PORT)"
        )
    return f"{url} answered {status}{said}: {advice}"


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _drain(args: argparse.Namespace, out: TextIO) -> int:
    status, body = _request(args, "/drain", method="POST")
    if status != 200 or not isinstance(body, dict):
        raise _Failure(UNEXPECTED, f"drain answered {status}: {body}")
    # The report writes itself as one line (its `summary`), the same the server logs.
    report = body.get("report")
    summary = report.get("summary") if isinstance(report, dict) else None
    said = f": {summary}" if isinstance(summary, str) else ""
    print(f"state={body.get('state')} drained={body.get('drained')}{said}", file=out)
    everyone = _print_processes(body, out)  # process group: a line per worker process
    return OK if body.get("drained") and everyone else NOT_READY


def _print_processes(body: dict[str, Any], out: TextIO) -> bool:
    """Print each worker process's outcome (see ``membership``); True if all drained."""
    processes = [p for p in body.get("processes") or () if isinstance(p, dict)]
    for process in processes:
        error = process.get("error")
        print(
            f"  pid={process.get('pid')} state={process.get('state')} "
            f"drained={process.get('drained')}" + (f" ({error})" if error else ""),
            file=out,
        )
    return all(process.get("drained") for process in processes)


def _health(args: argparse.Namespace, out: TextIO) -> int:
    status, body = _request(args, "/health/ready")
    if status == 200:
        print(f"ready (state={body.get('state')})", file=out)
        return OK
    if status == 503 and isinstance(body, dict):
        reasons = "; ".join(body.get("reasons", [])) or "no reason given"
        print(f"not ready (state={body.get('state')}): {reasons}", file=out)
        return NOT_READY
    raise _Failure(UNEXPECTED, f"readiness answered {status}: {body}")


def _tasks(args: argparse.Namespace, out: TextIO) -> int:
    query = {"kind": args.kind, "state": args.state, "name": args.name, "limit": args.limit}
    status, body = _request(args, "/tasks", query)
    if status != 200 or not isinstance(body, dict):
        raise _Failure(UNEXPECTED, f"tasks answered {status}: {body}")
    rows = [("ID", "KIND", "STATE", "AGE", "RESTARTS", "NAME", "WHERE")]
    for task in body.get("tasks", []):
        age = task.get("age")
        rows.append(
            (
                str(task.get("id")),
                str(task.get("kind")),
                str(task.get("state")),
                "-" if age is None else f"{age:.1f}s",
                str(task.get("restarts", 0)),
                str(task.get("name")),
                str(task.get("where") or "-"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip(), file=out)
    print(
        f"{body.get('count', 0)} of {body.get('total', 0)} tasks (state={body.get('state')})",
        file=out,
    )
    return OK
