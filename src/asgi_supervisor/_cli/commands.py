"""The ``asgi-supervisor`` command: drain, tasks, health and open, against a running server.

Standard library only, so it works in slim images without curl (a Kubernetes preStop
``exec``, a Docker ``HEALTHCHECK``). Its conventions (``--help`` says them, `parser` holds
them): ``--version``; ``--json`` on every command, for scripts and preStop hooks (one JSON
document on stdout, see `output`); every error on stderr, as a sentence; and exit statuses
that stay as they are:

====  =====================================================================
0     done: drained, ready, the table or the link was printed
1     not drained (some worker process still had work), or not ready
2     usage error: a bad option, URL or token (nothing was sent)
3     the server is unreachable (refused, timed out, bad address)
4     the server refused the token (401/403), or no token was found
5     the server answered something unexpected (a redirect, a body that is not JSON)
====  =====================================================================

The URL is the server's; the endpoints' prefix comes from its path, else ``--prefix``, else
``$ASGI_SUPERVISOR_PATH_PREFIX``, else the server's default ``/_supervisor`` (see `prefix`).

The admin token comes from ``--token``, else ``$ASGI_SUPERVISOR_ADMIN_TOKEN`` (unless set to
``none``), else, for a loopback URL only, the local token the server wrote in its listener
folder (see `asgi_supervisor._admin.local_token.find_token`): run on the server's host as
its user, the command needs no configuration. The local token goes only to the one address
of the URL's host whose listening socket is the one it was written for, checked again once
connected (`pinned`); where no address qualifies (another user listens there), the command
sends nothing and exits 4. A given token is checked as the server checks its own
(`asgi_supervisor._admin.admin_token`): one that cannot go in a header is a usage error, in
the server's words.

Where the token goes: only to the URL given. No request follows a redirect (a 3xx answer is
unexpected, exit 5, and the message says where it pointed): following it would carry the
token wherever the answer says. A loopback URL is never sent through a proxy of the
environment (``http_proxy``), which would receive the local token. ``health`` sends no token
at all: readiness needs none, and a ``HEALTHCHECK`` runs it every few seconds. ``open`` sends
nothing: it signs a one-time login code with the token (see `_admin.signed`).

What the server says (task names, errors, reasons) may come from the app's input: every line
printed goes through `output.printable`, so no control character reaches the terminal.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from asgi_supervisor._admin.admin_token import VARIABLE as TOKEN_VARIABLE
from asgi_supervisor._admin.admin_token import admin_token, admin_token_from_variable
from asgi_supervisor._admin.local_token import find_token
from asgi_supervisor._admin.login import LOGIN_PATH
from asgi_supervisor._admin.signed import LOGIN_LIFETIME, SESSION_LIFETIME, sign
from asgi_supervisor._host.tcp_table import endpoint_text

from .browser import open_link
from .output import (
    EXIT_CODES,
    NOT_READY,
    OK,
    REFUSED,
    UNEXPECTED,
    UNREACHABLE,
    USAGE,
    Result,
    emit,
    table,
)
from .parser import UsageError, parser
from .pinned import NotTheServerError, Pin
from .prefix import endpoint_url

__all__ = ["NOT_READY", "OK", "REFUSED", "UNEXPECTED", "UNREACHABLE", "USAGE", "main"]


class _Failure(Exception):
    def __init__(self, status: int, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.fields = fields


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the command line; return the exit status (see the module's table)."""
    out = out or sys.stdout
    err = err or sys.stderr
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser().parse_args(arguments)
    except SystemExit as done:  # --help and --version print, then exit 0
        return done.code if isinstance(done.code, int) else 0
    except UsageError as exc:
        result = Result(USAGE, EXIT_CODES[USAGE][0])
        emit(
            result,
            command=None,
            url=None,
            as_json="--json" in arguments,
            out=out,
            err=err,
            error=str(exc),
        )
        return USAGE
    where = {"command": args.command, "url": args.url, "as_json": args.json, "out": out, "err": err}
    try:
        result = _COMMANDS[args.command](args)
    except _Failure as failure:
        result = Result(failure.status, EXIT_CODES[failure.status][0], fields=failure.fields)
        emit(result, **where, error=str(failure))
        return failure.status
    emit(result, **where)
    return result.exit


