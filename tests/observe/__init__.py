"""Tests of `asgi_supervisor._observe`."""
