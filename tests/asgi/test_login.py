"""The login link in-process: a browser's one-time code becomes a read-only session, once.

The client here is a browser: it sends no ``Authorization`` header, only what a browser
sends on a navigation (``Sec-Fetch-Site``, ``Accept``) and the cookies it was given.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from asgi_supervisor import State, SupervisorMiddleware
from asgi_supervisor._admin.signed import LOGIN_LIFETIME, SESSION_LIFETIME, key_id, sign
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import LOOPBACK, TOKEN, bare_app, quiet_supervisor

NAVIGATION = {"Sec-Fetch-Site": "none", "Accept": "text/html,*/*;q=0.8"}
COOKIE = f"asgi-supervisor-{key_id(TOKEN.encode())}"


def browser(app: SupervisorMiddleware, scheme: str = "http") -> httpx.AsyncClient:
    """A client that keeps cookies, follows no redirect and sends no token."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app, client=LOOPBACK),
        base_url=f"{scheme}://testserver",
        headers=NAVIGATION,
    )


def link(token: str = TOKEN, *, now: float | None = None, prefix: str = "") -> str:
    """The path of a login link, as `asgi-supervisor open` signs it."""
    code = sign(token.encode(), "login", now=time.time() if now is None else now, lifetime=60)
    return f"{prefix}/tasks/login?code={code}"


def attributes(response: httpx.Response) -> dict[str, str]:
    """The attributes of the one cookie *response* sets, by lower-case name."""
    (header,) = response.headers.get_list("set-cookie")
    _, *parts = header.split("; ")
    return {name.lower(): value for name, _, value in (part.partition("=") for part in parts)}


def app_with(**settings: Any) -> tuple[SupervisorMiddleware, Any]:
    # At the root, so the paths read as the endpoints page names them; the default prefix
    # has its own test below, and `asgi-supervisor open`'s test exchanges a link under it.
    supervisor = quiet_supervisor(**{"admin_token": TOKEN, "path_prefix": "", **settings})
    return bare_app(supervisor), supervisor


async def test_a_link_opens_the_page_once_and_the_session_reads_only() -> None:
    """1. the link answers 303 to the page with the session cookie (HttpOnly, SameSite=Strict,
    the page's Path, an hour's Max-Age, not Secure over http); 2. the cookie alone opens the
    page and its JSON; 3. it does not drain, and nothing drains; 4. the link a second time
    is refused with a page that says so."""
    app, supervisor = app_with()
    async with LifespanManager(app), browser(app) as http:
        path = link()
        exchanged = await http.get(path)
        assert exchanged.status_code == 303
        assert exchanged.headers["location"] == "/tasks"
        assert exchanged.headers["cache-control"] == "no-store"
        assert exchanged.headers["referrer-policy"] == "no-referrer"
        assert attributes(exchanged) == {
            "path": "/tasks",
            "max-age": str(SESSION_LIFETIME),
            "httponly": "",
            "samesite": "Strict",
        }
        assert COOKIE in http.cookies
        # 2.
        page = await http.get("/tasks")
        assert (page.status_code, page.headers["content-type"]) == (200, "text/html; charset=utf-8")
        assert "<title>tasks · asgi-supervisor</title>" in page.text
        data = await http.get("/tasks", headers={"Accept": "application/json"})
        assert (data.status_code, data.json()["state"]) == (200, "ready")
        # 3.
        drain = await http.post("/drain")
        assert drain.status_code == 401
        assert supervisor.state is State.READY
        # 4.
        again = await http.get(path)
        assert again.status_code == 403
        assert again.headers["content-type"] == "text/html; charset=utf-8"
        assert "This login link was used already" in again.text
        assert "asgi-supervisor open URL" in again.text
        assert "set-cookie" not in again.headers


