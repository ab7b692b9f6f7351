"""Where a task waits: the await chain walked by hand, and the frames that count as the user's."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pkgutil
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import httpx
import starlette

import asgi_supervisor
from asgi_supervisor._core.stacks import format_stack, is_user_code, where, where_and_chain

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
        found, chain = where_and_chain(task)
        assert found == where(task)
        assert chain == [
            "test_where_names_the_innermost_user_frame_and_the_chain.<locals>.outer",
            "parked",
            "sleep",
        ]
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
        found = where(task)
        assert found is not None
        assert "in _numbers" in found
        assert "test_stacks.py" in found
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
    assert where_and_chain(task) == (None, [])
