"""Each shop's catalog in memory, reloaded exactly when the store says it changed.

Filtering candidates (stock, categories, brands) and titling offers reads the catalog on every
request; one cheap version query replaces a fetch of every candidate item. Memory grows with
the catalog: about a kilobyte per item.
"""

from __future__ import annotations

import threading

from kosmos.common.errors import NotFound
from kosmos.common.names import shop_name
from kosmos.store import Store
from kosmos.store.records import Item

PAGE = 1000


class CatalogCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cached: dict[str, tuple[int, dict[str, Item]]] = {}
        self._lock = threading.Lock()

    def items(self, shop_id: str) -> dict[str, Item]:
        """The shop's whole catalog by item id. Raises NotFound for an unknown shop."""
        version = self.store.catalog_version(shop_id)
        if version is None:
            raise NotFound("shop", shop_name(shop_id))
        cached = self._cached.get(shop_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        with self._lock:
            items: dict[str, Item] = {}
            after = ""
            while batch := self.store.list_items(shop_id, after, PAGE):
                items.update((i.item_id, i) for i in batch)
                after = batch[-1].item_id
            # A write between the version read and the load only makes the next request
            # reload again: the version we file is never newer than what we loaded.
            self._cached[shop_id] = (version, items)
        return items
