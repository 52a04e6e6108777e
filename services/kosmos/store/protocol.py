"""The Store contract. SQLite (embedded) and PostgreSQL (cluster) implement it.

Rules every implementation keeps: every method is scoped by shop id (one shop never sees
another's rows); a write that returns has committed durably; ``record_interactions`` is atomic
and idempotent by request id; queries honour the current deadline (`kosmos.common.deadline`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from kosmos.store.records import ApiKey, Customer, Interaction, Item, Shop


class Store(Protocol):
    """Persistence for shops, profiles, the catalog and interactions."""

    def create_shop(self, shop: Shop) -> Shop:
        """Stores a new shop, stamping ``create_time``. Raises AlreadyExists."""
        ...

    def get_shop(self, shop_id: str) -> Shop | None: ...

    def list_shop_ids(self) -> list[str]: ...

    def create_customer(self, customer: Customer) -> Customer:
        """Stores a new customer, stamping times. Raises AlreadyExists."""
        ...

    def get_customer(self, shop_id: str, customer_id: str) -> Customer | None: ...

    def update_customer(self, customer: Customer) -> Customer:
        """Replaces attributes and exclusions, stamping ``update_time``. Raises NotFound."""
        ...

    def delete_customer(self, shop_id: str, customer_id: str) -> bool:
        """Deletes the customer and their interactions; False if there was none."""
        ...

    def list_customers(self, shop_id: str, after: str, limit: int) -> list[Customer]:
        """Customers with id > ``after``, in id order."""
        ...

    def existing_customer_ids(self, shop_id: str, customer_ids: Iterable[str]) -> set[str]: ...

    def upsert_items(self, items: Sequence[Item]) -> list[Item]:
        """Creates or replaces items (all of one shop), stamping ``update_time``."""
        ...

    def catalog_version(self, shop_id: str) -> int | None:
        """A number that changes whenever the shop's catalog does; None for an unknown shop."""
        ...

    def get_items(self, shop_id: str, item_ids: Iterable[str]) -> dict[str, Item]:
        """The items among ``item_ids`` that exist, by id."""
        ...

    def list_items(self, shop_id: str, after: str, limit: int) -> list[Item]:
        """Items with id > ``after``, in id order."""
        ...

    def record_interactions(
        self, shop_id: str, request_id: str, request_hash: str, interactions: Sequence[Interaction]
    ) -> tuple[list[Interaction], bool]:
        """Stores interactions atomically under ``request_id``.

        Returns:
            The stored interactions with ``seq`` set, in order, and whether this was a replay
            of an earlier request (nothing new stored).

        Raises:
            AlreadyExists: ``request_id`` was used before with a different ``request_hash``.
        """
        ...

    def list_interactions(
        self, shop_id: str, customer_id: str, before_seq: int | None, limit: int
    ) -> list[Interaction]:
        """A customer's interactions with seq < ``before_seq``, newest first."""
        ...

    def dismissed_item_ids(self, shop_id: str, customer_id: str) -> set[str]: ...

    def iter_interactions(self, shop_id: str) -> Iterator[Interaction]:
        """Every interaction of a shop, oldest first (training)."""
        ...

    def create_api_key(self, key: ApiKey) -> ApiKey:
        """Stores a new key (its hash), stamping ``create_time``. Raises AlreadyExists."""
        ...

    def get_api_key(self, key_id: str) -> ApiKey | None:
        """The key with ``key_id``, revoked or not; None if there is none."""
        ...

    def list_api_keys(self, shop_id: str | None, after: str, limit: int) -> list[ApiKey]:
        """Keys with id > ``after`` in id order: one shop's (``''``: operator keys), or all."""
        ...

    def revoke_api_key(self, key_id: str) -> ApiKey | None:
        """Stamps ``revoke_time`` (once); None if there is no such key."""
        ...

    def close(self) -> None: ...
