"""Feedback rules: interactions are durable before they are acknowledged, and stored once.

Plain Python; imports no grpc.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace

from kosmos.common import metrics
from kosmos.common.errors import NotFound
from kosmos.common.names import customer_name, shop_name
from kosmos.store import Store
from kosmos.store.records import Impression, Interaction, is_anonymous


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
        # An anonymous or device id gets its profile on first use (issue 11).
        anonymous = {i.customer_id for i in interactions if is_anonymous(i.customer_id)}
        if anonymous:
            self.store.ensure_anonymous_customers(shop_id, anonymous)
        # The store checks shop, customers and items inside the write's own transaction, so a
        # customer deleted between a check and the insert cannot leave orphan interactions.
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

    def record_impressions(self, shop_id: str, impressions: Sequence[Impression]) -> int:
        """Stores what pages showed (never a positive signal); each (list, item) once.

        Raises:
            NotFound: The shop or a customer is unknown.
        """
        if self.store.get_shop(shop_id) is None:
            raise NotFound("shop", shop_name(shop_id))
        # An anonymous id's page views count for it as its clicks do (issue 11).
        anonymous = {i.customer_id for i in impressions if is_anonymous(i.customer_id)}
        if anonymous:
            self.store.ensure_anonymous_customers(shop_id, anonymous)
        count = self.store.record_impressions(shop_id, impressions)
        span = trace.get_current_span()
        span.set_attribute("kosmos.shop", shop_id)
        span.set_attribute("kosmos.impressions.count", count)
        return count

    def import_history(
        self, shop_id: str, request_id: str, request_hash: str, interactions: Sequence[Interaction]
    ) -> tuple[int, bool]:
        """Bulk intake: like `record`, but answers with a count (and whether it was a replay).

        Raises:
            NotFound: The shop, a customer or an item is unknown.
            AlreadyExists: ``request_id`` was used for a different request.
        """
        # The store checks shop, customers and items inside the write (as for `record`).
        return self.store.import_interactions(shop_id, request_id, request_hash, interactions)

    def list(
        self, shop_id: str, customer_id: str, before_seq: int | None, limit: int
    ) -> list[Interaction]:
        if self.store.get_customer(shop_id, customer_id) is None:
            if self.store.get_shop(shop_id) is None:
                raise NotFound("shop", shop_name(shop_id))
            raise NotFound("customer", customer_name(shop_id, customer_id))
        return self.store.list_interactions(shop_id, customer_id, before_seq, limit)
