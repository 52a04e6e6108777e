"""Feedback rules: interactions are durable before they are acknowledged, and stored once.

Plain Python; imports no grpc.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace

from kosmos.common import metrics
from kosmos.common.errors import NotFound
from kosmos.common.names import customer_name, item_name, shop_name
from kosmos.store import Store
from kosmos.store.records import Interaction


class Feedback:
    """Records and lists interactions."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(
        self, shop_id: str, request_id: str, request_hash: str, interactions: Sequence[Interaction]
    ) -> list[Interaction]:
        """Stores ``interactions`` under ``request_id``; a retry returns the first answer.

        Raises:
            NotFound: The shop, a customer or an item is unknown.
            AlreadyExists: ``request_id`` was used for a different request.
        """
        if self.store.get_shop(shop_id) is None:
            raise NotFound("shop", shop_name(shop_id))
        customers = {i.customer_id for i in interactions}
        missing = sorted(customers - self.store.existing_customer_ids(shop_id, customers))
        if missing:
            raise NotFound("customer", customer_name(shop_id, missing[0]))
        items = {i.item_id for i in interactions}
        unknown = sorted(items - set(self.store.get_items(shop_id, items)))
        if unknown:
            raise NotFound("item", item_name(shop_id, unknown[0]))
        stored, replayed = self.store.record_interactions(
            shop_id, request_id, request_hash, interactions
        )
        if not replayed:
            metrics.record_interactions(i.type.name.lower() for i in stored)
        span = trace.get_current_span()
        span.set_attribute("kosmos.shop", shop_id)
        span.set_attribute("kosmos.interactions.count", len(stored))
        span.set_attribute("kosmos.request.replayed", bool(replayed))
        return stored

    def list(
        self, shop_id: str, customer_id: str, before_seq: int | None, limit: int
    ) -> list[Interaction]:
        if self.store.get_customer(shop_id, customer_id) is None:
            if self.store.get_shop(shop_id) is None:
                raise NotFound("shop", shop_name(shop_id))
            raise NotFound("customer", customer_name(shop_id, customer_id))
        return self.store.list_interactions(shop_id, customer_id, before_seq, limit)
