"""The demo service: ``uvicorn app.main:app`` (or ``make run``).

Settings: the supervisor's from ``ASGI_SUPERVISOR_*`` variables, the demo's from ``APP_*``
(see `app.settings`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.middleware import Middleware

from asgi_supervisor import Supervisor, SupervisorMiddleware

from .jobs import open_queue
from .limits import BodyLimitMiddleware
from .routes import build_router
from .settings import Settings
from .validation import validation_error
from .workers import Broadcast, JobWorkers

__all__ = ["app", "create_app"]


def create_app(settings: Settings | None = None, supervisor: Supervisor | None = None) -> FastAPI:
    """Build the demo app; tests pass their own settings and supervisor."""
    settings = settings or Settings.from_env()
    supervisor = supervisor or Supervisor.from_env()
    broadcast = Broadcast()
    workers = JobWorkers(supervisor, settings, broadcast)

    async def queue_ready() -> bool:
        return workers.queue is not None

    supervisor.add_check("queue", queue_ready, timeout=1.0)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Workers start after this and are stopped before the code after `yield` runs.
        queue = await open_queue(settings.database_url, max_connections=settings.workers + 8)
        workers.queue = queue
        try:
            yield
        finally:
            workers.queue = None
            await queue.close()

    app = FastAPI(
        title="asgi-supervisor demo",
        lifespan=lifespan,
        middleware=[
            Middleware(SupervisorMiddleware, supervisor=supervisor),
            Middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes),
        ],
        exception_handlers={RequestValidationError: validation_error},
    )
    app.include_router(build_router(supervisor, workers, broadcast))
    app.state.supervisor = supervisor
    app.state.workers = workers
    return app


logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s: %(message)s")
app = create_app()
