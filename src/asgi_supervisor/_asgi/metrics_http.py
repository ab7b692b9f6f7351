"""The ``/metrics`` endpoint: the supervisor's state in Prometheus' exposition format.

Public, like ``/health``: it says the same things (names, states, counts and durations),
never an error text, a stack or a task's name. It needs ``prometheus_client`` (the
``asgi-supervisor[metrics]`` extra), imported at the first scrape; without it the endpoint
answers 501 and says what to install.

Nothing here blocks the event loop: the import (which reads files, and `prometheus_client`
reads ``/proc`` as it is imported) and, in a process group, the exchange of snapshot files
run in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from asgi_supervisor._observe.metrics import FAMILIES, PREFIX, Snapshot, Type, take_snapshot
from asgi_supervisor._observe.metrics_group import group_directory, read_snapshots, write_snapshot

from .response import send_body, send_json

if TYPE_CHECKING:
    from pathlib import Path

    from prometheus_client.metrics_core import Metric

    from asgi_supervisor._supervisor.supervisor import Supervisor

    from .types import Receive, Scope, Send

__all__ = ["MetricsEndpoint"]

logger = logging.getLogger("asgi_supervisor")

Encoder = Callable[[Sequence[Snapshot], bool, str], tuple[bytes, str]]
_MISSING = (
    "/metrics needs the prometheus_client package, which is not installed; install it with "
    "pip install 'asgi-supervisor[metrics]' and restart the server."
)


class MetricsEndpoint:
    """The ASGI handler of ``{path_prefix}/metrics`` for one supervisor (GET and HEAD).

    Each scrape reads the supervisor there and then; in a process group it also publishes
    this process's snapshot and merges the others' (see `metrics_group`). It runs the
    readiness checks or reuses their cached results, so it waits at most the slowest
    check's timeout.
    """

    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor
        self._directory = group_directory()
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
        snapshot = await take_snapshot(self._sup)
        snapshots = [snapshot]
        if self._directory is not None:
            snapshots.extend(await asyncio.to_thread(_exchange, self._directory, snapshot))
        accept = b",".join(value for name, value in scope.get("headers", ()) if name == b"accept")
        group = self._directory is not None
        body, content_type = encode(snapshots, group, accept.decode("latin-1"))
        await send_body(send, method, 200, content_type.encode(), body)


def _import_encoder() -> Encoder | None:
    """`_encode`, or None without the optional extra; in a thread: imports read files."""
    try:
        import prometheus_client  # noqa: F401  (the optional extra)
    except ImportError:
        return None
    return _encode


def _exchange(directory: Path, snapshot: Snapshot) -> list[Snapshot]:
    """Publish this process's *snapshot* and read the others' (in a worker thread)."""
    try:
        write_snapshot(directory, snapshot)
    except OSError as exc:
        logger.warning("could not publish the metrics snapshot: %s", exc)
    return read_snapshots(directory, skip_pid=snapshot.pid, now=snapshot.taken_at)


def _encode(snapshots: Sequence[Snapshot], group: bool, accept: str) -> tuple[bytes, str]:
    """The exposition of *snapshots* in the format *accept* prefers, and its content type.

    Text format 0.0.4 unless the client asks for OpenMetrics (Prometheus does). In a *group*,
    every sample is labelled with its process's ``pid``.
    """
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    class Families(Collector):
        """What `generate_latest` wants: something with ``collect()``."""

        def collect(self) -> Iterable[Metric]:
            # A family with no sample (no shutdown yet, no check) would say only its type.
            return [family for family in families.values() if family.samples]

    extra = ("pid",) if group else ()
    families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
    for family in FAMILIES:
        kind = CounterMetricFamily if family.type is Type.COUNTER else GaugeMetricFamily
        families[family.name] = kind(family.name, family.help, labels=[*family.labels, *extra])
    now = time.time()
    for snapshot in snapshots:
        pid = (str(snapshot.pid),) if group else ()
        for name, labels, value in snapshot.samples:
            metric = families.get(name)
            if metric is not None:  # None: a family that a newer peer in the group added
                metric.add_metric([*labels, *pid], value)
        if group:
            age = max(0.0, now - snapshot.taken_at)
            families[PREFIX + "snapshot_age_seconds"].add_metric([*pid], age)
    encoder, content_type = choose_encoder(accept)
    return encoder(Families()), content_type
