"""Where a task is waiting: the innermost frame of the application's own code.

``task.get_stack()`` stops at the task's own coroutine. To see what it awaits we follow
``cr_await`` down the chain of coroutines (and async generators) by hand, and then skip the
frames of asyncio, of this library and of the ASGI plumbing, which are never the answer a
user wants when asking "where is my task stuck?".
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import sysconfig
import traceback
import types
from collections.abc import Iterable
from typing import Any

__all__ = [
    "describe_frame",
    "format_stack",
    "is_user_code",
    "tasks_running",
    "where",
    "where_and_chain",
]

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


_agen = _probe()
_ASEND = type(_agen.asend(None))
_ATHROW = type(_agen.athrow(GeneratorExit))
del _agen


def _frames(task: asyncio.Task[Any]) -> list[types.FrameType]:
    """The frames of *task* from its coroutine inwards, following what each awaits."""
    frames: list[types.FrameType] = []
    awaitable: Any = task.get_coro()
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


def where(task: asyncio.Task[Any]) -> str | None:
    """``file:line in function`` of the innermost user frame *task* is suspended in.

    Falls back to the innermost frame of any code when no user frame is on the chain, and
    returns None for a task that is done or not started.
    """
    frames = _frames(task)
    for frame in reversed(frames):
        if is_user_code(frame.f_code.co_filename):
            return describe_frame(frame)
    return describe_frame(frames[-1]) if frames else None


def where_and_chain(task: asyncio.Task[Any]) -> tuple[str | None, list[str]]:
    """`where`, and the qualified names of the coroutines awaited (outermost first), from one
    walk of the frames: what /tasks needs per row."""
    frames = _frames(task)
    chain = [frame.f_code.co_qualname for frame in frames]
    for frame in reversed(frames):
        if is_user_code(frame.f_code.co_filename):
            return describe_frame(frame), chain
    return (describe_frame(frames[-1]) if frames else None), chain


def format_stack(task: asyncio.Task[Any]) -> list[str]:
    """The full await chain of *task* as formatted source lines, outermost first."""
    summary = traceback.StackSummary.extract(
        ((frame, frame.f_lineno) for frame in _frames(task)), lookup_lines=True
    )
    return [line.rstrip("\n") for line in summary.format()]


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
        for frame in _frames(task):
            if frame.f_code is not code:
                continue
            names = frame.f_locals
            if names.get("self") is owner and bound in names:
                found.append((task, frame))
                break
    return found
