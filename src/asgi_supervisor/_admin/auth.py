"""Who may call the admin endpoints: a caller with a token, a browser with a session for the
read-only views, and never a browser for anything that changes state.

The trust model (docs/endpoints.md, "Admin access and threat model", says it for users):

* The client address proves nothing. Servers rewrite ``scope["client"]`` from forwarding
  headers (uvicorn ``--forwarded-allow-ips='*'``, daphne ``--proxy-headers``) and leave it
  ``None`` for a TCP connection reset before they read its peer. It is never consulted.
* A caller proves it is local by sending the local token (see `local_token`): only this
  user (and root) can read its file. A remote caller sends the configured ``admin_token``.
  Either goes in ``Authorization: Bearer <token>``; the scheme is case-insensitive and
  extra spaces are tolerated (RFC 9110 section 11.4), and tokens compare in constant time.
* A browser never calls an admin endpoint: a request with an ``Origin`` header, or with a
  ``Sec-Fetch-Site`` other than ``same-origin``/``none``, is refused whatever its token.
  Command-line clients send neither. (The token alone already defeats cross-site requests
  and DNS rebinding, since a page cannot read it; this is defence in depth.)
* A browser opens the read-only views (`/tasks`, page and JSON) with a session cookie it got
  by exchanging a one-time login code (see `login`): an endpoint opts in with
  ``session=True``, and only read-only ones do. The cookie is ``SameSite=Strict``, so a
  request another site makes never carries it, and the refusal above still applies.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .login import session_in

if TYPE_CHECKING:
    from .local_token import LocalTokens

__all__ = ["AdminAuth", "Refusal", "bearer_token"]

Refusal = tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]

_SAFE_FETCH_SITES = (b"same-origin", b"none")
_BROWSER: Refusal = (
    403,
    {
        "error": "admin endpoints refuse requests from browsers (an Origin or cross-site "
        "Sec-Fetch-Site header was sent); call them with the asgi-supervisor command or a "
        "script"
    },
    [],
)
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="asgi-supervisor"')]


class AdminAuth:
    """Decides whether a request may reach an admin endpoint.

    Args:
        admin_token: the configured token for remote callers, or None.
        local: the local tokens of the lifespan running now, or None (outside a lifespan,
            or with the local token off).
    """

    def __init__(self, admin_token: str | None, local: Callable[[], LocalTokens | None]) -> None:
        self._admin_token = admin_token.encode() if admin_token is not None else None
        self._local = local
        if admin_token is None:
            hint = "run `asgi-supervisor` on the server's host as the server's user"
        else:
            hint = "send the configured admin token, or run `asgi-supervisor` on the host"
        self._unauthorized: Refusal = (
            401,
            {"error": f"a valid bearer token is required: {hint}"},
            _CHALLENGE,
        )
        self._no_session: Refusal = (
            401,
            {
                "error": f"a valid bearer token is required: {hint}; in a browser, open the "
                "one-time link that `asgi-supervisor open URL` prints"
            },
            _CHALLENGE,
        )

    async def keys(self) -> list[bytes]:
        """Every token accepted now: the local tokens, then the configured admin token.

        May look for the local token once (a short thread, see `LocalTokens.refresh`).
        """
        local = self._local()
        if local is not None and not local.tokens:
            # The server may have bound its socket since our last look. Even a caller with
            # no token waits for it: the command reads the file it writes, and asks again.
            await local.refresh()
        keys = [] if local is None else [*local.tokens]
        if self._admin_token is not None:
            keys.append(self._admin_token)
        return keys

    async def refusal(self, scope: Mapping[str, Any], *, session: bool = False) -> Refusal | None:
        """Why *scope* may not reach an admin endpoint, or None when it may.

        With *session* (read-only endpoints only), a valid session cookie serves as well as a
        bearer token. May look for the local token once (see `keys`).
        """
        credentials: list[bytes] = []
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                return _BROWSER
            if name == b"sec-fetch-site" and value.strip().lower() not in _SAFE_FETCH_SITES:
                return _BROWSER
            if name == b"authorization":
                token = bearer_token(value)
                if token is not None:
                    credentials.append(token)
        expected = await self.keys()
        matched = False
        for given in credentials:
            for token in expected:
                # Every comparison runs: the time taken says nothing about which matched.
                matched |= hmac.compare_digest(given, token)
        if matched:
            return None
        if not session:
            return self._unauthorized
        headers = scope.get("headers", ())
        return None if session_in(headers, expected, now=time.time()) else self._no_session


def bearer_token(value: bytes) -> bytes | None:
    """The token of an ``Authorization`` header value if its scheme is Bearer, else None.

    ``Bearer``, ``bearer`` and ``BEARER`` are one scheme, and spaces or tabs around the token
    are not part of it (RFC 9110 section 11.4).
    """
    parts = value.split(None, 1)  # on runs of whitespace, leading and trailing ignored
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    return parts[1].strip()
