"""Who reaches the admin endpoints, in-process: tokens, forwarding headers, browsers, methods.

A remote peer is simulated by the ASGI scope's client; forwarding headers go through
uvicorn's own `ProxyHeadersMiddleware`, as a server run with ``--forwarded-allow-ips='*'``
would apply them.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from asgi_supervisor import Config, State, Supervisor, SupervisorMiddleware
from asgi_supervisor._admin.auth import bearer_token
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import quiet_supervisor

REMOTE = ("203.0.113.7", 5000)


def http(app: Any, address: tuple[str, int] = REMOTE) -> httpx.AsyncClient:
    """An in-process client whose requests come from *address*."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app, client=address), base_url="http://testserver"
    )


async def call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """Call *app* with a scope whose client is None, as uvicorn makes for a reset peer."""
    statuses: list[int] = []
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": None,
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


async def test_forwarded_loopback_address_opens_nothing() -> None:
    """Through ProxyHeadersMiddleware trusting every peer, a remote client that says
    X-Forwarded-For: 127.0.0.1 gets 401 from /tasks and /drain, and nothing drains."""
    supervisor = quiet_supervisor()
    inner = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    app = ProxyHeadersMiddleware(inner, trusted_hosts="*")  # type: ignore[arg-type]
    spoofed = {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http"}
    async with LifespanManager(inner), http(app) as client:
        assert (await client.get("/_supervisor/tasks", headers=spoofed)).status_code == 401
        assert (await client.post("/_supervisor/drain", headers=spoofed)).status_code == 401
        assert (await client.get("/_supervisor/health/ready")).status_code == 200
        assert supervisor.state is State.READY


async def test_a_client_without_an_address_opens_nothing() -> None:
    """A scope whose client is None (a peer that reset before the server read its address)
    gets 401 from /tasks and /drain, and 405 from GET /drain."""
    supervisor = quiet_supervisor()
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    async with LifespanManager(app):
        assert await call(app, "GET", "/_supervisor/tasks", []) == 401
        assert await call(app, "POST", "/_supervisor/drain", []) == 401
        assert await call(app, "GET", "/_supervisor/drain", []) == 405
        assert supervisor.state.value == "ready"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_browsers_are_refused_even_with_the_token(headers: dict[str, str]) -> None:
    """A request a browser sends (Origin, or a Sec-Fetch-Site other than same-origin or
    none) gets 403 even with the right token, and does not drain."""
    supervisor = quiet_supervisor(admin_token="s3cret")
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    async with LifespanManager(app), http(app) as client:
        response = await client.post(
            "/_supervisor/drain", headers={"Authorization": "Bearer s3cret", **headers}
        )
        assert response.status_code == 403
        assert "refuse requests from browsers" in response.json()["error"]
        assert supervisor.state.value == "ready"
        for fetch_site in ("same-origin", "none"):
            allowed = {"Authorization": "Bearer s3cret", "Sec-Fetch-Site": fetch_site}
            assert (await client.get("/_supervisor/tasks", headers=allowed)).status_code == 200


async def test_drain_changes_state_so_it_answers_post_only() -> None:
    """GET and HEAD /drain get 405 with Allow: POST and a JSON error, and do not drain;
    /tasks stays a GET."""
    supervisor = quiet_supervisor(admin_token="s3cret")
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    token = {"Authorization": "Bearer s3cret"}
    async with LifespanManager(app), http(app) as client:
        for method in ("GET", "HEAD"):
            response = await client.request(method, "/_supervisor/drain", headers=token)
            assert (response.status_code, response.headers["allow"]) == (405, "POST")
        body = (await client.get("/_supervisor/drain", headers=token)).json()
        assert body == {"error": "method GET is not allowed here; use POST"}
        assert (await client.post("/_supervisor/tasks", headers=token)).headers[
            "allow"
        ] == "GET, HEAD"
        assert supervisor.state.value == "ready"


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("Bearer s3cret", 200),
        ("bearer s3cret", 200),
        ("BEARER s3cret", 200),
        ("Bearer   s3cret  ", 200),
        ("Bearer\ts3cret", 200),
        ("  Bearer s3cret", 200),
        (None, 401),
        ("Bearer", 401),
        ("Bearer wrong", 401),
        ("Bearer s3cre", 401),
        ("Bearer s3cret extra", 401),
        ("Bearers3cret", 401),
        ("Basic czNjcmV0", 401),
        ("s3cret", 401),
    ],
)
async def test_bearer_scheme_is_case_insensitive_and_the_token_exact(
    header: str | None, status: int
) -> None:
    """The Bearer scheme in any case, with any spaces around the token, works; anything but
    the exact token gets 401 with a challenge and no detail about the token."""
    supervisor = quiet_supervisor(admin_token="s3cret")
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    headers = {"Authorization": header} if header is not None else {}
    async with LifespanManager(app), http(app) as client:
        response = await client.get("/_supervisor/tasks", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == 'Bearer realm="asgi-supervisor"'
        assert "s3cret" not in response.text
        assert response.json()["error"].startswith("a valid bearer token is required")


def test_bearer_token_parsing() -> None:
    """`bearer_token` returns the token of a Bearer header, else None."""
    assert bearer_token(b"Bearer abc") == b"abc"
    assert bearer_token(b"bEaReR \t abc \t") == b"abc"
    assert bearer_token(b"Token abc") is None
    assert bearer_token(b"Bearer") is None
    assert bearer_token(b"") is None


async def test_no_token_configured_means_only_the_local_token() -> None:
    """Without admin_token, and no local token (no listening socket here), every token is
    refused: there is nothing a remote caller could send."""
    supervisor = quiet_supervisor()
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    async with LifespanManager(app), http(app, ("127.0.0.1", 4000)) as client:
        for header in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
            response = await client.get("/_supervisor/tasks", headers=header)
            assert response.status_code == 401
            assert "run `asgi-supervisor` on the server's host" in response.json()["error"]
        assert (await client.get("/_supervisor/health")).status_code == 200


async def test_token_with_a_trailing_newline_in_the_environment_works() -> None:
    """ASGI_SUPERVISOR_ADMIN_TOKEN='s3cret\\n' (a mounted secret) accepts 'Bearer s3cret'."""
    supervisor = Supervisor.from_env(
        {"ASGI_SUPERVISOR_ADMIN_TOKEN": "  s3cret\n"},
        handle_signals=False,
        watchdog=False,
        local_token=False,
    )
    assert supervisor.config.admin_token == "s3cret"
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    async with LifespanManager(app), http(app) as client:
        response = await client.get(
            "/_supervisor/tasks", headers={"Authorization": "Bearer s3cret"}
        )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("token", "match"),
    [
        ("", r"admin_token is empty \(or only whitespace\)"),
        (" \n\t", r"admin_token is empty"),
        ("s3c ret", r"admin_token contains ' ', which cannot be sent in an HTTP Authorization"),
        ("s3c\nret", r"admin_token contains '\\n'"),
        ("sécret", r"admin_token contains 'é'"),
    ],
)
def test_tokens_that_cannot_work_are_refused_at_startup(token: str, match: str) -> None:
    """An empty token, or one with a character a header cannot carry, is a ValueError."""
    with pytest.raises(ValueError, match=match):
        Config(admin_token=token)


def test_an_empty_token_variable_is_refused_not_ignored() -> None:
    """ASGI_SUPERVISOR_ADMIN_TOKEN set but empty is an error naming it; 'none' unsets it."""
    with pytest.raises(ValueError, match=r"^ASGI_SUPERVISOR_ADMIN_TOKEN is empty"):
        Config.from_env({"ASGI_SUPERVISOR_ADMIN_TOKEN": " \n"})
    assert Config.from_env({"ASGI_SUPERVISOR_ADMIN_TOKEN": "none"}).admin_token is None
