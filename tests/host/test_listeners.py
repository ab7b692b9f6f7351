"""The listener watch: one schedule of looks at the listening sockets, for every subscriber."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from asgi_supervisor._host import listeners as _listeners
from asgi_supervisor._host.listeners import ListenerWatch
from asgi_supervisor._host.tcp_table import Listener

SOCKET = Listener("127.0.0.1", 8000, inode=1, uid=1000)


@pytest.mark.parametrize(("found", "looks"), [({SOCKET}, 3), (set(), 4)])
async def test_the_schedule_goes_on_past_the_short_steps_only_while_none_is_known(
    monkeypatch: pytest.MonkeyPatch, found: set[Listener], looks: int
) -> None:
    """Every subscriber hears every look that finds a listener; the longer delays are
    waited for only while none is known, and a schedule that found none says so once."""
    monkeypatch.setattr(_listeners, "_DELAYS", (0.0, 0.001, 0.002, 0.004))
    monkeypatch.setattr(_listeners, "_ONCE_FOUND_UNTIL", 0.002)
    calls: list[int] = []

    def find() -> set[Listener]:
        calls.append(1)
        return found

    watch = ListenerWatch(find)
    heard: list[frozenset[Listener]] = []
    given_up: list[bool] = []
    watch.subscribe(heard.append, lambda: given_up.append(True))
    watch.start()
    await asyncio.wait_for(_until(lambda: "idle" in repr(watch)), 2.0)
    assert len(calls) == looks
    assert heard == ([frozenset(found)] * looks if found else [])
    assert given_up == ([] if found else [True])
    await watch.aclose()


async def test_nobody_subscribed_means_no_look_and_close_waits_for_a_look_under_way() -> None:
    """1. started with no subscriber, the watch does not look; 2. a look under way is joined,
    not repeated; 3. closing waits for it (it ends after the look) and tells nobody of its
    answer."""
    calls: list[int] = []
    release = threading.Event()

    def slow_find() -> set[Listener]:
        calls.append(1)
        release.wait(5.0)
        return {SOCKET}

    watch = ListenerWatch(slow_find)
    watch.start()
    await asyncio.wait_for(_until(lambda: "idle" in repr(watch)), 2.0)
    assert calls == []
    heard: list[frozenset[Listener]] = []
    watch.subscribe(heard.append)
    watch.start()
    ended: list[str] = []
    try:
        await asyncio.wait_for(_until(lambda: bool(calls)), 2.0)
        asked = watch.look()
        assert asked is watch.look()
        asked.add_done_callback(lambda _: ended.append("look"))
        closing = asyncio.get_running_loop().create_task(watch.aclose())
        closing.add_done_callback(lambda _: ended.append("close"))
        # The close has begun (the schedule is stopped) while the look still reads.
        await asyncio.wait_for(_until(lambda: "idle" in repr(watch)), 2.0)
    finally:
        release.set()
    await asyncio.wait_for(closing, 2.0)
    assert ended == ["look", "close"]
    assert (calls, heard, watch.listeners) == ([1], [], frozenset())


async def test_a_listener_found_once_stays_seen_after_it_closed() -> None:
    """1. a look finds the listener on port 8000; 2. the server closes it (as it does when
    it stops), and the next look finds nothing; 3. ``listeners`` says so, yet ``seen`` keeps
    it: the shutdown ends the connections left on the ports this process served."""
    answers: list[set[Listener]] = [{SOCKET}, set()]
    watch = ListenerWatch(lambda: answers.pop(0))
    watch.subscribe(lambda listeners: None)
    assert await asyncio.shield(watch.look()) == {SOCKET}
    assert await asyncio.shield(watch.look()) == frozenset()
    assert (watch.listeners, watch.seen) == (frozenset(), frozenset({SOCKET}))
    await watch.aclose()


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)
