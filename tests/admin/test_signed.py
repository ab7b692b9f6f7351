"""Signed values: what a login code and a session are, and every way one is refused."""

from __future__ import annotations

import pytest

from asgi_supervisor._admin.signed import (
    CLOCK_SKEW,
    LOGIN_LIFETIME,
    SESSION_LIFETIME,
    SignedValueError,
    key_id,
    sign,
    verify,
)

KEY, OTHER = b"the-server-token", b"another-servers-token"
NOW = 1_800_000_000.25


def test_a_value_verifies_with_its_key_among_others_and_says_what_it_holds() -> None:
    """A value signed with one of several accepted keys verifies, naming that key, its
    expiry (whole seconds, the lifetime after now) and its nonce; two values differ."""
    value = sign(KEY, "login", now=NOW, lifetime=LOGIN_LIFETIME)
    verified = verify(value, [OTHER, KEY], "login", now=NOW + 59, lifetime=LOGIN_LIFETIME)
    assert verified.key == KEY
    assert verified.expiry == 1_800_000_000 + LOGIN_LIFETIME
    assert value == f"{verified.expiry}.{verified.nonce}.{value.rsplit('.', 1)[1]}"
    assert sign(KEY, "login", now=NOW, lifetime=LOGIN_LIFETIME) != value


@pytest.mark.parametrize(
    ("value", "keys", "purpose", "now", "message"),
    [
        ("", [KEY], "login", NOW, "malformed"),
        ("123.abc", [KEY], "login", NOW, "malformed"),
        ("12a.abc.def", [KEY], "login", NOW, "malformed"),
        ("x" * 300, [KEY], "login", NOW, "malformed"),
        (None, [OTHER], "login", NOW, "not signed with a token this server accepts"),
        (None, [], "login", NOW, "not signed with a token this server accepts"),
        (None, [KEY], "session", NOW, "not signed with a token this server accepts"),
        (None, [KEY], "login", NOW + LOGIN_LIFETIME + 5, "expired 5 s ago"),
    ],
)
def test_a_value_is_refused_with_the_reason(
    value: str | None, keys: list[bytes], purpose: str, now: float, message: str
) -> None:
    """Malformed, forged (another key, no key), signed for the other purpose, or expired:
    each is refused with a sentence that says which."""
    if value is None:
        value = sign(KEY, "login", now=NOW, lifetime=LOGIN_LIFETIME)
    with pytest.raises(SignedValueError, match=message):
        verify(value, keys, purpose, now=now, lifetime=LOGIN_LIFETIME)  # type: ignore[arg-type]


def test_a_tampered_expiry_or_nonce_is_forged() -> None:
    """Changing the expiry (to live longer) or the nonce (to be used again) breaks the MAC."""
    expiry, nonce, mac = sign(KEY, "login", now=NOW, lifetime=LOGIN_LIFETIME).split(".")
    for value in (f"{int(expiry) + 10}.{nonce}.{mac}", f"{expiry}.{nonce}x.{mac}"):
        with pytest.raises(SignedValueError, match="not signed"):
            verify(value, [KEY], "login", now=NOW, lifetime=LOGIN_LIFETIME)


def test_a_value_that_lives_too_long_is_refused_whoever_signed_it() -> None:
    """Whoever holds the key cannot make a lasting link: a code valid for longer than its
    lifetime plus the clock skew is refused; within the skew (a remote clock ahead), it
    is accepted."""
    lasting = sign(KEY, "login", now=NOW, lifetime=86_400)
    with pytest.raises(SignedValueError, match="longer than the 60 s allowed"):
        verify(lasting, [KEY], "login", now=NOW, lifetime=LOGIN_LIFETIME, skew=CLOCK_SKEW)
    ahead = sign(KEY, "login", now=NOW + CLOCK_SKEW, lifetime=LOGIN_LIFETIME)
    verify(ahead, [KEY], "login", now=NOW, lifetime=LOGIN_LIFETIME, skew=CLOCK_SKEW)
    with pytest.raises(SignedValueError, match="clock"):
        verify(ahead, [KEY], "login", now=NOW, lifetime=LOGIN_LIFETIME)
    session = sign(KEY, "session", now=NOW, lifetime=SESSION_LIFETIME)
    verify(session, [KEY], "session", now=NOW + SESSION_LIFETIME - 1, lifetime=SESSION_LIFETIME)


def test_key_ids_are_short_stable_and_distinct() -> None:
    """A key's id is the same each time, differs between keys, and is not the key."""
    assert key_id(KEY) == key_id(KEY)
    assert key_id(KEY) != key_id(OTHER)
    assert len(key_id(KEY)) == 12
    assert key_id(KEY).isalnum()
    assert KEY.decode() not in key_id(KEY)
