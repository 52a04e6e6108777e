"""Catalog rules: a shop's items. Plain Python; imports no grpc."""

from __future__ import annotations

from collections.abc import Sequence

from kosmos.common.errors import NotFound
from kosmos.common.names import item_name, shop_name
from kosmos.store import Store
from kosmos.store.records import Item


class Catalog:
    """Upserts and reads a shop's items."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _require_shop(self, shop_id: str) -> None:
        if self.store.get_shop(shop_id) is None:
            raise NotFound("shop", shop_name(shop_id))

    def upsert(self, shop_id: str, items: Sequence[Item]) -> Sequence[Item]:
        self._require_shop(shop_id)
        return self.store.upsert_items(items)

    def get(self, shop_id: str, item_id: str) -> Item:
        found = self.store.get_items(shop_id, [item_id]).get(item_id)
        if found is None:
            self._require_shop(shop_id)
            raise NotFound("item", item_name(shop_id, item_id))
        return found

    def list(self, shop_id: str, after: str, limit: int) -> list[Item]:
        self._require_shop(shop_id)
        return self.store.list_items(shop_id, after, limit)
