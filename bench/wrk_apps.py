"""The two apps the throughput check serves: the same hello, with and without the middleware."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_supervisor import Supervisor, SupervisorMiddleware


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


plain = Starlette(routes=[Route("/", hello)])
supervised = SupervisorMiddleware(
    Starlette(routes=[Route("/", hello)]), supervisor=Supervisor(shutdown_delay=0)
)


class NoOp:
    """The cheapest pure-ASGI middleware, for the floor any middleware pays."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


noop = NoOp(Starlette(routes=[Route("/", hello)]))
