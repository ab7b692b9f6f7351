"""Where a task is waiting: the innermost frame of the application's own code, the chain of
coroutines that got there, and, on Python 3.14 and later, the tasks that wait for it.

``task.get_stack()`` stops at the task's own coroutine. To see what it awaits:

* on 3.14 and later, `asyncio.capture_call_graph`, asyncio's own answer to "where does this
  task wait, and who waits for it": the chain of coroutines, and the futures that await the
  task (``awaited_by``: whoever awaits it, gathers it, shields it or runs it in a TaskGroup);
* on 3.11 to 3.13, and to finish what the graph leaves out, a walk by hand down
  ``cr_await`` (and ``ag_await``, ``gi_yieldfrom``) from the task's coroutine.

Two limits of the graph are handled here, both reported upstream and present in 3.14.10 and
3.15.2. Its walk stops at the ``__anext__()`` object of an ``async for`` and at a
generator-based coroutine (python/cpython#156980, #157507): the hand walk carries on from
where it stopped, so both Pythons name the same frames. And it builds one node per *path*
up the awaited-by edges: tasks that await each other (a deadlock) make it raise
RecursionError, and layered gathers cost exponential time (#156860; 28 tasks: 250 ms for
one task's graph). So the tree it would build is first counted, up to `GRAPH_LIMIT` nodes,
from ``Future._asyncio_awaited_by``, the edges the graph itself reads: private, and the one
bounded way to see them (see docs/design.md, section 6). Past the limit the hand walk
answers, with the direct awaiters read from that attribute.

Then the frames of asyncio, of this library and of the ASGI plumbing are skipped: they are
never the answer a user wants when asking "where is my task stuck?".

Everything here may run in another thread while the loop runs (the watchdog); a frame that
changes under it may raise, and callers there catch it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import os
import sys
import sysconfig
import traceback
import types
from collections.abc import Iterable
from typing import Any

__all__ = [
    "CALL_GRAPH",
    "GRAPH_LIMIT",
    "Waiting",
    "awaited_by",
    "describe_frame",
    "format_stack",
    "is_user_code",
    "tasks_running",
    "waiting",
    "where",
]

# asyncio keeps awaited-by edges from 3.14 on; without the attribute the graph could not be
# bounded (see the module's docstring), so it is used only where the attribute is there.
CALL_GRAPH = sys.version_info >= (3, 14) and hasattr(asyncio.Future, "_asyncio_awaited_by")
# The most nodes the call graph of one task may have before the hand walk answers instead:
# far more than any real await graph has (a task awaited by a few, each by a few more).
GRAPH_LIMIT = 64

# The package's own folder (this module sits one level below it).
_LIBRARY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# What relative code file names are relative to, read once at import: `os.path.abspath`
# would ask the kernel for the working directory at each call, on the event loop.
_CWD = os.getcwd()
_STDLIB_DIR = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
# Frameworks whose frames sit between a task and the user's code.
_PLUMBING = (
    f"{os.sep}starlette{os.sep}",
    f"{os.sep}fastapi{os.sep}",
    f"{os.sep}anyio{os.sep}",
    f"{os.sep}uvicorn{os.sep}",
    f"{os.sep}hypercorn{os.sep}",
)


async def _probe() -> Any:
    yield None


def _awaitable_types() -> tuple[type, type]:
    """The types of an async generator's ``asend()`` and ``athrow()`` awaitables."""
    agen = _probe()
    asend, athrow = agen.asend(None), agen.athrow(GeneratorExit)
    # Closed unawaited, or 3.14 warns at their collection that they were never awaited.
    asend.close()
    athrow.close()
    return type(asend), type(athrow)


_ASEND, _ATHROW = _awaitable_types()


@dataclasses.dataclass(frozen=True, slots=True)
class Waiting:
    """Where a task waits and who waits for it, as /tasks shows it.

    Attributes:
        where: ``file:line in function`` of the innermost user frame (see `where`).
        awaiting: the qualified names of the coroutines awaited, outermost first.
        awaited_by: the tasks awaiting this one, or None where it cannot be known (before
            Python 3.14).
    """

    where: str | None
    awaiting: list[str]
    awaited_by: list[asyncio.Task[Any]] | None


