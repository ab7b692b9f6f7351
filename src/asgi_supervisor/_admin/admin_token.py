"""The admin token remote callers send: what it may be, wherever it comes from.

The server takes it from ``Config(admin_token=...)`` or ``$ASGI_SUPERVISOR_ADMIN_TOKEN``;
the command line from ``--token`` or the same variable, which a preStop ``exec`` inherits
from the server's container. Both read it here, so a token the server would refuse at
startup the command refuses too, with the same sentence, which names where the token came
from; and the variable means the same to both: ``none`` (any case) turns it off, and the
command then uses the local token file as if it were unset.

A token goes in an ``Authorization: Bearer`` header: it must be visible ASCII (no space, no
control character, no letter outside ASCII), and whitespace around it is not part of it (a
secret mounted from a file ends in a newline).
"""

from __future__ import annotations

__all__ = ["VARIABLE", "admin_token", "admin_token_from_variable"]

VARIABLE = "ASGI_SUPERVISOR_ADMIN_TOKEN"


def admin_token(value: object, *, source: str) -> str:
    """*value* as a bearer token, without the whitespace around it.

    Args:
        value: the token as given.
        source: where it came from, as the user wrote it (``admin_token``, ``--token``,
            ``ASGI_SUPERVISOR_ADMIN_TOKEN``): each error begins with it.

    Raises:
        TypeError: *value* is not a str.
        ValueError: it is empty, or holds a character a header cannot carry; the message
            names the source and the character (never the token) and says what to use.
    """
    if not isinstance(value, str):
        raise TypeError(f"{source} must be a str or None, not {type(value).__name__}.")
    token = value.strip()
    if not token:
        raise ValueError(
            f"{source} is empty (or only whitespace); set it to the admin token the server "
            "and its callers share (make one with `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`), or leave it out to rely on the local token "
            "file alone."
        )
    bad = next((c for c in token if not "!" <= c <= "~"), None)
    if bad is not None:
        raise ValueError(
            f"{source} contains {bad!r}, which cannot be sent in an HTTP Authorization "
            "header as a bearer token; use visible ASCII characters only (letters, digits "
            "and punctuation, no spaces), such as the output of secrets.token_urlsafe()."
        )
    return token


def admin_token_from_variable(raw: str | None) -> str | None:
    """The token that ``$ASGI_SUPERVISOR_ADMIN_TOKEN`` holds as *raw*, or None.

    None when the variable is unset (*raw* is None) or set to ``none``; an empty value is
    an error, not "unset": most likely a secret that came out empty.

    Raises:
        ValueError: as `admin_token`, naming the variable.
    """
    if raw is None or raw.strip().lower() == "none":
        return None
    return admin_token(raw, source=VARIABLE)
