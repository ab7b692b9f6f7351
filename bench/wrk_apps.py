"""The two apps the throughput check serves: the same hello, with and without the middleware."""

from __future__ import annotations

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
