"""Change events that keep replicas in step: a catalog changed, a model version became current,
a customer changed (erasure, consent and later features subscribe to that one).

PostgreSQL carries them with LISTEN/NOTIFY: the notification is sent by the writing
transaction and delivered only if it commits, so an event never announces a write that did not
happen, and no second system has to be run. The embedded SQLite store calls its subscribers in
process after the commit. Events speed replicas up but are never the only path: a replica
that missed some (it was down, its listening connection broke) gets a ``resync`` event and
catches up from the store, and readers still check versions in the store.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

from opentelemetry import trace

log = logging.getLogger(__name__)

CATALOG = "catalog"
MODEL = "model"
CUSTOMER = "customer"
API_KEY = "api_key"
"""An API key was revoked (``key`` is its id): processes that cache keys drop it."""
HISTORY = "history"
"""A batch of a shop's history was bulk-imported (``ImportInteractions``): model hubs hold off
refitting the shop while imports keep coming."""
RESYNC = "resync"
"""Sent to subscribers when events may have been missed: catch up from the store."""


@dataclass(frozen=True, slots=True)
class Event:
    """One change. ``key`` is what changed inside the shop: the recommender of a model event,
    the customer of a customer event, empty for a catalog event."""

    kind: str
    shop_id: str = ""
    key: str = ""

    def encode(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> Event | None:
        try:
            data = json.loads(raw)
            return cls(str(data["kind"]), str(data.get("shop_id", "")), str(data.get("key", "")))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed event %r", raw[:200])
            return None


Subscriber = Callable[[Event], None]


class Subscribers:
    """The callbacks of one store; each is called on the event thread and must be quick."""

    def __init__(self) -> None:
        self._callbacks: list[Subscriber] = []
        self._lock = threading.Lock()

    def add(self, callback: Subscriber) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def deliver(self, event: Event) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        # What a replica does on hearing of a change (reload a catalog, swap a model) is one
        # span of its own; the key (a customer id) stays out of it.
        with trace.get_tracer(__name__).start_as_current_span(
            "events.deliver",
            kind=trace.SpanKind.CONSUMER,
            attributes={"kosmos.event.kind": event.kind, "kosmos.shop": event.shop_id},
        ):
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:
                    log.exception("an event subscriber failed on %s", event)