def _walk(awaitable: Any) -> list[types.FrameType]:
    """The frames from *awaitable* inwards, following what each one awaits."""
    frames: list[types.FrameType] = []
    for _ in range(64):  # bounded: a pathological chain must not hang the endpoint
        kind = type(awaitable)
        # Plain coroutines are nearly every link: test for them first, without getattr.
        if kind is types.CoroutineType:
            frame, awaitable = awaitable.cr_frame, awaitable.cr_await
        elif kind is types.AsyncGeneratorType:
            frame, awaitable = awaitable.ag_frame, awaitable.ag_await
        elif kind is types.GeneratorType:
            frame, awaitable = awaitable.gi_frame, awaitable.gi_yieldfrom
        elif kind is _ASEND or kind is _ATHROW:
            # `async for` awaits the generator's `__anext__()` object, which exposes no link
            # to its generator; the garbage collector's referents are the public way there.
            awaitable = next(
                (r for r in gc.get_referents(awaitable) if type(r) is types.AsyncGeneratorType),
                None,
            )
            continue
        else:
            frame = getattr(awaitable, "cr_frame", None)
            awaitable = getattr(awaitable, "cr_await", None)
        if frame is None:
            break
        frames.append(frame)
        if awaitable is None:
            break
    return frames


if sys.version_info >= (3, 14):

    def _awaiters(future: asyncio.Future[Any]) -> frozenset[asyncio.Future[Any]]:
        # Read-only: asyncio's C future answers with a copy, safe from another thread.
        return future._asyncio_awaited_by or frozenset()  # type: ignore[attr-defined]

    def _graph_is_small(task: asyncio.Task[Any]) -> bool:
        """Whether the call graph of *task* has at most `GRAPH_LIMIT` nodes: one per path
        up its awaited-by edges, as `asyncio.capture_call_graph` expands them."""
        pending: list[asyncio.Future[Any]] = [task]
        for _ in range(GRAPH_LIMIT):
            if not pending:
                return True
            pending.extend(_awaiters(pending.pop()))
        return not pending

    def _tasks_among(futures: Iterable[asyncio.Future[Any]]) -> list[asyncio.Task[Any]]:
        """The tasks among *futures*, looking through futures that are not tasks (a
        gather's, a shield's) to the tasks awaiting them; at most `GRAPH_LIMIT` steps."""
        found: dict[int, asyncio.Task[Any]] = {}
        pending = list(futures)
        for _ in range(GRAPH_LIMIT):
            if not pending:
                break
            future = pending.pop(0)
            if isinstance(future, asyncio.Task):
                found.setdefault(id(future), future)
            else:
                pending.extend(_awaiters(future))
        return list(found.values())

    def _graph_tasks(graphs: Iterable[asyncio.FutureCallGraph]) -> list[asyncio.Task[Any]]:
        found: dict[int, asyncio.Task[Any]] = {}
        pending = list(graphs)
        while pending:  # finite: the graph was counted before it was built
            graph = pending.pop(0)
            if isinstance(graph.future, asyncio.Task):
                found.setdefault(id(graph.future), graph.future)
            else:
                pending.extend(graph.awaited_by)
        return list(found.values())

    def _chain(
        task: asyncio.Task[Any],
    ) -> tuple[list[types.FrameType], list[asyncio.Task[Any]] | None]:
        """The frames of *task* from its coroutine inwards, and the tasks awaiting it."""
        if not _graph_is_small(task):
            return _walk(task.get_coro()), _tasks_among(_awaiters(task))
        graph = asyncio.capture_call_graph(task)
        assert graph is not None  # None only when no future is given and none runs
        # Innermost first; for the task running this very call, its live stack, of which
        # only the coroutines are part of its await chain.
        frames = [e.frame for e in reversed(graph.call_stack) if e.frame.f_generator is not None]
        if frames:
            # Where the graph stopped (see the module's docstring), the hand walk goes on
            # from the innermost coroutine; its first frame is that coroutine's own.
            frames.extend(_walk(frames[-1].f_generator)[1:])
        return frames, _graph_tasks(graph.awaited_by)

