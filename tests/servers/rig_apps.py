"""The control app for the rig: plain Starlette under uvicorn, with no supervisor.

Its readiness is always 200, as in most services today: the harness must count the
requests it loses on every restart, or the harness could not fail.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def ready(request: Request) -> Response:
    return PlainTextResponse("ready")


# Readiness always 200, at the path HAProxy checks (the supervisor's default one).
plain = Starlette(routes=[Route("/", hello), Route("/_supervisor/health/ready", ready)])
