"""Where the command finds the endpoints: the server's URL, and the prefix they live under.

The server answers under its ``path_prefix``, ``/_supervisor`` by default. The command's URL
is the server's, and the prefix comes from, in order:

1. the URL's own path, when it has one (``http://127.0.0.1:8000/_ops``): it is the prefix;
2. ``--prefix`` (``--prefix /_ops``; ``''`` or ``/`` for the root);
3. ``$ASGI_SUPERVISOR_PATH_PREFIX``, which the server reads too, so that a preStop ``exec``
   or a ``HEALTHCHECK`` inherits the container's setting as the server does;
4. ``/_supervisor``, the server's default.

A URL with a path and ``--prefix`` together are refused: one of them would be ignored.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

__all__ = ["DEFAULT_PREFIX", "VARIABLE", "endpoint_url"]

# The server's default (`Config.path_prefix`), which this layer may not import; a test holds
# the two equal.
DEFAULT_PREFIX = "/_supervisor"
VARIABLE = "ASGI_SUPERVISOR_PATH_PREFIX"


def endpoint_url(url: str, endpoint: str, prefix: str | None, environ: Mapping[str, str]) -> str:
    """The full URL of *endpoint* (``/health/ready``) on the server at *url*.

    Raises:
        ValueError: the URL has a path and *prefix* is given, or the prefix chosen does not
            start with ``/``; the message says what to pass.
    """
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    if path and prefix is not None:
        raise ValueError(
            f"the URL {url!r} has a path, {path!r}, which is taken as the prefix, and --prefix "
            f"is {prefix!r} too; give the server's base URL with --prefix, or the prefix in "
            "the URL alone"
        )
    if not path:
        path = _chosen(prefix, environ)
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return base + path + endpoint


def _chosen(prefix: str | None, environ: Mapping[str, str]) -> str:
    if prefix is not None:
        source, value = "--prefix", prefix
    elif (variable := environ.get(VARIABLE)) is not None:
        source, value = VARIABLE, variable
    else:
        return DEFAULT_PREFIX
    value = value.strip()
    if source == VARIABLE and not value:
        raise ValueError(
            f"{VARIABLE} is empty, which the server refuses too; unset it for the default "
            f"{DEFAULT_PREFIX!r}, or set it to '/' for endpoints at the root"
        )
    if value in ("", "/"):
        return ""
    if not value.startswith("/"):
        raise ValueError(f"{source} {value!r} must start with '/', like {DEFAULT_PREFIX!r}")
    return value.rstrip("/")
