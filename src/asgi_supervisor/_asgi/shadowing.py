"""Refuse to start where the endpoints would shadow a route of the app.

The middleware answers its endpoints (``{path_prefix}/health``, ``/tasks``, ``/drain``,
``/metrics`` ...) before the app sees the request, so an app route at one of those paths
would never be reached: its ``/metrics`` would silently become ours. At the default prefix,
``/_supervisor``, no app is expected to have one; a prefix chosen by hand (``""`` puts the
endpoints at the root) may collide. Where the app's routes can be read, the lifespan startup
fails instead, naming each route and the fix, as the app's own failed startup would.

What can be read, without importing any framework: the app, or the app its middlewares wrap
(each keeps the next as ``.app``, as Starlette's do), down to the first object with
``routes``: the route table of Starlette and FastAPI. Each route is asked the question its
router asks it, ``route.matches(scope)``, for an HTTP request to the endpoint's path, so
every kind of route answers for itself (FastAPI's included routers too). A mount that
matches (its child scope moves ``root_path``) is read in turn; one whose app has no route
table answers every path under it, its own path without the slash included (Starlette
redirects that to it: prometheus_client's ``app.mount("/metrics", make_asgi_app())``). A
host route's routes are read as if the request were for its host. Websocket routes never
match an HTTP request: the endpoints answer HTTP only.

What is not counted: a route that answers the endpoint's path only as it answers any other
(``/{path:path}``, a single-page app's fallback, a mount at ``/``, ``/{page}``). Each route
that answers the path is asked again about the same path with its first segment replaced by
one no app has (`_DECOY`); one that answers that too is a fallback, and still answers every
other path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from asgi_supervisor._core.errors import StartupError

if TYPE_CHECKING:
    from .types import Receive, Scope, Send

__all__ = ["Shadowed", "explain", "refuse_startup", "shadowed_routes"]

# Middlewares wrap each other, and mounts nest; deeper than this is not an app.
_MAX_DEPTH = 32
_DECOY = "/asgi-supervisor-no-route-of-any-app"


@dataclasses.dataclass(frozen=True, slots=True)
class Shadowed:
    """An app route that an endpoint of the supervisor would answer in its place.

    Attributes:
        endpoint: the endpoint's path.
        template: the route's path as the app declares it, mounts included (the endpoint's
            path when the route does not say).
        name: the route's name, if it has one.
    """

    endpoint: str
    template: str
    name: str | None


def shadowed_routes(app: object, endpoints: Iterable[str]) -> list[Shadowed]:
    """The routes of *app* that *endpoints* would shadow, in the order of *endpoints*.

    Empty when nothing collides, or when the app's routes cannot be read.
    """
    routes = _routes_of(app)
    if routes is None:
        return []
    found = []
    for endpoint in endpoints:
        fallbacks = {id(route) for _, route in _answering(routes, _decoy(endpoint))}
        for template, route in _answering(routes, endpoint):
            if id(route) not in fallbacks:
                found.append(Shadowed(endpoint, template or endpoint, _name(route)))
    return found


def explain(prefix: str, shadowed: list[Shadowed]) -> str:
    """The sentence users see: which routes, and what to do."""
    routes = "; ".join(
        f"{s.endpoint} would answer for the app's route {s.template!r}"
        + (f" ({s.name})" if s.name else "")
        for s in shadowed
    )
    return (
        f"asgi-supervisor's endpoints under path_prefix={prefix!r} would shadow routes of the "
        f"app, which would never be reached: {routes}. Set path_prefix to a prefix no route "
        "of the app uses, such as the default '/_supervisor', or move the app's routes."
    )


async def refuse_startup(receive: Receive, send: Send, message: str) -> None:
    """Answer the server's ``lifespan.startup`` with ``startup.failed``, then raise.

    The server reports the message and exits, as it does when the app's own startup fails;
    raising too is what Starlette's router does, so test clients raise rather than hang.

    Raises:
        StartupError: always, with *message*.
    """
    if (await receive())["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.failed", "message": message})
    raise StartupError(message)


def _routes_of(app: object) -> list[Any] | None:
    """The route table of *app* or of the app its middlewares wrap, if one can be read."""
    seen: set[int] = set()
    current: object = app
    for _ in range(_MAX_DEPTH):
        if current is None or id(current) in seen:
            return None
        seen.add(id(current))
        routes = getattr(current, "routes", None)
        if isinstance(routes, list | tuple):
            return list(routes)
        current = getattr(current, "app", None)
    return None


def _answering(routes: list[Any], path: str) -> Iterator[tuple[str, object]]:
    """(template, route) of each innermost route that would answer a request for *path*."""
    yield from _walk(routes, _scope(path), "", slash=False, depth=0)
    # A mount's own path without its slash is redirected to it: the mount's too.
    yield from _walk(routes, _scope(path + "/"), "", slash=True, depth=0)


def _walk(
    routes: list[Any], scope: Scope, above: str, *, slash: bool, depth: int
) -> Iterator[tuple[str, object]]:
    if depth > _MAX_DEPTH:
        return
    for route in routes:
        template = above + str(getattr(route, "path", "") or "")
        if getattr(route, "host_regex", None) is not None:
            inner = _routes_of(route)  # a host route: its routes, for its host
            if inner is not None:
                yield from _walk(inner, scope, above, slash=slash, depth=depth + 1)
            continue
        child = _matched(route, scope)
        if child is None:
            continue
        if "root_path" not in child:  # a route, not a mount
            if not slash:
                yield template, route
            continue
        inner = _routes_of(getattr(route, "app", None))
        if inner is None:
            yield template, route  # what it mounts answers every path under it
        else:
            deeper = {**scope, **child}
            yield from _walk(inner, deeper, template, slash=slash, depth=depth + 1)


def _matched(route: object, scope: Scope) -> dict[str, Any] | None:
    """The child scope when *route* matches *scope* (fully, or but for the method)."""
    matches = getattr(route, "matches", None)
    if not callable(matches):
        return None
    try:
        match, child = matches(dict(scope))
    except Exception:  # a route that cannot tell would fail the same request when served
        return None
    if not getattr(match, "value", 0) or not isinstance(child, dict):
        return None
    return child


def _scope(path: str) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": None,
        "server": None,
    }


def _decoy(endpoint: str) -> str:
    """*endpoint* with its first segment replaced by one no app routes."""
    rest = endpoint.lstrip("/").partition("/")[2]
    return _DECOY + ("/" + rest if rest else "")


def _name(route: object) -> str | None:
    name = getattr(route, "name", None)
    return name if isinstance(name, str) and name else None
