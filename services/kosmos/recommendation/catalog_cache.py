"""Each shop's catalog in memory, brought up to date with only what changed.

Filtering candidates (stock, categories, brands) and titling offers reads the catalog on every
request; one cheap version query replaces a fetch of every candidate item. When the version
moved, one thread per shop reads the items written since the version it holds and swaps in a new
snapshot; meanwhile every other request keeps serving the previous snapshot instead of waiting
or loading the same rows again (issue 8: one 1-item write used to reload a 20k-item catalog on
every concurrent request). Memory grows with the catalog: about a kilobyte per item.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from kosmos.common import deadline
from kosmos.common.errors import DeadlineExceeded, NotFound
from kosmos.common.names import shop_name
from kosmos.store import Store
from kosmos.store.records import Item


@dataclass(frozen=True, slots=True)
class _Snapshot:
    version: int
    items: dict[str, Item]


class CatalogCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._snapshots: dict[str, _Snapshot] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def items(self, shop_id: str) -> dict[str, Item]:
        """The shop's whole catalog by item id (never mutate it). Raises NotFound for an
        unknown shop."""
        version = self.store.catalog_version(shop_id)
        if version is None:
            raise NotFound("shop", shop_name(shop_id))
        held = self._snapshots.get(shop_id)
        if held is not None and held.version >= version:
            return held.items
        with self._guard:
            loading = self._loading.setdefault(shop_id, threading.Lock())
        if held is not None:
            # Someone is already catching up: serve what we have rather than queue behind it.
            if not loading.acquire(blocking=False):
                return held.items
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
        items = {} if held is None else dict(held.items)  # copy on write: readers keep theirs
        items.update((i.item_id, i) for i in changes.items)
        # ``changes.version`` is never newer than the rows read with it: a write racing this
        # load only makes the next request catch up again.
        snapshot = _Snapshot(changes.version, items)
        self._snapshots[shop_id] = snapshot
        return snapshot
