"""Tests of `asgi_supervisor._supervisor`."""
