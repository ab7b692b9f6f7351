"""The server's own wait for its connections, bounded by the supervisor: uvicorn's and
hypercorn's settings, on their real configuration objects, reached the way the supervisor
reaches them."""

from __future__ import annotations

import asyncio

import hypercorn.config
import uvicorn
from hypercorn.asyncio.lifespan import Lifespan as HypercornLifespan
from uvicorn.lifespan.on import LifespanOn

from asgi_supervisor._host.server_wait import bound_server_wait


async def app(scope: object, receive: object, send: object) -> None:
    """An app for the servers' constructors; never called."""


def test_uvicorn_through_its_server_or_its_lifespan() -> None:
    """The ``Server`` whose ``handle_exit`` is the chained handler, and the ``LifespanOn``
    whose ``receive`` the app gets, hold the one `Config` whose timeout uvicorn reads when
    its shutdown begins to wait."""
    config = uvicorn.Config(app)
    server = uvicorn.Server(config)
    assert bound_server_wait([server], 4.5) == "uvicorn's timeout_graceful_shutdown"
    assert config.timeout_graceful_shutdown == 4.5
    assert server.handle_exit.__self__ is server  # type: ignore[attr-defined]
    assert bound_server_wait([None, LifespanOn(config)], 1.25) is not None
    assert config.timeout_graceful_shutdown == 1.25


def test_at_startup_only_a_wait_with_no_bound_is_changed() -> None:
    """uvicorn's default waits forever: it gets the grace period. A bound the user set is
    kept until the signal is passed on."""
    unbounded = uvicorn.Config(app)
    assert bound_server_wait([LifespanOn(unbounded)], 25.0, unbounded_only=True) is not None
    assert unbounded.timeout_graceful_shutdown == 25.0
    bounded = uvicorn.Config(app, timeout_graceful_shutdown=10)
    assert bound_server_wait([LifespanOn(bounded)], 25.0, unbounded_only=True) is None
    assert bounded.timeout_graceful_shutdown == 10


async def test_hypercorn_through_its_lifespan() -> None:
    """hypercorn's ``Lifespan``, whose ``asgi_receive`` the app gets, holds its `Config`;
    ``graceful_timeout`` (3 s by default) becomes what remains."""
    config = hypercorn.config.Config()
    lifespan = HypercornLifespan(app, config, asyncio.get_running_loop(), {})  # type: ignore[arg-type]
    assert lifespan.asgi_receive.__self__ is lifespan  # type: ignore[attr-defined]
    assert bound_server_wait([lifespan], 7.0) == "hypercorn's graceful_timeout"
    assert config.graceful_timeout == 7.0


def test_anything_else_is_left_alone() -> None:
    """No part, or parts of no server we know (granian's lifespan receive, a test client):
    nothing changes, and a negative remainder is never set."""

    class Other:
        def __init__(self) -> None:
            self.config = {"timeout_graceful_shutdown": None}

    assert bound_server_wait([], 3.0) is None
    assert bound_server_wait([Other(), object(), None], 3.0) is None
    config = uvicorn.Config(app)
    bound_server_wait([uvicorn.Server(config)], -2.0)
    assert config.timeout_graceful_shutdown == 0.0
