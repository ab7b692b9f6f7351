"""A path_prefix that would shadow an app route fails the startup on a real server, as the
app's own failed startup would: the server prints the sentence and exits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.servers._process import ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from asgi_supervisor import Supervisor, SupervisorMiddleware


async def metrics(request):
    return PlainTextResponse("the app's own")


app = SupervisorMiddleware(
    Starlette(routes=[Route("/metrics", metrics)]), supervisor=Supervisor.from_env()
)
"""


@pytest.mark.parametrize(
    ("server_name", "status", "said"),
    [
        ("uvicorn", 3, "Application startup failed. Exiting."),
        ("hypercorn", 1, "LifespanFailureError: Lifespan failure in startup."),
    ],
)
def test_the_server_reports_the_shadowed_route_and_exits(
    tmp_path: Path, server_name: str, status: int, said: str
) -> None:
    """1. the app has its own /metrics, and ASGI_SUPERVISOR_PATH_PREFIX=/ puts ours at the
    root; 2. the lifespan startup fails with the sentence naming the route; 3. the server
    exits with the status it gives any failed startup, having served nothing."""
    (tmp_path / "shadowed.py").write_text(APP)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["ASGI_SUPERVISOR_PATH_PREFIX"] = "/"
    server = ServerProcess("shadowed:app", tmp_path=tmp_path, server=server_name, env=env)
    try:
        server.start(wait_live=False)
        assert server.wait_exit(timeout=30) == status, server.output()
    finally:
        server.stop()
    output = server.output()
    assert (
        "asgi-supervisor's endpoints under path_prefix='' would shadow routes of the app, which "
        "would never be reached: /metrics would answer for the app's route '/metrics' (metrics)."
        in output
    ), output
    assert said in output
