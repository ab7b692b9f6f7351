"""The ``/metrics`` endpoint: the supervisor's state in Prometheus' exposition format.

Public, like ``/health``: it says the same things (names, states, counts and durations),
never an error text, a stack or a task's name. It needs ``prometheus_client`` (the
``asgi-supervisor[metrics]`` extra), imported at the first scrape; without it the endpoint
answers 501 and says what to install.

Nothing here blocks the event loop: the import (which reads files, and `prometheus_client`
reads ``/proc`` as it is imported) runs in a worker thread, and in a process group the
siblings' snapshots arrive over the group's channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from asgi_supervisor._observe.metrics import FAMILIES, PREFIX, Snapshot, Type, take_snapshot
from asgi_supervisor._observe.metrics_group import Peer, ask_snapshots

from .response import send_body, send_json

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from asgi_supervisor._host.channel import Channel
    from asgi_supervisor._supervisor.supervisor import Supervisor

    from .types import Receive, Scope, Send

__all__ = ["MetricsEndpoint"]

logger = logging.getLogger("asgi_supervisor")

Encoder = Callable[[Snapshot, Sequence[Peer] | None, str], tuple[bytes, str]]
_MISSING = (
    "/metrics needs the prometheus_client package, which is not installed; install it with "
    "pip install 'asgi-supervisor[metrics]' and restart the server."
)


class MetricsEndpoint:
    """The ASGI handler of ``{path_prefix}/metrics`` for one supervisor (GET and HEAD).

    Each scrape reads the supervisor there and then; in a process group it also asks the
    siblings for theirs (see `metrics_group`). It runs the readiness checks or reuses their
    cached results, so it waits at most the slowest check's timeout, or a sibling's
    `ANSWER_TIMEOUT`.

    Args:
        supervisor: the supervisor to read.
        channel: the channel of the lifespan running now, or None (outside a lifespan,
            with neither the local token nor the process group on).
    """

    def __init__(self, supervisor: Supervisor, channel: Callable[[], Channel | None]) -> None:
        self._sup = supervisor
        self._channel = channel
        # Known once the first scrape has tried the import: None without the extra.
        self._imported = False
        self._encode: Encoder | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            error = {"error": f"method {method} is not allowed here; use GET or HEAD"}
            await send_json(send, method, 405, error, [(b"allow", b"GET, HEAD")])
            return
        if not self._imported:
            self._encode = await asyncio.to_thread(_import_encoder)
            self._imported = True
        encode = self._encode
        if encode is None:
            await send_json(send, method, 501, {"error": _MISSING})
            return
        channel = self._channel()
        if channel is None:
            snapshot, peers = await take_snapshot(self._sup), None
        else:
            # Our own checks and the siblings' answers take their time side by side.
            snapshot, asked = await asyncio.gather(take_snapshot(self._sup), ask_snapshots(channel))
            peers = asked if channel.is_shared() else None
        accept = b",".join(value for name, value in scope.get("headers", ()) if name == b"accept")
        body, content_type = encode(snapshot, peers, accept.decode("latin-1"))
        await send_body(send, method, 200, content_type.encode(), body)


def _import_encoder() -> Encoder | None:
    """`_encode`, or None without the optional extra; in a thread: imports read files."""
    try:
        import prometheus_client  # noqa: F401  (the optional extra)
    except ImportError:
        return None
    return _encode


def _encode(own: Snapshot, peers: Sequence[Peer] | None, accept: str) -> tuple[bytes, str]:
    """The exposition of *own* and *peers* in the format *accept* prefers, and its type.

    Text format 0.0.4 unless the client asks for OpenMetrics (Prometheus does). In a process
    group (*peers* is not None), every sample is labelled with its process's ``pid``, and
    each process says whether it answered.
    """
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    class Families(Collector):
        """What `generate_latest` wants: something with ``collect()``."""

        def collect(self) -> Iterable[Metric]:
            # A family with no sample (no shutdown yet, no check) would say only its type.
            return [family for family in families.values() if family.samples]

    group = peers is not None
    extra = ("pid",) if group else ()
    families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
    for family in FAMILIES:
        kind = CounterMetricFamily if family.type is Type.COUNTER else GaugeMetricFamily
        families[family.name] = kind(family.name, family.help, labels=[*family.labels, *extra])
    answered = families[PREFIX + "group_answered"]
    everyone = [Peer(own.pid, own), *(peers or ())]
    for peer in sorted(everyone, key=lambda peer: peer.pid):
        pid = (str(peer.pid),) if group else ()
        if group:
            answered.add_metric([*pid], float(peer.snapshot is not None))
        if peer.snapshot is None:
            continue
        for name, labels, value in peer.snapshot.samples:
            metric = families.get(name)
            if metric is not None:  # None: a family that a newer peer in the group added
                metric.add_metric([*labels, *pid], value)
    encoder, content_type = choose_encoder(accept)
    return encoder(Families()), content_type
