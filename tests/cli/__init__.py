"""Tests of `asgi_supervisor._cli`, in-process; against a real server in
``tests/servers/test_cli.py``."""
