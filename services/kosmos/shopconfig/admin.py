"""Per-shop settings as an admin resource: read, change by field mask, list revisions.

Plain Python; imports no grpc. The servicer validates each field; this merges a change into the
shop's current document and stores the result as the next revision.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from kosmos.common.errors import NotFound
from kosmos.common.names import shop_name
from kosmos.store import Store
from kosmos.store.records import ShopSettingsRevision

NESTED = ("seen_items", "interaction_weights")
"""Fields whose own fields a mask may name one by one (``seen_items.owned_types``)."""


def settings_name(shop_id: str) -> str:
    return f"{shop_name(shop_id)}/settings"


class ShopSettingsAdmin:
    """Reads and versions a shop's own settings (never the cluster's)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _require_shop(self, shop_id: str) -> float:
        shop = self.store.get_shop(shop_id)
        if shop is None:
            raise NotFound("shop", shop_name(shop_id))
        return shop.create_time

    def get(self, shop_id: str, revision: int = 0) -> ShopSettingsRevision:
        """A revision (0: the current one; revision 0 with no fields if the shop set none)."""
        stored = self.store.get_shop_settings(shop_id, revision)
        if stored is not None:
            return stored
        created = self._require_shop(shop_id)
        if revision:
            raise NotFound(
                "settings revision",
                f"{settings_name(shop_id)}@{revision}",
                reason="REVISION_NOT_FOUND",
            )
        return ShopSettingsRevision(shop_id, 0, {}, created)

    def update(self, shop_id: str, changes: Mapping[str, Any]) -> ShopSettingsRevision:
        """Applies ``changes`` (mask path → new value, None to clear) to the current document
        and stores it as the next revision."""
        current = copy.deepcopy(dict(self.get(shop_id).document))
        for path, value in changes.items():
            head, _, leaf = path.partition(".")
            if leaf:
                part = dict(current.get(head) or {})
                _put(part, leaf, value)
                _put(current, head, part or None)
            else:
                _put(current, head, value)
        return self.store.put_shop_settings(shop_id, current)

    def revisions(self, shop_id: str, before: int | None, limit: int) -> list[ShopSettingsRevision]:
        self._require_shop(shop_id)
        return self.store.list_shop_settings(shop_id, before, limit)


def _put(document: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value == {} or value == [] or value == "":
        document.pop(key, None)
    else:
        document[key] = value
