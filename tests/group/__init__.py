"""Tests of `asgi_supervisor._group`."""