def _request(
    args: argparse.Namespace,
    path: str,
    query: dict[str, Any] | None = None,
    *,
    method: str = "GET",
    auth: bool = True,
) -> tuple[int, Any]:
    base, parts = _base(args)
    url = base + path
    if query:
        url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
    token, source = _explicit_token(args) if auth else (None, "")
    local = auth and token is None and _is_loopback(parts.hostname)
    pin: Pin | None = None
    if local:
        token, source, pin = _local_token(parts, url)
    status, body = _send_local(url, method, token, args.timeout, pin)
    if status == 401 and local:
        # The server writes its token file when it first sees its own socket, which a
        # request can be the first to show it (see `LocalTokens.refresh`): read it again.
        retry, source, pin = _local_token(parts, url)
        if retry is not None and retry != token:
            status, body = _send_local(url, method, retry, args.timeout, pin)
    if status in (401, 403):
        raise _Failure(REFUSED, _refused(url, status, body, source), http_status=status)
    try:
        return status, json.loads(body)
    except ValueError:
        raise _Failure(
            UNEXPECTED, f"{url} answered {status} with a body that is not JSON", http_status=status
        ) from None


def _base(args: argparse.Namespace) -> tuple[str, urllib.parse.SplitResult]:
    # The endpoints' base: the server's URL and the prefix they live under (see `prefix`).
    parts = urllib.parse.urlsplit(args.url)
    if parts.scheme not in ("http", "https"):
        raise _Failure(USAGE, f"URL {args.url!r} must start with http:// or https://")
    try:
        return endpoint_url(args.url, "", args.prefix, os.environ), parts
    except ValueError as exc:
        raise _Failure(USAGE, str(exc)) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A 3xx is then raised as an HTTPError, which `_send` turns into a failure.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _send_local(
    url: str, method: str, token: str | None, timeout: float, pin: Pin | None
) -> tuple[int, bytes]:
    """`_send`, through the connection *pin* allows (if any): exit 4 rather than send the
    request anywhere else."""
    handlers = () if pin is None else pin.handlers()
    try:
        return _send(url, method, token, timeout, handlers)
    except NotTheServerError as refusal:
        raise _Failure(REFUSED, f"not sending the local token: {refusal}") from None


def _send(
    url: str,
    method: str,
    token: str | None,
    timeout: float,
    pinned: Sequence[urllib.request.BaseHandler] = (),
) -> tuple[int, bytes]:
    data = b"" if method == "POST" else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Accept": "application/json"}
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect(), *pinned]
    if not pinned and _is_loopback(urllib.parse.urlsplit(url).hostname):
        # No proxy of the environment (a pinned connection has none already).
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        # The error holds the answer's body open; closed here, not by the collector (a
        # ResourceWarning from 3.14 on).
        with error:
            if 300 <= error.code < 400:
                location = error.headers.get("Location")
                raise _Failure(
                    UNEXPECTED,
                    f"{url} answered {error.code}, pointing to {location!r}: the command follows "
                    "no redirect, which would carry the token to wherever it points; give the "
                    "URL the server answers at itself",
                    http_status=error.code,
                    location=location,
                ) from None
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


