"""Tests of `asgi_supervisor._core`."""
