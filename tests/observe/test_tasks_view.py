"""The `/tasks` query: defaults, flags, bounds; what the endpoint makes of it is pinned in
``tests/asgi/test_endpoints.py``."""

from __future__ import annotations

import re

import pytest

from asgi_supervisor._observe.tasks_view import MAX_LIMIT, TasksQuery


def test_an_empty_query_asks_for_the_first_hundred_tracked_tasks() -> None:
    """No parameters: every tracked kind and state, 100 rows from the first, no stacks."""
    assert TasksQuery.parse(b"") == TasksQuery(limit=100, offset=0, stack=False, all=False)


def test_filters_paging_and_flags_are_read() -> None:
    """Each parameter lands in its field; a flag reads 1/true/yes or 0/false/no in any case,
    and a bare flag name means off."""
    query = TasksQuery.parse(b"kind=worker&state=running&name=job-1&limit=5&offset=10&stack=YES")
    assert query == TasksQuery(
        kind="worker", state="running", name="job-1", limit=5, offset=10, stack=True
    )
    assert TasksQuery.parse(b"all=true&stack=0").all is True
    assert TasksQuery.parse(b"stack=").stack is False
    assert TasksQuery.parse(b"kind=untracked").kind == "untracked"
    assert TasksQuery.parse(f"limit={MAX_LIMIT}".encode()).limit == MAX_LIMIT


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (b"limit=10001", "limit=10001 must be between 1 and 10000"),
        (b"offset=1234567890", "offset='1234567890' must be a whole number of at most 9 digits"),
        (b"offset=\xb2", "offset='\xb2' must be a whole number"),
        (b"&".join([b"name=x"] * 21), "the query string has too many parameters"),
    ],
)
def test_values_past_the_bounds_are_refused_with_the_reason(query: bytes, message: str) -> None:
    """A limit above the cap, an offset of ten digits or of a non-ASCII digit, and more than
    20 parameters are each a ValueError saying which."""
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        TasksQuery.parse(query)
