"""Tests of `asgi_supervisor._admin`."""