async def test_without_a_session_the_page_says_how_to_get_one() -> None:
    """No cookie, or a cookie of another server on this host: 401, naming the command."""
    app, _ = app_with()
    other = sign(b"another-server", "session", now=time.time(), lifetime=SESSION_LIFETIME)
    async with LifespanManager(app), browser(app) as http:
        refused = await http.get("/tasks")
        assert refused.status_code == 401
        assert "asgi-supervisor open URL" in refused.json()["error"]
        http.cookies.set(f"asgi-supervisor-{key_id(b'another-server')}", other)
        assert (await http.get("/tasks")).status_code == 401


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/tasks/login", "This link has no login code"),
        ("/tasks/login?code=1.2.3&code=4.5.6", "This link has no login code"),
        ("/tasks/login?code=nonsense", "malformed"),
        (None, "not signed with a token this server accepts"),
        ("expired", "expired"),
        ("lasting", "longer than the 60 s allowed"),
    ],
)
async def test_a_bad_link_is_refused_with_a_page_that_says_why(
    path: str | None, words: str
) -> None:
    """Missing, doubled, malformed, forged (another server's token), expired, or valid for
    too long: 403, a page with the reason, no cookie."""
    if path is None:
        path = link("another-servers-token")
    elif path == "expired":
        path = link(now=time.time() - LOGIN_LIFETIME - 5)
    elif path == "lasting":
        code = sign(TOKEN.encode(), "login", now=time.time(), lifetime=86_400)
        path = f"/tasks/login?code={code}"
    app, _ = app_with()
    async with LifespanManager(app), browser(app) as http:
        refused = await http.get(path)
        assert refused.status_code == 403
        assert words in refused.text
        assert "set-cookie" not in refused.headers
        assert (await http.get("/tasks")).status_code == 401


async def test_only_get_spends_a_code() -> None:
    """HEAD and POST are refused (405, Allow: GET) and leave the code unspent."""
    app, _ = app_with()
    async with LifespanManager(app), browser(app) as http:
        path = link()
        for method in ("HEAD", "POST"):
            refused = await http.request(method, path)
            assert (refused.status_code, refused.headers["allow"]) == (405, "GET")
        assert (await http.get(path)).status_code == 303


async def test_a_link_from_another_site_gets_a_page_that_moves_on() -> None:
    """A link opened from a file or another site (Sec-Fetch-Site: cross-site, which is how
    `open --browser` hands it over) gets 200 and a page that refreshes to the tasks page,
    since a browser drops a Strict cookie on a redirect begun elsewhere; the cookie is set."""
    app, _ = app_with()
    async with LifespanManager(app), browser(app) as http:
        moved = await http.get(link(), headers={"Sec-Fetch-Site": "cross-site"})
        assert moved.status_code == 200
        assert '<meta http-equiv="refresh" content="0;url=/tasks">' in moved.text
        assert "script" not in moved.text
        assert attributes(moved)["samesite"] == "Strict"
        assert (await http.get("/tasks")).status_code == 200


@pytest.mark.parametrize("prefix", ["/ops", "/_supervisor"])
async def test_the_cookie_follows_the_prefix_and_https(prefix: str) -> None:
    """Under a path prefix (a chosen one, and the default) the cookie's Path and the redirect
    are the prefixed page's; over https the cookie is Secure."""
    settings = {"path_prefix": prefix} if prefix == "/ops" else {}
    supervisor = quiet_supervisor(admin_token=TOKEN, **settings)
    app = bare_app(supervisor)
    async with LifespanManager(app), browser(app, scheme="https") as http:
        exchanged = await http.get(link(prefix=prefix))
        assert exchanged.headers["location"] == f"{prefix}/tasks"
        assert attributes(exchanged)["path"] == f"{prefix}/tasks"
        assert "secure" in attributes(exchanged)
        assert (await http.get(f"{prefix}/tasks")).status_code == 200


async def test_a_session_does_not_lift_the_refusal_of_cross_site_requests() -> None:
    """With a valid session, a request another site's page makes (an Origin, or
    Sec-Fetch-Site: cross-site) is still refused, for /tasks and for /drain."""
    app, supervisor = app_with()
    async with LifespanManager(app), browser(app) as http:
        assert (await http.get(link())).status_code == 303
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            assert (await http.get("/tasks", headers=headers)).status_code == 403
            assert (await http.post("/drain", headers=headers)).status_code == 403
        assert supervisor.state is State.READY


async def test_outside_a_lifespan_a_code_is_still_used_once() -> None:
    """A server that runs no lifespan: the endpoints' own memory refuses a second use."""
    app, _ = app_with()
    async with browser(app) as http:
        path = link()
        assert (await http.get(path)).status_code == 303
        assert (await http.get(path)).status_code == 403