else:

    def _chain(
        task: asyncio.Task[Any],
    ) -> tuple[list[types.FrameType], list[asyncio.Task[Any]] | None]:
        """The frames of *task* from its coroutine inwards; who awaits it is not known."""
        return _walk(task.get_coro()), None


@functools.lru_cache(maxsize=4096)
def is_user_code(filename: str) -> bool:
    """True unless *filename* belongs to asyncio (the stdlib), this library or ASGI plumbing."""
    # Cached per file: with 10 000 tasks, /tasks asks about the same few files 50 000 times.
    path = os.path.normpath(os.path.join(_CWD, filename))  # as abspath, without a syscall
    if path.startswith(_LIBRARY_DIR):
        return False
    # Global site-packages lives below the stdlib directory; code there may be the user's.
    if path.startswith(_STDLIB_DIR) and f"{os.sep}site-packages{os.sep}" not in path:
        return False
    return not any(part in path for part in _PLUMBING)


def describe_frame(frame: types.FrameType) -> str:
    """``file:line in function`` of *frame*."""
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def _innermost_user(frames: list[types.FrameType]) -> str | None:
    for frame in reversed(frames):
        if is_user_code(frame.f_code.co_filename):
            return describe_frame(frame)
    return describe_frame(frames[-1]) if frames else None


def where(task: asyncio.Task[Any]) -> str | None:
    """``file:line in function`` of the innermost user frame *task* is suspended in.

    Falls back to the innermost frame of any code when no user frame is on the chain, and
    returns None for a task that is done or not started.
    """
    return _innermost_user(_chain(task)[0])


def waiting(task: asyncio.Task[Any]) -> Waiting:
    """`where`, the coroutines awaited and the tasks awaiting *task*, from one walk: what
    /tasks needs per row."""
    frames, awaited_by = _chain(task)
    chain = [frame.f_code.co_qualname for frame in frames]
    return Waiting(_innermost_user(frames), chain, awaited_by)


def awaited_by(task: asyncio.Task[Any]) -> list[asyncio.Task[Any]] | None:
    """The tasks awaiting *task*, or None where that cannot be known (before 3.14)."""
    return _chain(task)[1]


def format_stack(task: asyncio.Task[Any]) -> list[str]:
    """The full await chain of *task* as formatted source lines, outermost first, then the
    tasks awaiting it where that is known (3.14 and later)."""
    frames, awaited_by = _chain(task)
    summary = traceback.StackSummary.extract(
        ((frame, frame.f_lineno) for frame in frames), lookup_lines=True
    )
    lines = [line.rstrip("\n") for line in summary.format()]
    if awaited_by:
        names = ", ".join(repr(awaiter.get_name()) for awaiter in awaited_by)
        lines.append(f"  Awaited by: {names}")
    return lines


def tasks_running(
    tasks: Iterable[asyncio.Task[Any]], code: types.CodeType, owner: object, bound: str
) -> list[tuple[asyncio.Task[Any], types.FrameType]]:
    """The tasks among *tasks* whose await chain passes through *code* with ``self`` *owner*
    and the local *bound* assigned.

    How in-flight requests are found without recording each one: their chain runs through
    the middleware's ``__call__`` past the point where it counts them (*bound*). Returns each
    task with that frame (its locals say more).
    """
    found = []
    for task in tasks:
        # By hand on every Python: only coroutine frames matter here, and the call graph
        # would build the awaited-by edges of every task for nothing, at twice the cost.
        for frame in _walk(task.get_coro()):
            if frame.f_code is not code:
                continue
            names = frame.f_locals
            if names.get("self") is owner and bound in names:
                found.append((task, frame))
                break
    return found
