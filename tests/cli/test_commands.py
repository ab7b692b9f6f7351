"""The command line, in-process: what it prints from the server's answers, and its own checks
(a token or URL that cannot be sent is a usage error)."""

from __future__ import annotations

import asyncio
import http.server
import io
import json
import threading
import time
import urllib.parse
from typing import Any

import pytest

from asgi_supervisor._admin.local_token import FoundToken
from asgi_supervisor._cli import commands
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import TOKEN, bare_app, client, quiet_supervisor
from tests.servers._process import free_port

PREFIX = "/_supervisor"  # where the server answers, and the command asks, by default


async def test_drain_prints_the_line_the_report_writes_of_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1. a real /drain answer; 2. `asgi-supervisor drain` given it prints the state, whether
    drained, and the report's own line (its ``summary``), then this process's line."""
    supervisor = quiet_supervisor(admin_token=TOKEN)
    app = bare_app(supervisor)
    async with LifespanManager(app), client(app) as http:
        body: dict[str, Any] = (await http.post("/_supervisor/drain")).json()
    summary = body["report"]["summary"]
    assert summary.startswith("drain endpoint, ")
    monkeypatch.setattr(commands, "_request", lambda args, path, **_: (200, body))
    out = io.StringIO()
    # The command line runs with no event loop (it reads files and argparse stats them).
    status = await asyncio.to_thread(commands.main, ["drain", "http://127.0.0.1:1"], out)
    assert status == commands.OK
    first, own = out.getvalue().splitlines()
    assert first == f"state={body['state']} drained=True: {summary}"
    assert own.startswith(f"  pid={body['processes'][0]['pid']} state=")


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--token", "s3c\nret"], {}, "asgi-supervisor: --token contains '\\n'"),
        (["--token", "sécret"], {}, "asgi-supervisor: --token contains 'é'"),
        (["--token", "  "], {}, "asgi-supervisor: --token is empty"),
        (
            [],
            {"ASGI_SUPERVISOR_ADMIN_TOKEN": "a\rb"},
            "asgi-supervisor: ASGI_SUPERVISOR_ADMIN_TOKEN contains",
        ),
    ],
)
def test_cli_turns_a_bad_token_into_a_usage_error(
    argv: list[str],
    environ: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token that cannot go in a header is exit 2 with a sentence, never a traceback."""
    monkeypatch.delenv("ASGI_SUPERVISOR_ADMIN_TOKEN", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    url = f"http://127.0.0.1:{free_port()}"
    assert commands.main(["drain", url, "--timeout", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_turns_a_bad_url_into_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A URL with a control character is exit 2 with a sentence, not a traceback."""
    assert commands.main(["tasks", "http://127.0.0.1:1/a b\n", "--token", "x"]) == 2
    assert "cannot send a request to" in capsys.readouterr().err


class Recorder:
    """A local HTTP server on loopback, in a thread, that answers each path as told, under
    the default prefix as the endpoints are, and records every request it gets: method,
    path and headers.

    Example::

        with Recorder({"/drain": (302, {"Location": "http://..."}, b"")}) as server:
            ...  # server.url, server.requests
    """

    def __init__(self, answers: dict[str, tuple[int, dict[str, str], bytes]] | None = None):
        self.answers = answers or {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorder.requests.append((self.command, self.path, dict(self.headers)))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                path = self.path.split("?")[0]
                missing: tuple[int, dict[str, str], bytes] = (404, {}, b'{"error": "no such path"}')
                status, headers, body = (
                    recorder.answers.get(path.removeprefix(PREFIX), missing)
                    if path.startswith(PREFIX + "/")
                    else missing
                )
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def json_answer(body: dict[str, Any], status: int = 200) -> tuple[int, dict[str, str], bytes]:
    """An answer of *status* with *body* as JSON."""
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(("command", "path"), [("drain", "/drain"), ("tasks", "/tasks")])
def test_a_redirect_is_never_followed_with_the_token(
    code: int, command: str, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that answers POST /drain or GET /tasks with a redirect to another server:
    1. the command exits 5 saying where it pointed; 2. the other server gets no request,
    so no Authorization header; 3. with --json, the document says so too."""
    with Recorder() as target:
        location = f"{target.url}/steal"
        with Recorder({path: (code, {"Location": location}, b"")}) as server:
            assert commands.main([command, server.url, "--token", "s3cret"]) == 5
            err = capsys.readouterr().err
            assert f"{server.url}{PREFIX}{path}" in err
            assert f"answered {code}, pointing to '{location}'" in err
            assert "follows no redirect" in err
            out = io.StringIO()
            assert commands.main([command, server.url, "--token", "s3cret", "--json"], out) == 5
            document = json.loads(out.getvalue())
            assert (document["exit"], document["outcome"]) == (5, "unexpected")
            assert (document["http_status"], document["location"]) == (code, location)
        assert [method for method, _, _ in server.requests] == [server.requests[0][0]] * 2
        assert server.requests[0][2]["Authorization"] == "Bearer s3cret"  # the URL given
        assert target.requests == []


def test_health_sends_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither --token nor the variable reaches /health/ready, which needs no token."""
    monkeypatch.setenv("ASGI_SUPERVISOR_ADMIN_TOKEN", "from-the-environment")
    ready = json_answer({"status": "ready", "state": "ready"})
    with Recorder({"/health/ready": ready}) as server:
        assert commands.main(["health", server.url], io.StringIO()) == commands.OK
        assert commands.main(["health", server.url, "--token", "x"], io.StringIO()) == 0
    assert len(server.requests) == 2
    for _, path, headers in server.requests:
        assert path == f"{PREFIX}/health/ready"
        assert "Authorization" not in headers


def test_a_loopback_url_never_goes_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """With http_proxy set, a loopback URL is still asked directly: the proxy would get the
    local token."""
    tasks = json_answer({"state": "ready", "tasks": [], "count": 0, "total": 0})
    with Recorder() as proxy, Recorder({"/tasks": tasks}) as server:
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        assert commands.main(["tasks", server.url, "--token", "t"], io.StringIO()) == 0
    assert proxy.requests == []
    assert len(server.requests) == 1


HOSTILE = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\rok\x9b31m\u202e"
SHOWN = "\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J\\rok\\x9b31m\\u202e"


def test_what_the_server_says_prints_without_control_characters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Task names, where they wait, drain summaries, readiness reasons, and the server's
    own error messages print escaped, on stdout and on stderr."""
    task = {"id": 1, "kind": "task", "state": "running", "age": 1.0, "name": HOSTILE}
    with Recorder(
        {
            "/tasks": json_answer(
                {"state": "ready", "tasks": [{**task, "where": HOSTILE}], "count": 1, "total": 1}
            ),
            "/drain": json_answer(
                {
                    "state": HOSTILE,
                    "drained": True,
                    "report": {"summary": HOSTILE},
                    "processes": [{"pid": 1, "state": "x", "drained": True, "error": HOSTILE}],
                }
            ),
            "/health/ready": json_answer(
                {"status": "not ready", "state": "draining", "reasons": [HOSTILE]}, 503
            ),
        }
    ) as server:
        assert commands.main(["tasks", server.url, "--token", "t"]) == 0
        assert commands.main(["drain", server.url, "--token", "t"]) == 0
        assert commands.main(["health", server.url]) == 1
        server.answers["/tasks"] = json_answer({"error": HOSTILE}, 401)
        assert commands.main(["tasks", server.url, "--token", "t"]) == 4
        server.answers["/tasks"] = json_answer({"what": HOSTILE}, 500)
        assert commands.main(["tasks", server.url, "--token", "t"]) == 5
    captured = capsys.readouterr()
    for text in (captured.out, captured.err):
        assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text)
        assert "\u202e" not in text
    assert captured.out.count(SHOWN) == 2 + 3 + 1  # name and where; state, summary, error
    assert captured.err.count(SHOWN) == 2


def test_tasks_sends_every_filter_and_prints_the_stacks_under_their_rows() -> None:
    """1. the filters go in the query as /tasks reads them; 2. --stack prints each task's
    stack lines under its row; 3. an offset shows in the summary; 4. the server's 400 is a
    usage error with its words."""
    row = {
        "id": 7,
        "kind": "task",
        "state": "running",
        "age": 2.5,
        "name": "job",
        "where": "app.py:3",
        "stack": ['  File "app.py", line 3, in job\n    await x\n'],
    }
    answer = {"state": "ready", "tasks": [row], "count": 1, "total": 12, "offset": 10}
    with Recorder({"/tasks": json_answer(answer)}) as server:
        out = io.StringIO()
        argv = ["tasks", server.url, "--token", "t", "--kind", "task", "--state", "running"]
        argv += ["--name", "jo b", "--limit", "5", "--offset", "10", "--stack", "--all"]
        assert commands.main(argv, out) == 0
        server.answers["/tasks"] = json_answer({"error": "kind='x' is not one of ..."}, 400)
        err = io.StringIO()
        assert commands.main(["tasks", server.url, "--token", "t"], io.StringIO(), err) == 2
    query = server.requests[0][1].partition("?")[2]
    assert urllib.parse.parse_qs(query) == {
        "kind": ["task"],
        "state": ["running"],
        "name": ["jo b"],
        "limit": ["5"],
        "offset": ["10"],
        "stack": ["1"],
        "all": ["1"],
    }
    header, first, *stack, summary = out.getvalue().splitlines()
    assert header.split() == ["ID", "KIND", "STATE", "AGE", "RESTARTS", "NAME", "WHERE"]
    assert first.split() == ["7", "task", "running", "2.5s", "0", "job", "app.py:3"]
    assert stack == ['      File "app.py", line 3, in job', "        await x"]
    assert summary == "1 of 12 tasks from offset 10 (state=ready)"
    assert "the server refused the query: kind='x' is not one of" in err.getvalue()


@pytest.mark.parametrize(
    ("command", "path", "answer", "status", "outcome"),
    [
        ("drain", "/drain", {"state": "stopped", "drained": True, "processes": []}, 0, "drained"),
        ("drain", "/drain", {"state": "closing", "drained": False}, 1, "not drained"),
        ("tasks", "/tasks", {"state": "ready", "tasks": [], "count": 0, "total": 0}, 0, "listed"),
        ("health", "/health/ready", {"status": "ready", "state": "ready"}, 0, "ready"),
    ],
)
def test_json_gives_the_answer_and_the_exit_status_of_every_command(
    command: str, path: str, answer: dict[str, Any], status: int, outcome: str
) -> None:
    """With --json, each command prints one document: the server's answer, its HTTP status,
    and the exit status with its outcome; nothing else on stdout."""
    with Recorder({path: json_answer(answer)}) as server:
        out = io.StringIO()
        assert commands.main([command, server.url, "--token", "t", "--json"], out) == status
    document = json.loads(out.getvalue())
    assert document == {
        "command": command,
        "url": server.url,
        "exit": status,
        "outcome": outcome,
        "http_status": 200,
        "answer": answer,
    }


def test_json_on_a_failure_says_why_on_stdout_and_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unreachable server with --json: exit 3, the document says "unreachable" and the
    error, which stderr says too."""
    url = f"http://127.0.0.1:{free_port()}"
    assert commands.main(["drain", url, "--json", "--timeout", "2", "--token", "t"]) == 3
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert (document["exit"], document["outcome"]) == (3, "unreachable")
    assert document["error"].startswith(f"cannot reach {url}{PREFIX}/drain")
    assert captured.err.startswith(f"asgi-supervisor: cannot reach {url}{PREFIX}/drain")


async def test_open_prints_a_link_the_server_exchanges_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1. `open` with the admin token prints one line, the link, and a note on stderr; no
    request is made; 2. the server exchanges the link for a session; 3. with --json the
    document holds the link and its expiry, a minute ahead."""

    def no_request(*args: Any) -> tuple[int, bytes]:
        raise AssertionError("open sent a request")

    monkeypatch.setattr(commands, "_send", no_request)
    out, err = io.StringIO(), io.StringIO()
    url = "http://127.0.0.1:8000"
    argv = ["open", url, "--token", TOKEN]
    assert await asyncio.to_thread(commands.main, argv, out, err) == commands.OK
    (link,) = out.getvalue().splitlines()
    assert link.startswith(f"{url}{PREFIX}/tasks/login?code=")
    assert "opens the tasks page once, within 60 s" in err.getvalue()
    assert TOKEN not in link
    supervisor = quiet_supervisor(admin_token=TOKEN)
    app = bare_app(supervisor)
    async with LifespanManager(app), client(app) as http:
        exchanged = await http.get(link.removeprefix(url), headers={"Authorization": ""})
        assert exchanged.status_code == 303
    out = io.StringIO()
    assert await asyncio.to_thread(commands.main, [*argv, "--json"], out) == commands.OK
    document = json.loads(out.getvalue())
    assert (document["outcome"], document["browser"]) == ("link", None)
    assert document["link"].startswith(f"{url}{PREFIX}/tasks/login?code=")
    assert 55 <= document["expires_at"] - time.time() <= 61


def test_open_without_a_token_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """No token given and no local token file (or a remote URL): exit 4, with the advice the
    other commands give."""
    monkeypatch.delenv("ASGI_SUPERVISOR_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("ASGI_SUPERVISOR_RUNTIME_DIR", "/nonexistent/runtime")
    for url, advice in (
        ("http://127.0.0.1:1", "no local token file for 127.0.0.1:1"),
        ("http://203.0.113.7:8000", "the local token file is used only for loopback URLs"),
    ):
        err = io.StringIO()
        assert commands.main(["open", url], io.StringIO(), err) == commands.REFUSED
        assert "no token to sign a login link with" in err.getvalue()
        assert advice in err.getvalue()


def test_open_names_the_address_whose_socket_is_the_servers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`open http://localhost:P` where the server's socket is on 127.0.0.1 only: the link the
    browser gets names 127.0.0.1, not localhost, which it may resolve to another user's
    [::1] listener first."""
    monkeypatch.delenv("ASGI_SUPERVISOR_ADMIN_TOKEN", raising=False)
    found = FoundToken("tok", None, "127.0.0.1", frozenset({0}), (), ())
    monkeypatch.setattr(commands, "find_token", lambda addresses, port, environ: found)
    out = io.StringIO()
    assert commands.main(["open", "http://localhost:8123/admin"], out, io.StringIO()) == 0
    assert out.getvalue().startswith("http://127.0.0.1:8123/admin/tasks/login?code=")


def test_open_with_browser_hands_the_link_over_and_still_prints_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`open --browser` prints the link and gives it to the browser through `open_link`;
    when no browser starts, a note says to open the link by hand."""
    handed: list[str] = []

    def fake_open_link(link: str, *, expiry: float) -> bool:
        handed.append(link)
        return False

    monkeypatch.setattr(commands, "open_link", fake_open_link)
    out, err = io.StringIO(), io.StringIO()
    assert commands.main(["open", "http://h:1", "--token", "t", "--browser"], out, err) == 0
    assert handed == [out.getvalue().strip()]
    assert "no browser could be started: open the link above in one" in err.getvalue()


def test_no_address_served_by_this_user_sends_nothing_and_exits_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The URL's host is served by another user's socket only: the command sends no request
    at all, exits 4, and says why and what to do."""
    problem = "the socket listening on [::1]:8000 belongs to another user (uid 1001), not to a"
    found = FoundToken(None, None, None, frozenset(), (), (problem,), ("[::1]:8000",))
    monkeypatch.setattr(commands, "find_token", lambda addresses, port, environ: found)
    monkeypatch.delenv("ASGI_SUPERVISOR_ADMIN_TOKEN", raising=False)

    def send(*args: object, **kwargs: object) -> tuple[int, bytes]:
        raise AssertionError("nothing may be sent")

    monkeypatch.setattr(commands, "_send", send)
    assert commands.main(["drain", "http://[::1]:8000"], out=io.StringIO()) == commands.REFUSED
    err = capsys.readouterr().err
    assert err.startswith("asgi-supervisor: not sending the local token to [::1]:8000: ")
    assert problem in err
    assert "pass --token / set ASGI_SUPERVISOR_ADMIN_TOKEN" in err


def test_a_drain_refused_by_a_worker_outside_its_group_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """/drain answered 409 (one worker of several, outside the process group): the command
    prints the worker's reason and exits 1, not drained."""
    body = {
        "error": "this worker (pid 7) is one of several ...; nothing was drained.",
        "drained": False,
    }
    monkeypatch.setattr(commands, "_request", lambda args, path, **_: (409, body))
    out = io.StringIO()
    assert commands.main(["drain", "http://127.0.0.1:1"], out=out) == commands.NOT_READY
    assert out.getvalue() == ""
    assert capsys.readouterr().err == f"asgi-supervisor: drain refused: {body['error']}\n"
