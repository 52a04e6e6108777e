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
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass

from kosmos.common import deadline
from kosmos.common.errors import DeadlineExceeded, NotFound
from kosmos.common.names import shop_name
from kosmos.store import Store
from kosmos.store.records import Item

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

    def items(self, shop_id: str) -> Mapping[str, Item]:
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
