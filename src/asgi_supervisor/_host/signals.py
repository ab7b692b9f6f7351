"""Chain SIGTERM/SIGINT handlers onto the server's own, and hand signals on later.

Servers stop listening within a tick of a signal (uvicorn closes its sockets 0.1 s after
SIGTERM), before the load balancer has noticed anything. So we install our handler *after*
the server's (at lifespan startup, when the server has installed its own), learn of the
signal first, and pass it on when the supervisor is ready for the server to stop.

Two kinds of server handler exist:

* a Python handler set with ``signal.signal`` (uvicorn, gunicorn's uvicorn worker): we keep
  it and call it ourselves later;
* a loop handler set with ``loop.add_signal_handler`` (hypercorn ``-w 0``): the C-level
  handler writes to the loop's wakeup fd whatever Python handler is installed, so chaining
  alone would not delay it. We take the loop's handle out (asyncio's own loop only), and run
  its callback ourselves later. On loops we cannot do this for (uvloop: its handles are not
  Python objects we can read), the loop hears the signal through its wakeup fd as soon as it
  arrives, whatever Python handler is installed: we listen, and say at startup that the
  server will stop listening at once, and that a preStop drain call is the recipe there.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import threading
import types
from collections.abc import Callable
from typing import Any

__all__ = ["SignalChain"]

logger = logging.getLogger("asgi_supervisor")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# What works where signals cannot start the drain early: a drain that comes before them. A
# kubelet's httpGet hook cannot do it (it cannot POST, nor send the token); an exec can.
DRAIN_FIRST = (
    "Drain before the signal: run `asgi-supervisor drain http://127.0.0.1:PORT` first (in "
    "Kubernetes, as a preStop exec hook: an httpGet hook cannot POST nor send the token)"
)
_Handler = Callable[[int, types.FrameType | None], Any] | int | signal.Handlers | None


class SignalChain:
    """Our handler for SIGTERM and SIGINT, in front of whatever handled them before.

    Install it from the loop's thread; `forward` hands one signal to the previous handler.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_signal: Callable[[int], None],
        on_signal_now: Callable[[int], None] | None = None,
    ) -> None:
        self._loop = loop
        self._on_signal = on_signal
        # Runs in the handler itself, for what must not wait for a loop that may be blocked.
        self._on_signal_now = on_signal_now
        self._previous: dict[int, _Handler] = {}
        # Loop callbacks taken over from `loop.add_signal_handler`, per signal.
        self._loop_handles: dict[int, asyncio.Handle] = {}
        # Signals a loop receives through its wakeup fd that we could not take over: the
        # server has had them already, so forwarding them would deliver them twice. Counts
        # those received and not yet forwarded, per signal.
        self.undelayed: list[int] = []
        self._delivered: collections.Counter[int] = collections.Counter()
        self.installed = False

    def install(self) -> bool:
        """Install our handlers; return False (and change nothing) off the main thread."""
        if threading.current_thread() is not threading.main_thread():
            logger.warning(
                "not on the main thread: signals are not watched, so SIGTERM gives no early "
                "trigger. %s, or call supervisor.drain().",
                DRAIN_FIRST,
            )
            return False
        for sig in SIGNALS:
            handle = _loop_handle(self._loop, sig)
            if handle is not None:
                self._loop.remove_signal_handler(sig)
                self._loop_handles[sig] = handle
            previous = signal.getsignal(sig)
            if handle is None and _loop_owned(previous):
                self.undelayed.append(sig)
            self._previous[sig] = previous
            signal.signal(sig, self._handle)
        self.installed = True
        if self._previous[signal.SIGINT] == signal.SIG_IGN and self.default_action:
            # No server handler, and SIGINT ignored: what a server's child process inherits
            # when its parent alone handles signals (hypercorn's default mode).
            logger.warning(
                "no server signal handler in this process, and SIGINT is ignored: the server "
                "stops this process without a signal (hypercorn's default mode runs the app "
                "in such a child), so signals give no early trigger. %s, or run hypercorn "
                "with -w 0.",
                DRAIN_FIRST,
            )
        if self.undelayed:
            names = " and ".join(signal.Signals(sig).name for sig in self.undelayed)
            loop_type = type(self._loop)
            logger.warning(
                "%s %s the server at once on this event loop (%s.%s): its signal handler "
                "cannot be taken over, so the server stops listening as soon as the signal "
                "arrives, before load balancers notice the failing readiness. %s, or run the "
                "server on asyncio's own loop.",
                names,
                "reach" if len(self.undelayed) > 1 else "reaches",
                loop_type.__module__,
                loop_type.__qualname__,
                DRAIN_FIRST,
                extra={"signals": names},
            )
        return True

    def restore(self) -> None:
        """Put the previous handlers back, where ours is still the one installed."""
        if not self.installed:
            return
        self.installed = False
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) != self._handle:
                continue  # someone chained after us; unwinding them is not ours to do
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            handle = self._loop_handles.get(sig)
            if handle is not None and not self._loop.is_closed():
                callback: Any = getattr(handle, "_callback", None)
                args: Any = getattr(handle, "_args", ())
                if callback is not None:
                    self._loop.add_signal_handler(sig, callback, *args)

    def forward(self, sig: int) -> None:
        """Run the handler that was in place before ours for *sig* (loop thread only)."""
        if sig in self.undelayed:
            if self._delivered[sig]:
                self._delivered[sig] -= 1
                return  # the loop delivered it already, through its wakeup fd
            # A stop we ask for ourselves: only a real signal reaches the loop's handler.
            signal.raise_signal(sig)
            return
        handle = self._loop_handles.get(sig)
        if handle is not None:
            handle._run()
            return
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, None)
        elif previous in (signal.SIG_DFL, None):
            # No server handler: the default action ends the process, which is what the
            # sender asked for, now that the supervisor has finished.
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    @property
    def default_action(self) -> bool:
        """True when no server handler stands behind us: forwarding ends the process."""
        return all(
            sig not in self._loop_handles and self._previous.get(sig) in (signal.SIG_DFL, None)
            for sig in (signal.SIGTERM,)
        )

    @property
    def server_handler_owner(self) -> object:
        """The object whose method the server's SIGTERM handler is (uvicorn's ``Server``,
        whose ``handle_exit`` it is), or None: where the server's settings may be found."""
        return getattr(self._previous.get(signal.SIGTERM), "__self__", None)

    @property
    def can_stop_server(self) -> bool:
        """True when our handler is installed with a server's handler behind it for SIGTERM.

        Then `forward` (SIGTERM) asks the server to shut down as it would on the signal.
        """
        return self.installed and not self.default_action

    def _handle(self, sig: int, frame: types.FrameType | None) -> None:
        # Runs in the main thread between two bytecodes, possibly inside the loop: hand the
        # signal to the loop, which is safe from any context. The loop may be blocked in sync
        # code, though, so the watchdog is armed from here.
        if sig in self.undelayed:
            self._delivered[sig] += 1
        if self._on_signal_now is not None:
            self._on_signal_now(sig)
        try:
            self._loop.call_soon_threadsafe(self._on_signal, sig)
        except RuntimeError:  # the loop is closed: nobody is left to drain, so pass it on
            self.forward(sig)


def _loop_owned(handler: _Handler) -> bool:
    # A loop's own stub: a method of the loop itself (uvloop's `Loop.__sighandler`), or
    # asyncio's no-op (its handle is somewhere we did not find it).
    owner = getattr(handler, "__self__", None)
    if isinstance(owner, asyncio.AbstractEventLoop):
        return True
    return getattr(handler, "__qualname__", None) == "_sighandler_noop"


def _loop_handle(loop: asyncio.AbstractEventLoop, sig: int) -> asyncio.Handle | None:
    handlers = getattr(loop, "_signal_handlers", None)
    if not isinstance(handlers, dict):
        return None
    handle = handlers.get(sig)
    # uvloop keeps its own Handle type without a Python-callable `_run`; leave it alone.
    if isinstance(handle, asyncio.Handle) and callable(getattr(handle, "_run", None)):
        return handle
    return None
