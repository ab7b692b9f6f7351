"""The demo service: a FastAPI app built on asgi-supervisor (run it with ``make run``)."""