def _local_token(parts: urllib.parse.SplitResult, url: str) -> tuple[str | None, str, Pin]:
    """The local token for the loopback URL *parts* (of *url*), where it came from, and the
    one connection it may go through.

    Raises:
        _Failure: REFUSED when no address of the URL's host is served by a socket of this
            user but another user's socket listens there; UNREACHABLE when nothing does.
    """
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _Failure(USAGE, f"the URL's port is not a number: {parts.netloc!r}") from None
    host = parts.hostname or ""
    addresses = _addresses(host, port)
    found = find_token([a for a in addresses if _is_loopback(a)], port, os.environ)
    problems = [f"{a} is not a loopback address" for a in addresses if not _is_loopback(a)]
    problems.extend(found.problems)
    if found.address is None and not found.foreign:
        # Nobody's socket listens there: what the connection would have said.
        raise _Failure(UNREACHABLE, f"cannot reach {url}: {'; '.join(problems)}")
    if found.address is None:
        raise _Failure(
            REFUSED,
            f"not sending the local token to {parts.netloc}: {'; '.join(problems)}. Use the "
            "URL of the address the server listens on, as the server's user, or pass --token "
            f"/ set {TOKEN_VARIABLE} to the server's admin_token.",
        )
    for where in found.foreign:
        print(
            f"asgi-supervisor: warning: another user listens on {where}; the request goes to "
            f"{found.address} only, whose socket is the server's",
            file=sys.stderr,
        )
    pin = Pin(host, port, found.address, found.owners)
    if found.token is not None:
        return found.token, f"the local token file {found.path}", pin
    where = ", ".join(str(path) for path in found.searched)
    said = "".join(f"; {problem}" for problem in problems)
    return None, f"no local token file for {parts.netloc} (looked in {where}{said})", pin


def _addresses(host: str, port: int) -> list[str]:
    """Every address *host* resolves to, in the order a client tries them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise _Failure(UNREACHABLE, f"cannot resolve {host!r}: {error}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _refused(url: str, status: int, body: bytes, source: str) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    said = f" ({error})" if isinstance(error, str) else ""
    return f"{url} answered {status}{said}: {_advice(source)}"


def _advice(source: str) -> str:
    if source.startswith("no local token"):
        return (
            f"found {source}: run this command on the server's host as the user the server "
            f"runs as, or pass --token / set {TOKEN_VARIABLE} to the server's admin_token"
        )
    if source:
        return (
            f"the token from {source} was refused: pass --token or set {TOKEN_VARIABLE} to "
            "the server's admin_token"
        )
    return (
        f"pass --token or set {TOKEN_VARIABLE} to the server's admin_token (the local "
        "token file is used only for loopback URLs such as http://127.0.0.1:PORT)"
    )


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


def _drain(args: argparse.Namespace) -> Result:
    status, body = _request(args, "/drain", method="POST")
    answer = {"http_status": status, "answer": body}
    if status == 409 and isinstance(body, dict) and isinstance(body.get("error"), str):
        # One worker of several, outside the process group: it refused to drain alone.
        raise _Failure(NOT_READY, f"drain refused: {body['error']}", **answer)
    if status != 200 or not isinstance(body, dict):
        raise _Failure(UNEXPECTED, f"drain answered {status}: {body}", **answer)
    # The report writes itself as one line (its `summary`), the same the server logs.
    report = body.get("report")
    summary = report.get("summary") if isinstance(report, dict) else None
    said = f": {summary}" if isinstance(summary, str) else ""
    lines = [f"state={body.get('state')} drained={body.get('drained')}{said}"]
    everyone = _processes(body, lines)  # process group: a line per worker process
    if body.get("drained") and everyone:
        return Result(OK, "drained", lines, answer)
    return Result(NOT_READY, "not drained", lines, answer)


def _processes(body: dict[str, Any], lines: list[str]) -> bool:
    """Add each worker process's outcome (see ``membership``); True if all drained."""
    processes = [p for p in body.get("processes") or () if isinstance(p, dict)]
    for process in processes:
        error = process.get("error")
        lines.append(
            f"  pid={process.get('pid')} state={process.get('state')} "
            f"drained={process.get('drained')}" + (f" ({error})" if error else "")
        )
    return all(process.get("drained") for process in processes)


def _health(args: argparse.Namespace) -> Result:
    status, body = _request(args, "/health/ready", auth=False)
    answer = {"http_status": status, "answer": body}
    if status == 200 and isinstance(body, dict):
        return Result(OK, "ready", [f"ready (state={body.get('state')})"], answer)
    if status == 503 and isinstance(body, dict):
        reasons = "; ".join(str(r) for r in body.get("reasons") or ()) or "no reason given"
        line = f"not ready (state={body.get('state')}): {reasons}"
        return Result(NOT_READY, "not ready", [line], answer)
    raise _Failure(UNEXPECTED, f"readiness answered {status}: {body}", **answer)


