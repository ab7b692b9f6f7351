"""The app real servers run in these tests (``tests.servers.served:app``).

Settings come from ``ASGI_SUPERVISOR_*`` variables and faults from ``TEST_FAULTS``; see
`tests.apps.build`. ``TEST_LOGGING=none`` leaves logging unconfigured, as a plain
``uvicorn main:app`` does.
"""

from __future__ import annotations

import logging
import os

from starlette.types import Message, Receive, Scope, Send

from asgi_supervisor import Supervisor
from tests.apps import build

# A logging configuration of the app's own, as most services have (the library's records then
# go to it, with their logger's name, and nothing goes through the server's logger).
if os.environ.get("TEST_LOGGING", "basic") == "basic":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s: %(message)s")

faults = {fault for fault in os.environ.get("TEST_FAULTS", "").split(",") if fault}
# "critical_shutdown": a critical worker that gives up drains the process.
supervisor = (
    Supervisor.from_env(on_critical_failure="shutdown")
    if "critical_shutdown" in faults
    else Supervisor.from_env()
)
app = build(supervisor, faults)


async def app_with_pid(scope: Scope, receive: Receive, send: Send) -> None:
    """The same app, naming the worker process that answered in an ``x-pid`` header, so the
    multi-worker tests can tell which of the server's processes a probe reached."""
    if scope["type"] != "http":
        await app(scope, receive, send)
        return
    pid = str(os.getpid()).encode()

    async def send_with_pid(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (b"x-pid", pid)]}
        await send(message)

    await app(scope, receive, send_with_pid)
