"""The browser's way in: a login code exchanged once for a session that opens the read-only
views, and nothing else.

`asgi-supervisor open URL` prints a link with a login code (see `signed`) to `LOGIN_PATH`
under the server's path prefix, which exchanges it for a session cookie and sends the
browser on to the tasks page (`PAGE_PATH`). The code is
good for one exchange: the process that takes it remembers its nonce until it expires, and
tells its siblings over the listener folder's channel (``login-used``) before it answers, so
that another worker of the same server refuses it too. (Two uses in flight at the same moment
on two workers could both be let through: whoever has the code before its first use could as
well have used it first, so that moment gives nobody anything.)

The session cookie (`session_cookie`): ``HttpOnly`` (no script reads it), ``SameSite=Strict``
(no other site's page or link sends it), its ``Path`` the tasks page's (narrower than the
prefix: the cookie goes to the one view it opens, never to ``/drain`` nor, with an empty
prefix, to every route of the app), ``Secure`` when the
exchange came over https, with a lifetime of `signed.SESSION_LIFETIME` seconds that is signed
into its value as well as given as ``Max-Age``. Its name carries the id of the token that
signed it: cookies do not tell ports apart, so two servers on one host keep one cookie each.
It opens the tasks view (page and JSON) only: `auth.AdminAuth` never accepts it for an
endpoint that changes state, and every state-changing endpoint still refuses browsers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .signed import SESSION_LIFETIME, Verified, key_id, sign, verify

if TYPE_CHECKING:
    from asgi_supervisor._host.channel import Channel

__all__ = [
    "COOKIE_PREFIX",
    "LOGIN_PATH",
    "PAGE_PATH",
    "USED_MESSAGE",
    "OneTimeCodes",
    "session_cookie",
    "session_in",
]

logger = logging.getLogger("asgi_supervisor")

# Under the path prefix: the view a session opens, and where a login code is exchanged.
PAGE_PATH = "/tasks"
LOGIN_PATH = f"{PAGE_PATH}/login"
COOKIE_PREFIX = "asgi-supervisor-"
USED_MESSAGE = "login-used"
# Codes last a minute and each one takes a person running a command: this many used codes
# at once means something is wrong, and refusing more is the safe answer.
_MAX_REMEMBERED = 10_000
_MAX_COOKIES = 50
_TELL_TIMEOUT = 1.0


class OneTimeCodes:
    """The login codes used in this process or told by its siblings, until each expires.

    Example::

        codes = OneTimeCodes(presence.channel)   # hears the siblings' uses
        if await codes.claim(verified):          # first use: remembered, siblings told
            ...                                  # set the session cookie

    The lifespan's run makes it, with the channel of its presence (or None: a process on its
    own); outside a lifespan the endpoints keep one of their own, with no channel.

    Args:
        channel: the channel to the sibling workers of this server, or None.
        clock: the Unix clock the codes' expiries are on.
    """

    def __init__(self, channel: Channel | None, *, clock: Callable[[], float] = time.time) -> None:
        self._channel = channel
        self._clock = clock
        self._used: dict[str, float] = {}  # nonce -> expiry
        if channel is not None:
            channel.on_message(USED_MESSAGE, self._heard)

    def __repr__(self) -> str:
        return f"<OneTimeCodes remembered={len(self._used)}>"

    async def claim(self, code: Verified) -> bool:
        """True the first time *code* is claimed here or by a sibling; False after that, and
        False when too many codes are remembered at once (refusing is the safe answer).

        A True claim is told to the siblings before it returns, waiting at most
        `_TELL_TIMEOUT` seconds (a folder listing in a thread, then one datagram each).
        Cancellation: the code stays claimed here; the siblings may not hear of it.
        """
        if not self._remember(code.nonce, code.expiry):
            return False
        if self._channel is not None:
            message = {"type": USED_MESSAGE, "nonce": code.nonce, "expiry": code.expiry}
            try:
                async with asyncio.timeout(_TELL_TIMEOUT):
                    await self._channel.broadcast(message)
            except TimeoutError:
                logger.warning(
                    "the sibling workers were not told of a used login code within %.0f s; "
                    "one of them may accept it once more",
                    _TELL_TIMEOUT,
                )
        return True

    def _remember(self, nonce: str, expiry: float) -> bool:
        now = self._clock()
        if len(self._used) >= _MAX_REMEMBERED:
            self._used = {n: e for n, e in self._used.items() if e >= now}
        if nonce in self._used or len(self._used) >= _MAX_REMEMBERED:
            return False
        self._used[nonce] = expiry
        return True

    def _heard(self, message: dict[str, Any]) -> None:
        # A malformed message raises ValueError or KeyError: the channel logs and drops it.
        nonce, expiry = str(message["nonce"]), float(message["expiry"])
        if not math.isfinite(expiry):
            raise ValueError(f"expiry {expiry!r} is not a time")
        if not self._remember(nonce, expiry):
            logger.debug("a sibling used a login code this process knew as used already")


def session_cookie(key: bytes, *, path: str, secure: bool, now: float) -> bytes:
    """The ``Set-Cookie`` value of a new session signed with *key*, for the page at *path*."""
    value = sign(key, "session", now=now, lifetime=SESSION_LIFETIME)
    attributes = [
        f"{COOKIE_PREFIX}{key_id(key)}={value}",
        f"Path={path}",
        f"Max-Age={SESSION_LIFETIME}",
        "HttpOnly",
        "SameSite=Strict",
    ]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes).encode()


def session_in(
    headers: Iterable[tuple[bytes, bytes]], keys: Sequence[bytes], *, now: float
) -> bool:
    """True when a ``Cookie`` header of *headers* holds a session valid now for one of *keys*.

    Cookies of other servers on this host (cookies do not tell ports apart) and expired or
    forged sessions are ignored; at most `_MAX_COOKIES` of ours are looked at.
    """
    ids = {key_id(key): key for key in keys}
    looked = 0
    for name, value in headers:
        if name != b"cookie":
            continue
        for pair in value.decode("latin-1").split(";"):
            cookie, _, signed = pair.strip().partition("=")
            key = (
                ids.get(cookie.removeprefix(COOKIE_PREFIX))
                if cookie.startswith(COOKIE_PREFIX)
                else None
            )
            if key is None:
                continue
            looked += 1
            if looked > _MAX_COOKIES:
                return False
            try:
                verify(signed, (key,), "session", now=now, lifetime=SESSION_LIFETIME)
            except ValueError:
                continue
            return True
    return False