def _tasks(args: argparse.Namespace) -> Result:
    query = {
        "kind": args.kind,
        "state": args.state,
        "name": args.name,
        "limit": args.limit,
        "offset": args.offset or None,
        "stack": 1 if args.stack else None,
        "all": 1 if args.all else None,
    }
    status, body = _request(args, "/tasks", query)
    answer = {"http_status": status, "answer": body}
    if status == 400 and isinstance(body, dict):
        raise _Failure(USAGE, f"the server refused the query: {body.get('error')}", **answer)
    if status != 200 or not isinstance(body, dict):
        raise _Failure(UNEXPECTED, f"tasks answered {status}: {body}", **answer)
    rows = [("ID", "KIND", "STATE", "AGE", "RESTARTS", "NAME", "WHERE")]
    stacks: list[list[str]] = []
    for task in body.get("tasks") or ():
        age = task.get("age")
        rows.append(
            (
                str(task.get("id")),
                str(task.get("kind")),
                str(task.get("state")),
                f"{age:.1f}s" if isinstance(age, int | float) else "-",
                str(task.get("restarts", 0)),
                str(task.get("name")),
                str(task.get("where") or "-"),
            )
        )
        stack = task.get("stack") or ()
        stacks.append([f"    {line}" for chunk in stack for line in str(chunk).splitlines()])
    heading, *aligned = table(rows)
    lines = [heading]
    for row, stack in zip(aligned, stacks, strict=True):
        lines.append(row)
        lines.extend(stack)  # with --stack, under its row; the rows keep their columns
    shown = f"{body.get('count', 0)} of {body.get('total', 0)} tasks"
    offset = f" from offset {body.get('offset')}" if body.get("offset") else ""
    lines.append(f"{shown}{offset} (state={body.get('state')})")
    return Result(OK, "listed", lines, answer)


def _open(args: argparse.Namespace) -> Result:
    base, parts = _base(args)
    token, source = _explicit_token(args)
    if token is None and _is_loopback(parts.hostname):
        token, source, base = _link_token(parts, base)
    if token is None:
        raise _Failure(REFUSED, f"no token to sign a login link with: {_advice(source)}")
    now = time.time()
    code = sign(token.encode(), "login", now=now, lifetime=LOGIN_LIFETIME)
    expiry = int(code.partition(".")[0])
    link = f"{base}{LOGIN_PATH}?code={code}"
    notes = [
        f"this link opens the tasks page once, within {LOGIN_LIFETIME} s, for a session of "
        f"{SESSION_LIFETIME // 60} minutes (read-only views)"
    ]
    opened = None
    if args.browser:
        opened = open_link(link, expiry=expiry)
        if not opened:
            notes.append("no browser could be started: open the link above in one")
    fields = {"link": link, "expires_at": expiry, "browser": opened}
    return Result(OK, "link", [link], fields, notes)


def _link_token(parts: urllib.parse.SplitResult, base: str) -> tuple[str | None, str, str]:
    """The local token to sign a login link for *base* with, where it came from, and the
    base URL the link names: the address whose socket `_local_token` found to be the
    server's, since the browser, not this command, connects (``localhost`` may resolve to
    another user's ``[::1]`` first, and the code is worth a session to whoever gets it)."""
    try:
        token, source, pin = _local_token(parts, base)
    except _Failure as failure:
        if failure.status != UNREACHABLE:
            raise
        return None, f"no local token file for {parts.netloc} ({failure})", base
    if pin.address != parts.hostname:
        netloc = endpoint_text((pin.address, pin.port))
        base = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return token, source, base


_COMMANDS: dict[str, Callable[[argparse.Namespace], Result]] = {
    "drain": _drain,
    "tasks": _tasks,
    "health": _health,
    "open": _open,
}
