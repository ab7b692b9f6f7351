"""``GET <prefix>/tasks/login?code=...``: a one-time login link becomes a session of the tasks
view, in a browser.

The link comes from `asgi-supervisor open URL`, which signs the code with a token the server
accepts (`_admin.signed`); here it is checked, claimed once (`_admin.login.OneTimeCodes`),
and answered with the session cookie and the way on to the page:

* ``303 See Other`` to the page, when the link was typed, pasted or opened by the browser
  itself (``Sec-Fetch-Site: none``), or came from a page of this site;
* a page that moves on by itself (``200``, a zero-second refresh), when the link came from
  another site or a local file (``Sec-Fetch-Site: cross-site``): that is how
  ``open --browser`` hands it over, so that the code never sits in a command line other
  users can read. A browser does not send a ``SameSite=Strict`` cookie on a redirect that
  began on another site, so a 303 would land on the page without it; the page's own
  refresh starts on this site, and carries it.

A link that is forged, expired, or was used already gets a short page that says so and how
to get a new one (403). Only ``GET`` exchanges a code: ``HEAD`` and the rest are refused,
so nothing that merely looks at a link spends it. A use is logged at INFO, a second use of
one link at WARNING (someone else may hold it); a forged or expired one at DEBUG only, since
anyone can send one.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

from asgi_supervisor._admin.login import session_cookie
from asgi_supervisor._admin.signed import CLOCK_SKEW, LOGIN_LIFETIME, SignedValueError, verify
from asgi_supervisor._observe.page import HtmlPage, notice_page

from .response import send_body, send_json

if TYPE_CHECKING:
    from asgi_supervisor._admin.auth import AdminAuth
    from asgi_supervisor._admin.login import OneTimeCodes

    from .types import Receive, Scope, Send

__all__ = ["LoginEndpoint"]

logger = logging.getLogger("asgi_supervisor")

_NEW_LINK = "run `asgi-supervisor open URL` as the server's user for a new link"


class LoginEndpoint:
    """The ASGI handler of the login link, for the tasks page at *page_path*.

    Args:
        auth: what knows the tokens the server accepts now.
        codes: the one-time memory of the lifespan running now (or of the endpoints).
        page_path: the tasks page's path; the session cookie's ``Path`` too.
    """

    def __init__(
        self, auth: AdminAuth, codes: Callable[[], OneTimeCodes], *, page_path: str
    ) -> None:
        self._auth = auth
        self._codes = codes
        self._page_path = page_path
        self._tasks_link = (page_path, "Open the tasks page")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method != "GET":
            error = {"error": f"method {method} is not allowed here; open the link in a browser"}
            await send_json(send, method, 405, error, [(b"allow", b"GET")])
            return
        query = urllib.parse.parse_qs(
            scope.get("query_string", b"").decode("latin-1"), max_num_fields=5
        )
        codes = query.get("code", [])
        if len(codes) != 1:
            await self._refuse(send, "This link has no login code.", forged=True)
            return
        now = time.time()
        keys = await self._auth.keys()
        try:
            code = verify(
                codes[0], keys, "login", now=now, lifetime=LOGIN_LIFETIME, skew=CLOCK_SKEW
            )
        except SignedValueError as exc:
            await self._refuse(send, f"This login link cannot be used: {exc}.", forged=True)
            return
        if not await self._codes().claim(code):
            logger.warning(
                "a login link was used a second time and refused: whoever opened it twice "
                "may not be the one it was made for"
            )
            text = "This login link was used already: a link opens one session only."
            await self._refuse(send, text, forged=False)
            return
        cookie = session_cookie(
            code.key, path=self._page_path, secure=scope.get("scheme") == "https", now=now
        )
        logger.info("a login link was exchanged for a session of the tasks page")
        headers = [(b"set-cookie", cookie), (b"referrer-policy", b"no-referrer")]
        if _fetch_site(scope) == b"cross-site":
            page = notice_page(
                "signed in",
                "Signed in: the tasks page opens now.",
                link=self._tasks_link,
                moving=True,
            )
            await _send_page(send, 200, page, headers)
            return
        page = notice_page("signed in", "Signed in.", link=self._tasks_link)
        await _send_page(send, 303, page, [*headers, (b"location", self._page_path.encode())])

    async def _refuse(self, send: Send, text: str, *, forged: bool) -> None:
        if forged:
            logger.debug("a login link was refused: %s", text)
        page = notice_page(
            "login link refused",
            f"{text} To open the tasks page, {_NEW_LINK} (it works once, within "
            f"{LOGIN_LIFETIME} s). If you signed in already:",
            link=self._tasks_link,
        )
        await _send_page(send, 403, page, [(b"referrer-policy", b"no-referrer")])


async def _send_page(
    send: Send, status: int, page: HtmlPage, headers: list[tuple[bytes, bytes]]
) -> None:
    extra = [(name, value) for name, value in page.headers if name != b"referrer-policy"]
    await send_body(send, "GET", status, page.content_type, page.body, [*extra, *headers])


def _fetch_site(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"sec-fetch-site":
            return bytes(value).strip().lower()
    return None
