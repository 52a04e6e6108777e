"""Each shop's catalog in memory, brought up to date with only what changed.

Filtering candidates (stock, categories, brands) and titling offers reads the catalog on every
request; one cheap version query replaces a fetch of every candidate item. When the version
moved, one thread per shop reads the items written since the version it holds and swaps in a new
snapshot; meanwhile other requests wait for it at most ``CATCH_UP_WAIT_SECONDS`` and then
serve the previous snapshot, never loading the same rows again (issue 8: one 1-item write
used to reload a 20k-item catalog on every concurrent request). Memory grows with the catalog:
about a kilobyte per item.
"""

from __future__ import annotations

import logging
import threading
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass

from kosmos.common import deadline
from kosmos.common.errors import DeadlineExceeded, NotFound
from kosmos.common.names import shop_name
from kosmos.store import Store
from kosmos.store.events import CATALOG, RESYNC, Event
from kosmos.store.records import Item

log = logging.getLogger(__name__)

# How long a request waits for another thread's catch-up before it serves the older snapshot.
CATCH_UP_WAIT_SECONDS = 0.2

# Changed items sit in a small overlay above the whole catalog, so a write copies only the
# overlay; past this many the two are merged (one full copy, amortised over as many writes).
OVERLAY_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class _Snapshot:
    version: int
    base: dict[str, Item]
    overlay: dict[str, Item]
    items: Mapping[str, Item]


class CatalogCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._snapshots: dict[str, _Snapshot] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        # A catalog change made through any replica is caught up here at once, off the request
        # path, so the next request finds the new snapshot ready (issue 8).
        store.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.kind == CATALOG:
            shops = [event.shop_id]
        elif event.kind == RESYNC:
            shops = list(self._snapshots)
        else:
            return
        for shop_id in shops:
            if shop_id not in self._snapshots:
                continue  # never served here: loaded on its first request
            with self._guard:
                loading = self._loading.setdefault(shop_id, threading.Lock())
            if loading.acquire(blocking=False):  # one already catching up will do
                # On the thread that delivers the event (the writer's own, in embedded mode;
                # the listener's on PostgreSQL), not a new one: the write returns, or the
                # listener moves on, with the snapshot already caught up, so the next request
                # finds it ready instead of waiting for a thread to start.
                self._catch_up_then_release(shop_id, loading)

    def _catch_up_then_release(self, shop_id: str, loading: threading.Lock) -> None:
        try:
            self._catch_up(shop_id)
        except Exception:  # the next request catches up instead
            log.warning("catching up the catalog of %r failed", shop_id, exc_info=True)
        finally:
            loading.release()

    def items(self, shop_id: str, version: int | None = None) -> Mapping[str, Item]:
        """The shop's whole catalog by item id (never mutate it), at least at ``version`` (the
        store's current one, read now, when None). Raises NotFound for an unknown shop."""
        if version is None:
            version = self.store.catalog_version(shop_id)
        if version is None:
            raise NotFound("shop", shop_name(shop_id))
        held = self._snapshots.get(shop_id)
        if held is not None and held.version >= version:
            return held.items
        with self._guard:
            loading = self._loading.setdefault(shop_id, threading.Lock())
        if held is not None:
            # Someone is already catching up: a delta is quick, so wait for it briefly (the
            # next request sees a write), but never queue long behind a big one: serve what
            # we have instead.
            left = deadline.remaining()
            wait = (
                CATCH_UP_WAIT_SECONDS
                if left is None
                else min(max(left, 0.0), CATCH_UP_WAIT_SECONDS)
            )
            if not loading.acquire(timeout=wait):
                return self._snapshots[shop_id].items
        else:
            left = deadline.remaining()
            if not loading.acquire(timeout=-1 if left is None else max(left, 0.0)):
                raise DeadlineExceeded("loading the catalog")
        try:
            return self._catch_up(shop_id).items
        finally:
            loading.release()

    def _catch_up(self, shop_id: str) -> _Snapshot:
        held = self._snapshots.get(shop_id)
        since = -1 if held is None else held.version
        changes = self.store.catalog_changes(shop_id, since)
        if changes is None:
            raise NotFound("shop", shop_name(shop_id))
        if held is not None and changes.version <= held.version:
            return held
        changed = {i.item_id: i for i in changes.items}
        if held is None:
            base, overlay = changed, dict[str, Item]()
        elif len(held.overlay) + len(changed) > OVERLAY_LIMIT:
            base, overlay = {**held.base, **held.overlay, **changed}, {}
        else:  # copy on write, of the overlay only: readers keep the snapshot they hold
            base, overlay = held.base, {**held.overlay, **changed}
        # ``changes.version`` is never newer than the rows read with it: a write racing this
        # load only makes the next request catch up again.
        items: Mapping[str, Item] = ChainMap(overlay, base) if overlay else base
        snapshot = _Snapshot(changes.version, base, overlay, items)
        self._snapshots[shop_id] = snapshot
        return snapshot
