"""Short-lived values signed with an admin token: the one-time login code and the session.

A browser cannot send an ``Authorization`` header when one opens a URL, and no lasting secret
may sit in a URL (it stays in history, logs, screenshots). So the `asgi-supervisor open`
command, which holds a token the server accepts (the local token, or the admin token),
signs a *login code* with it, valid for `LOGIN_LIFETIME` seconds; the server exchanges the
code, once, for a *session* cookie it signs the same way, valid for `SESSION_LIFETIME`. The
command never sends the token anywhere, and the server keeps no session table: any worker of
a server verifies a value with the tokens it accepts, and the workers of one server share
their local token.

A value is ``<expiry>.<nonce>.<mac>``: the expiry in whole seconds of the Unix clock (a
remote server's clock is not ours: `CLOCK_SKEW` allows for the difference), a random nonce,
and the HMAC-SHA256, keyed by the token, of the purpose, the expiry and the nonce. The
purpose is part of what is signed, so a session is no login code and a login code no
session. Only a value's expiry is bounded here; that a login code is used once is the
server's memory (`login`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CLOCK_SKEW",
    "LOGIN_LIFETIME",
    "SESSION_LIFETIME",
    "SignedValueError",
    "Verified",
    "key_id",
    "sign",
    "verify",
]

Purpose = Literal["login", "session"]

LOGIN_LIFETIME = 60
SESSION_LIFETIME = 3600
# How far the clock of the host that signed a login code may be ahead of the server's.
CLOCK_SKEW = 30
_NONCE_BYTES = 12
_MAX_VALUE = 200
_DOMAIN = b"asgi-supervisor"


class SignedValueError(ValueError):
    """A value is not one this server signed, or no longer valid; the message says which,
    in words a browser's user can act on."""


@dataclass(frozen=True, slots=True)
class Verified:
    """A value that checked out: its nonce, its expiry (Unix seconds), the key that signed it."""

    nonce: str
    expiry: int
    key: bytes


def sign(key: bytes, purpose: Purpose, *, now: float, lifetime: int) -> str:
    """A new value for *purpose*, signed with *key*, expiring *lifetime* seconds after *now*
    (Unix seconds)."""
    expiry = math.floor(now) + lifetime
    nonce = secrets.token_urlsafe(_NONCE_BYTES)
    return f"{expiry}.{nonce}.{_mac(key, purpose, expiry, nonce)}"


def verify(
    value: str,
    keys: Sequence[bytes],
    purpose: Purpose,
    *,
    now: float,
    lifetime: int,
    skew: int = 0,
) -> Verified:
    """Check that *value* was signed for *purpose* with one of *keys* and is valid at *now*.

    A value whose expiry lies more than *lifetime* plus *skew* seconds ahead is refused too:
    whoever holds a key cannot make a lasting link.

    Raises:
        SignedValueError: it is malformed, signed with no key of *keys* (forged, or signed
            for another server or an earlier run of this one), expired, or valid too long.
    """
    parts = value.split(".") if len(value) <= _MAX_VALUE else []
    if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit():
        raise SignedValueError("it is not a value this server makes (malformed)")
    expiry, nonce, mac = int(parts[0]), parts[1], parts[2].encode()
    found: bytes | None = None
    for key in keys:
        # Every comparison runs: the time taken says nothing about which key matched.
        if hmac.compare_digest(mac, _mac(key, purpose, expiry, nonce).encode()):
            found = key
    if found is None:
        raise SignedValueError(
            "it was not signed with a token this server accepts now (made for another "
            "server, or for this one before it restarted)"
        )
    if expiry < now:
        raise SignedValueError(f"it expired {now - expiry:.0f} s ago")
    if expiry > now + lifetime + skew:
        raise SignedValueError(
            f"it is valid for {expiry - now:.0f} s, longer than the {lifetime} s allowed "
            "(is the clock of the host that made it ahead of the server's?)"
        )
    return Verified(nonce, expiry, found)


def key_id(key: bytes) -> str:
    """A short public name for *key* (it tells nothing of the key): a session cookie's name
    carries it, so sessions with two servers on one host do not overwrite each other."""
    return hmac.new(key, _DOMAIN + b"\0key id", hashlib.sha256).hexdigest()[:12]


def _mac(key: bytes, purpose: str, expiry: int, nonce: str) -> str:
    message = b"\0".join((_DOMAIN, purpose.encode(), str(expiry).encode(), nonce.encode()))
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
