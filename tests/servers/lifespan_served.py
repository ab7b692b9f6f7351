"""An app of `tests.apps.LIFESPAN_FAULTS`, by the name in ``TEST_LIFESPAN_FAULT``, served
as it is or, with ``TEST_WRAPPED=1``, in the middleware (``tests.servers.lifespan_served:app``).
"""

from __future__ import annotations

import os

from asgi_supervisor import Supervisor, SupervisorMiddleware
from tests.apps import LIFESPAN_FAULTS

_app = LIFESPAN_FAULTS[os.environ["TEST_LIFESPAN_FAULT"]]()
app = (
    SupervisorMiddleware(_app, supervisor=Supervisor.from_env())
    if os.environ.get("TEST_WRAPPED") == "1"
    else _app
)
