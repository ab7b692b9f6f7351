"""The login's server side: a code is claimed once, here and in the sibling workers, and a
session cookie opens only for the token that signed it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from asgi_supervisor._admin import login
from asgi_supervisor._admin.login import OneTimeCodes, session_cookie, session_in
from asgi_supervisor._admin.signed import (
    LOGIN_LIFETIME,
    SESSION_LIFETIME,
    Verified,
    key_id,
    sign,
    verify,
)
from tests._siblings import Member, joined, listener, runtime, settled

__all__ = ["listener", "runtime"]  # fixtures

KEY, OTHER = b"the-server-token", b"another-servers-token"
NOW = 1_800_000_000.0


def code(now: float = NOW, key: bytes = KEY) -> Verified:
    """A login code signed now, as the server has verified it."""
    value = sign(key, "login", now=now, lifetime=LOGIN_LIFETIME)
    return verify(value, [key], "login", now=now, lifetime=LOGIN_LIFETIME)


async def test_a_code_is_claimed_once_until_it_expires() -> None:
    """1. the first claim wins; 2. the second loses; 3. another code still wins; 4. once the
    memory is full, expired codes are forgotten to make room, and live ones are not."""
    clock = [NOW]
    codes = OneTimeCodes(None, clock=lambda: clock[0])
    first = code()
    assert await codes.claim(first)
    assert not await codes.claim(first)
    assert await codes.claim(code())
    # 4.
    clock[0] = NOW + LOGIN_LIFETIME + 1
    live = {f"live-{i}": NOW + 10 * LOGIN_LIFETIME for i in range(login._MAX_REMEMBERED - 1)}
    codes._used.update(live)
    assert await codes.claim(code(now=clock[0]))  # the two expired ones went
    assert not await codes.claim(code(now=clock[0]))  # full of live codes: refused, not forgotten
    assert not await codes.claim(first)


async def test_a_code_used_on_one_worker_is_refused_on_its_siblings(
    listener: socket.socket, runtime: Path
) -> None:
    """1. two workers of one server join their listener folder; 2. one claims a code and,
    before the claim returns, tells the other (``login-used``); 3. the other refuses it, and
    still takes a new one."""
    a, b = Member(runtime, 301), Member(runtime, 302)
    codes_a = OneTimeCodes(a.presence.channel)
    codes_b = OneTimeCodes(b.presence.channel)
    await joined(a, b)
    used = code()
    assert await codes_a.claim(used)
    await settled(a, b)
    assert not await codes_b.claim(used)
    assert await codes_b.claim(code())
    for member in (a, b):
        await member.close()


def test_a_malformed_message_from_a_sibling_is_dropped() -> None:
    """A sibling's message without a time, or with one that is no time, raises ValueError or
    KeyError, which the channel logs and drops; nothing is remembered."""
    codes = OneTimeCodes(None)
    for message in ({"nonce": "n"}, {"nonce": "n", "expiry": "nan"}, {"expiry": 1.0}):
        with pytest.raises((KeyError, ValueError)):
            codes._heard(message)
    assert repr(codes) == "<OneTimeCodes remembered=0>"


def test_the_session_cookie_says_what_it_may_do_and_for_how_long() -> None:
    """Its name carries the key's id; HttpOnly, SameSite=Strict, the page's Path, a bounded
    Max-Age, and Secure only over https."""
    header = session_cookie(KEY, path="/_supervisor/tasks", secure=False, now=NOW).decode()
    pair, *attributes = header.split("; ")
    name, _, value = pair.partition("=")
    assert name == f"asgi-supervisor-{key_id(KEY)}"
    assert verify(value, [KEY], "session", now=NOW, lifetime=SESSION_LIFETIME).key == KEY
    assert attributes == [
        "Path=/_supervisor/tasks",
        f"Max-Age={SESSION_LIFETIME}",
        "HttpOnly",
        "SameSite=Strict",
    ]
    secure = session_cookie(KEY, path="/tasks", secure=True, now=NOW).decode()
    assert secure.endswith("; SameSite=Strict; Secure")


def cookie_header(*pairs: str) -> list[tuple[bytes, bytes]]:
    """The request headers of a browser that sends *pairs* in one Cookie header."""
    return [(b"cookie", "; ".join(pairs).encode())]


def test_a_session_opens_for_its_key_only_and_while_it_lasts() -> None:
    """Among other cookies of the host, a session of ours opens; a session of another
    server (another key), a forged one and an expired one do not."""
    ours = session_cookie(KEY, path="/tasks", secure=False, now=NOW).decode().split("; ")[0]
    theirs = session_cookie(OTHER, path="/tasks", secure=False, now=NOW).decode().split("; ")[0]
    name, _, value = ours.partition("=")
    assert session_in(cookie_header("theme=dark", theirs, ours), [KEY], now=NOW + 1)
    assert not session_in(cookie_header(theirs), [KEY], now=NOW)
    assert not session_in(cookie_header(f"{name}={value[:-2]}xx"), [KEY], now=NOW)
    assert not session_in(cookie_header(ours), [KEY], now=NOW + SESSION_LIFETIME + 1)
    assert not session_in(cookie_header(ours), [], now=NOW)
    assert not session_in([(b"authorization", ours.encode())], [KEY], now=NOW)
