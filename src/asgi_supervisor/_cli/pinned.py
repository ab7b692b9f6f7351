"""A connection that goes only to the listening socket the local token was found for.

``localhost`` may resolve to ``::1`` and ``127.0.0.1``, and another user may listen on the
one the server does not (the kernel lets anyone bind ``[::1]:8000`` next to a server on
``127.0.0.1:8000``). So the command never lets the resolver choose where a local token goes:
`_admin.local_token.find_token` picks the one address whose listening socket is the
server's, and `Pinned` connects there alone, then checks, in ``/proc/net/tcp{,6}``, that the
socket which accepted the connection belongs to the server's user before a byte is sent
(`_host.tcp_table.connection_owner`): nothing can take the socket's place between the look
and the connection. The request keeps its URL's ``Host``.

Example::

    pin = Pin("localhost", 8000, address="127.0.0.1", owners=frozenset({1000}))
    opener = urllib.request.build_opener(*pin.handlers())
    opener.open(request, timeout=10)  # raises NotTheServerError rather than send the request
"""

from __future__ import annotations

import functools
import http.client
import socket
import ssl
import urllib.request
from dataclasses import dataclass
from typing import Any

from asgi_supervisor._host.tcp_table import connection_owner, endpoint_text

__all__ = ["NotTheServerError", "Pin"]


class NotTheServerError(Exception):
    """The connection would not reach the server the local token is for; nothing was sent.

    Not an ``OSError``, so urllib passes it on as it is rather than as "unreachable".
    """


@dataclass(frozen=True, slots=True)
class Pin:
    """Where a request with the local token may go: *host* and *port* as the URL names them,
    reached at *address* only, answered by a socket one of *owners* (uids) owns."""

    host: str
    port: int
    address: str
    owners: frozenset[int]

    def handlers(self) -> tuple[urllib.request.BaseHandler, ...]:
        """urllib handlers that connect as pinned, with no proxy (a proxy is another host)."""
        return (urllib.request.ProxyHandler({}), _Handler(self))

    def connect(self, host: str, port: int | None, timeout: float | None) -> socket.socket:
        """A connected socket to the pinned address, once its owner is checked.

        Raises:
            NotTheServerError: asked for another host (a redirect, a proxy), or the
                socket that accepted is not the server's user's.
            OSError: the connection failed.
        """
        if (host.lower(), port) != (self.host.lower(), self.port):
            raise NotTheServerError(
                f"refusing to connect to {host}:{port}: the local token is for "
                f"{self.host}:{self.port} only"
            )
        sock = socket.create_connection((self.address, self.port), timeout)
        try:
            client = sock.getsockname()[:2]
            owner = connection_owner((self.address, self.port), client)
            if owner not in self.owners:
                who = "nobody listed" if owner is None else f"uid {owner}"
                raise NotTheServerError(
                    f"the socket that accepted the connection to "
                    f"{endpoint_text((self.address, self.port))} belongs to {who}, not to the "
                    "server the local token is for; nothing was sent"
                )
        except BaseException:
            sock.close()
            raise
        return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, pin: Pin, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._pin = pin

    def connect(self) -> None:
        self.sock = self._pin.connect(self.host, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, pin: Pin, context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(host, context=context, **kwargs)
        self._pin = pin
        self._pin_context = context

    def connect(self) -> None:
        sock = self._pin.connect(self.host, self.port, self.timeout)
        # The certificate is checked against the URL's host name, as without the pin.
        self.sock = self._pin_context.wrap_socket(sock, server_hostname=self.host)


class _Handler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """Opens http and https URLs through pinned connections; replaces urllib's own two."""

    def __init__(self, pin: Pin) -> None:
        super().__init__()
        self._pin = pin
        self._context = ssl.create_default_context()

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_PinnedHTTPConnection, pin=self._pin)
        return self.do_open(connection, req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_PinnedHTTPSConnection, pin=self._pin, context=self._context)
        return self.do_open(connection, req)
