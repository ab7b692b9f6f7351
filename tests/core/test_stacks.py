"""Where a task waits and who waits for it, the same answers on every Python: the call graph
on 3.14 and later, the await chain walked by hand before; and the frames that count as the
user's."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pkgutil
import subprocess
import sys
import types
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator
from typing import Any

import httpx
import pytest
import starlette

import asgi_supervisor
from asgi_supervisor._core import stacks
from asgi_supervisor._core.stacks import (
    GRAPH_LIMIT,
    awaited_by,
    format_stack,
    is_user_code,
    waiting,
    where,
)

# asyncio knows who awaits a task from 3.14 on; before, `awaited_by` is None (unknown).
KNOWS_AWAITERS = sys.version_info >= (3, 14)

# The layers the package's docstring names; the walk below finds a new one all the same.
SUBPACKAGES = {"_admin", "_asgi", "_cli", "_core", "_group", "_host", "_observe", "_supervisor"}


def package_files() -> Iterator[tuple[str, str]]:
    """Every module of asgi_supervisor, its subpackages' included, with its source file
    (found without running the modules: ``__main__`` would start the command line)."""
    for module in pkgutil.walk_packages(asgi_supervisor.__path__, "asgi_supervisor."):
        spec = importlib.util.find_spec(module.name)
        assert spec is not None, module.name
        assert spec.origin is not None, module.name
        yield module.name, spec.origin


async def parked() -> None:
    await asyncio.sleep(3600)  # the line `where` must name


PARKED_LINE = parked.__code__.co_firstlineno + 1


async def _numbers() -> AsyncIterator[int]:
    yield 1
    await asyncio.sleep(3600)  # the line `where` must name, inside the generator
    yield 2


NUMBERS_LINE = _numbers.__code__.co_firstlineno + 2


async def started(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task of *coro*, run up to its first suspension: its first step runs in the loop
    iteration this sleep(0) yields to, and none of these coroutines suspends before parking."""
    task = asyncio.create_task(coro)
    await asyncio.sleep(0)
    return task


