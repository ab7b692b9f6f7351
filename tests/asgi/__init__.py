"""Tests of `asgi_supervisor._asgi`."""
