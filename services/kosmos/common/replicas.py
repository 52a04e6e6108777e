"""Per-replica health (issue 14): every serving process records a heartbeat in the store, and
the HTTP port lists them (``GET /replicas``) for the dashboard.

The same whether one process serves, several share one port (`KOSMOS_PROCESSES`) or
Kubernetes runs replicas: each process is one row, ``hostname/pid`` (a pod's hostname is its
name), refreshed every `KOSMOS_HEARTBEAT_SECONDS` with one small write. A process that stops
gracefully removes its row; one that dies stops refreshing it, is shown stale after
`STALE_BEATS` missed beats and purged by the others' beats after `PURGE_BEATS`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kosmos import __version__
from kosmos.store import Store
from kosmos.store.records import Replica

log = logging.getLogger(__name__)

STALE_BEATS = 3
"""Beats a replica may miss before the list calls it stale."""
PURGE_BEATS = 60
"""Beats after which a silent replica's row is deleted (by any other replica's beat)."""


def replica_id() -> str:
    """``hostname/pid``: unique per process on a host, a pod's name on Kubernetes."""
    return f"{socket.gethostname()}/{os.getpid()}"


class Heartbeat:
    """Records this process's heartbeat every ``interval`` seconds on a daemon thread.

    Args:
        store: Where the heartbeats live (the one every replica shares).
        services: The services this process hosts (`kosmos.common.server.Service.name`).
        healthy: Whether this process serves now (its gRPC health), read at each beat.
        interval: Seconds between beats (`KOSMOS_HEARTBEAT_SECONDS`).
    """

    def __init__(
        self,
        store: Store,
        services: Sequence[str],
        healthy: Callable[[], bool],
        interval: float,
    ) -> None:
        self.replica_id = replica_id()
        self._store = store
        self._services = tuple(services)
        self._healthy = healthy
        self._interval = interval
        self._start_time = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kosmos-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()  # at once: the dashboard shows a replica as soon as it serves
        self._thread.start()

    def beat(self) -> None:
        """One heartbeat; a store that fails it is logged and tried again at the next."""
        now = time.time()
        replica = Replica(
            self.replica_id,
            self._services,
            __version__,
            self._start_time,
            now,
            "SERVING" if self._healthy() else "NOT_SERVING",
        )
        try:
            self._store.beat_replica(replica, purge_before=now - PURGE_BEATS * self._interval)
        except Exception as exc:  # the database is down: health already says so
            log.warning("heartbeat not recorded: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat()

    def stop(self) -> None:
        """Stops beating and removes this replica's row (it is gone, not stale)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        try:
            self._store.remove_replica(self.replica_id)
        except Exception as exc:
            log.warning("heartbeat row not removed (it will turn stale): %s", exc)


def listing(store: Store, interval: float, now: float | None = None) -> dict[str, Any]:
    """What ``GET /replicas`` answers: every replica still recorded, newest beat first known,
    each with ``stale`` when it missed `STALE_BEATS` beats."""
    now = time.time() if now is None else now
    replicas = store.list_replicas(seen_since=now - PURGE_BEATS * interval)
    return {
        "heartbeatSeconds": interval,
        "replicas": [
            {
                "replica": r.replica_id,
                "services": list(r.services),
                "version": r.version,
                "startTime": r.start_time,
                "seenTime": r.seen_time,
                "status": r.status,
                "stale": r.seen_time < now - STALE_BEATS * interval,
            }
            for r in replicas
        ],
    }
