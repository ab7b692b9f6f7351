"""The ``asgi-supervisor`` command: drain, tasks and health against a running server.

Standard library only (the import-linter contracts keep it so), so it runs in slim images.
"""

from .commands import main

__all__ = ["main"]
