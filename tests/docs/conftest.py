"""The documentation's tests need its tools (MkDocs, mkdocstrings' griffe, pytest-examples).

A virtual environment with the test tools alone cannot run them: there they are left out,
and the run's header says so, rather than failing to import.
"""

from __future__ import annotations

import importlib.util

import pytest

_TOOLS = ("mkdocs", "griffe", "pytest_examples")
_MISSING = [name for name in _TOOLS if importlib.util.find_spec(name) is None]
if _MISSING:
    collect_ignore_glob = ["test_*.py"]


def pytest_report_header(config: pytest.Config) -> str | None:
    """A line saying the documentation's tests are left out, and why, when they are."""
    if not _MISSING:
        return None
    return f"tests/docs left out: {', '.join(_MISSING)} not installed (install the docs tools)"
