"""Tests of `asgi_supervisor._host`."""
