"""Sending a whole answer of an endpoint the middleware serves itself (health, tasks, drain,
metrics): one body, its length, never cached, and no body for ``HEAD``.

Every such answer is about the state of this moment, so ``no-store`` keeps a proxy or a
browser from showing an old one. Sending awaits the server's ``send``; cancelling it leaves the
answer cut short, as for any ASGI app.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .types import Send

__all__ = ["send_body", "send_json"]


async def send_body(
    send: Send,
    method: str,
    status: int,
    content_type: bytes,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send *body* with *status*, *content_type* and the extra *headers*; for a ``HEAD``
    request (*method*) the headers only, with the length the body would have."""
    head = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def send_json(
    send: Send,
    method: str,
    status: int,
    body: dict[str, Any],
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """`send_body` with *body* as compact JSON; a value JSON cannot hold is sent as its
    ``str()``."""
    payload = json.dumps(body, separators=(",", ":"), default=str).encode()
    await send_body(send, method, status, b"application/json", payload, headers)