async def finish(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait({task})


def test_every_module_of_every_subpackage_is_library_code() -> None:
    """A frame in any module of the package, in any of its layers' folders, is not the
    user's: `where` and loop-lag detection look past it."""
    files = dict(package_files())
    layers = {name.split(".")[1] for name in files if name.count(".") >= 2}
    assert layers >= SUBPACKAGES
    users = [name for name, path in files.items() if is_user_code(path)]
    assert users == []


def test_a_sibling_folder_named_like_the_package_is_the_users() -> None:
    """``asgi_supervisor_plugins/`` next to the package is someone else's code."""
    package_dir = os.path.dirname(os.path.abspath(asgi_supervisor.__file__))
    assert not is_user_code(os.path.join(package_dir, "_core", "stacks.py"))
    assert is_user_code(package_dir + "_plugins" + os.sep + "jobs.py")


def test_asyncio_and_asgi_plumbing_are_not_the_users_and_other_libraries_are() -> None:
    """asyncio and the frameworks between a task and its code are skipped; a library the
    app calls (httpx here) and the app's own files are where a task may be stuck."""
    assert not is_user_code(asyncio.tasks.__file__)
    assert not is_user_code(starlette.__file__ or "")
    assert is_user_code(httpx.__file__ or "")
    assert is_user_code(__file__)


async def test_where_names_the_innermost_user_frame_and_the_chain() -> None:
    """A task parked in asyncio.sleep through a coroutine of ours: `where` names our line;
    the chain lists each coroutine awaited, outermost first; the stack shows the source."""

    async def outer() -> None:
        await parked()

    task = await started(outer())
    try:
        assert where(task) == f"{__file__}:{PARKED_LINE} in parked"
        found = waiting(task)
        assert found.where == where(task)
        assert found.awaiting == [
            "test_where_names_the_innermost_user_frame_and_the_chain.<locals>.outer",
            "parked",
            "sleep",
        ]
        assert found.awaited_by == ([] if KNOWS_AWAITERS else None)
        stack = format_stack(task)
        assert any("await asyncio.sleep(3600)  # the line `where` must name" in s for s in stack)
    finally:
        await finish(task)


async def test_where_follows_async_for_into_the_generator() -> None:
    """The await-chain walk reaches the user frame inside `async for` over a generator."""

    async def consume() -> None:
        async for _ in _numbers():
            pass

    task = await started(consume())
    try:
        assert where(task) == f"{__file__}:{NUMBERS_LINE} in _numbers"
        # The call graph of 3.14 and 3.15 stops at the generator's __anext__ (cpython#156980).
        assert waiting(task).awaiting == [
            "test_where_follows_async_for_into_the_generator.<locals>.consume",
            "_numbers",
            "sleep",
        ]
    finally:
        await finish(task)


@types.coroutine
def _legacy() -> Generator[Any, None, None]:
    """A generator-based coroutine, as older libraries still write them."""
    yield from parked()  # a coroutine may be iterated in a types.coroutine


async def test_where_follows_a_generator_based_coroutine() -> None:
    """The chain goes on through a ``types.coroutine`` generator to the coroutine it runs
    (the call graph of 3.14 and 3.15 stops there: cpython#157507)."""

    async def outer() -> None:
        await _legacy()

    task = await started(outer())
    try:
        assert where(task) == f"{__file__}:{PARKED_LINE} in parked"
        assert waiting(task).awaiting == [
            "test_where_follows_a_generator_based_coroutine.<locals>.outer",
            "_legacy",
            "parked",
            "sleep",
        ]
    finally:
        await finish(task)


async def test_without_user_code_where_falls_back_to_the_innermost_frame() -> None:
    """A task that runs only asyncio's code is placed there rather than nowhere; a finished
    task is nowhere."""
    task = await started(asyncio.sleep(3600))
    try:
        found = where(task)
        assert found is not None
        assert found.startswith(asyncio.tasks.__file__)
        assert found.endswith(" in sleep")
    finally:
        await finish(task)
    assert where(task) is None
    assert waiting(task).where is None
    assert waiting(task).awaiting == []


async def test_the_tasks_awaiting_a_task_are_named_from_3_14_on() -> None:
    """A task awaited directly, gathered, shielded and waited on names those four tasks as
    its awaiters, and each of them the task it awaits; the line it waits on is the same.
    Before 3.14 who awaits a task is unknown: None, not an empty list."""
    child = await started(parked())

    async def waits_for(awaitable: Callable[[], Any]) -> None:
        await awaitable()

    awaiters = [
        await started(waits_for(lambda: child)),
        await started(waits_for(lambda: asyncio.gather(child))),
        await started(waits_for(lambda: asyncio.shield(child))),
        await started(waits_for(lambda: asyncio.wait([child]))),
    ]
    try:
        found = waiting(child)
        assert found.where == f"{__file__}:{PARKED_LINE} in parked"
        if KNOWS_AWAITERS:
            assert found.awaited_by is not None
            assert set(found.awaited_by) == set(awaiters)
            assert awaited_by(child) == found.awaited_by
            last = format_stack(child)[-1]
            assert last.startswith("  Awaited by: ")
            assert all(repr(task.get_name()) in last for task in awaiters)
        else:
            assert found.awaited_by is None
            assert awaited_by(child) is None
            assert "Awaited by" not in "".join(format_stack(child))
    finally:
        for task in awaiters:
            await finish(task)
        await finish(child)


async def test_a_task_group_s_tasks_are_awaited_by_the_task_running_the_group() -> None:
    """A TaskGroup's task is awaited by the task in the ``async with`` (3.14 and later)."""

    async def runs_a_group() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(parked(), name="in the group")

    task = await started(runs_a_group())
    await asyncio.sleep(0)  # the group's task takes its first step
    try:
        (child,) = (t for t in asyncio.all_tasks() if t.get_name() == "in the group")
        assert where(child) == f"{__file__}:{PARKED_LINE} in parked"
        assert waiting(child).awaited_by == ([task] if KNOWS_AWAITERS else None)
    finally:
        await finish(task)


def spy_on_the_call_graph(monkeypatch: pytest.MonkeyPatch) -> list[asyncio.Future[Any]]:
    """The futures `asyncio.capture_call_graph` is asked about from now on."""
    asked: list[asyncio.Future[Any]] = []
    capture = asyncio.capture_call_graph  # type: ignore[attr-defined, unused-ignore]

    def spy(future: asyncio.Future[Any], /, **kwargs: Any) -> Any:
        asked.append(future)
        return capture(future, **kwargs)

    monkeypatch.setattr(asyncio, "capture_call_graph", spy)
    return asked


def test_the_call_graph_answers_exactly_from_3_14_on() -> None:
    """3.14 and later use asyncio's call graph (the attribute that bounds it is there);
    3.11 to 3.13 the walk by hand."""
    assert stacks.CALL_GRAPH is KNOWS_AWAITERS


@pytest.mark.skipif(not KNOWS_AWAITERS, reason="asyncio.capture_call_graph is new in 3.14")
async def test_on_3_14_every_answer_comes_from_the_call_graph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`where`, `waiting`, `awaited_by` and `format_stack` each ask the call graph."""
    task = await started(parked())
    asked = spy_on_the_call_graph(monkeypatch)
    try:
        assert where(task) == f"{__file__}:{PARKED_LINE} in parked"
        waiting(task)
        awaited_by(task)
        format_stack(task)
        assert asked == [task] * 4
    finally:
        await finish(task)


async def test_tasks_awaiting_each_other_are_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two tasks that await each other (a deadlock, what /tasks is opened to find) each name
    where they wait and the other as their awaiter; asyncio's call graph would recurse
    without end (RecursionError), so it is not asked."""
    box: dict[str, asyncio.Task[None]] = {}

    async def first() -> None:
        await asyncio.sleep(0)  # until `box` holds both
        await box["second"]  # the line `where` must name

    async def second() -> None:
        await asyncio.sleep(0)
        # Shielded, so that the test can end the deadlock: a cancel of one task of a plain
        # cycle cancels the other, which cancels the first again, until RecursionError.
        await asyncio.shield(box["first"])

    box["first"] = asyncio.create_task(first())
    box["second"] = asyncio.create_task(second())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    asked = spy_on_the_call_graph(monkeypatch) if KNOWS_AWAITERS else []
    try:
        found = waiting(box["first"])
        line = first.__code__.co_firstlineno + 2
        assert found.where == f"{__file__}:{line} in first"
        assert found.awaited_by == ([box["second"]] if KNOWS_AWAITERS else None)
        assert waiting(box["second"]).awaited_by == ([box["first"]] if KNOWS_AWAITERS else None)
        assert any('await box["second"]' in line for line in format_stack(box["first"]))
        assert asked == []
    finally:
        await finish(box["second"])
        await asyncio.wait([box["first"]])


async def test_layered_gathers_are_answered_without_the_exponential_graph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twelve layers of two tasks, each gathering the two below: asyncio's graph of a bottom
    task has one node per path up (8190 here; each layer doubles it), so past `GRAPH_LIMIT`
    nodes it is not asked, and the task still names where it waits and its two awaiters."""
    assert GRAPH_LIMIT < 2**12  # the graph this test makes is past the limit
    bottom = await started(parked())
    layer = [bottom]
    tasks = [bottom]

    async def gathers(below: list[asyncio.Task[Any]]) -> None:
        await asyncio.gather(*below)

    for _ in range(12):
        layer = [await started(gathers(layer)) for _ in range(2)]
        tasks.extend(layer)
    asked = spy_on_the_call_graph(monkeypatch) if KNOWS_AWAITERS else []
    try:
        found = waiting(bottom)
        assert found.where == f"{__file__}:{PARKED_LINE} in parked"
        assert found.awaited_by is None or set(found.awaited_by) == set(tasks[1:3])
        assert found.awaited_by is not None or not KNOWS_AWAITERS
        assert asked == []
        # A task near the top has a small graph, which asyncio answers.
        waiting(tasks[-1])
        assert asked == ([tasks[-1]] if KNOWS_AWAITERS else [])
    finally:
        for task in reversed(tasks):
            await finish(task)


def test_importing_the_module_warns_nothing() -> None:
    """The awaitables made at import to learn their types are closed: 3.14 warns of an
    unawaited ``asend`` or ``athrow`` when it collects one."""
    code = "import gc, asgi_supervisor._core.stacks; gc.collect()"
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
