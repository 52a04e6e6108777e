"""The Store contract. SQLite (embedded) and PostgreSQL (cluster) implement it.

Rules every implementation keeps (``tests/store/contract.py`` pins each one): every method is
scoped by shop id (one shop never sees another's rows); a write that returns has committed
durably; ``record_interactions`` is atomic and idempotent by request id and checks what it refers
to inside its own transaction; every wait (a lock, a pooled connection, a query) is bounded by the
current deadline (`kosmos.common.deadline`), and a call whose deadline has passed does nothing.

Errors are translated the same way by every store: the deadline running out raises
`DeadlineExceeded`; a lock held too long by another writer or a lost connection raises
`Unavailable` (retryable: nothing was committed); nothing else leaks a driver exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from kosmos.store.events import Subscriber
from kosmos.store.records import (
    CatalogChanges,
    Customer,
    Interaction,
    Item,
    ModelArtifact,
    RecommendInputs,
    Shop,
)


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
            NotFound: The shop, a customer or an item is unknown (checked in the same
                transaction as the write, so a concurrent delete cannot slip between).
        """
        ...

    def list_interactions(
        self, shop_id: str, customer_id: str, before_seq: int | None, limit: int
    ) -> list[Interaction]:
        """A customer's interactions with seq < ``before_seq``, newest first."""
        ...

    def dismissed_item_ids(self, shop_id: str, customer_id: str) -> set[str]:
        """Every item the customer dismissed, found by index (not by scanning their history)."""
        ...

    def catalog_changes(self, shop_id: str, since_version: int) -> CatalogChanges | None:
        """The items written after catalog version ``since_version`` (-1: every item).

        The returned version is never newer than the items returned, so a reader that applies
        them and files the version never misses a write. None for an unknown shop.
        """
        ...

    def recommend_inputs(
        self, shop_id: str, customer_id: str, recent_limit: int
    ) -> RecommendInputs | None:
        """The profile, the latest ``recent_limit`` interactions and the dismissed items, read
        together (one snapshot, one round trip where the database allows). None when the
        customer (or the shop) does not exist."""
        ...

    def iter_interactions(self, shop_id: str, after_seq: int = 0) -> Iterator[Interaction]:
        """Every interaction of a shop with seq > ``after_seq``, oldest first (training)."""
        ...

    def data_version(self, shop_id: str) -> str:
        """A fingerprint that changes whenever what a fit reads does (interactions, catalog,
        customers), so a trainer can skip a shop whose data has not changed. It reads
        ``{newest interaction seq}.{anything}``: the part before the first dot is the seq."""
        ...

    # -- model artifacts (the trainer writes, replicas read) ---------------------------------

    def put_model_artifact(self, artifact: ModelArtifact, blob: bytes) -> None:
        """Stores a version whole. Raises AlreadyExists for a version stored before."""
        ...

    def model_artifacts(self, shop_id: str, recommender: str) -> list[ModelArtifact]:
        """Every stored version (without files), oldest first."""
        ...

    def model_blob(self, shop_id: str, recommender: str, version: str) -> bytes | None: ...

    def set_current_model(self, shop_id: str, recommender: str, version: str) -> None:
        """Makes ``version`` the one that serves. Raises NotFound when it is not stored."""
        ...

    def current_model(self, shop_id: str, recommender: str) -> str | None: ...

    def delete_model_artifacts(
        self, shop_id: str, recommender: str, versions: Sequence[str]
    ) -> None: ...

    def model_recommenders(self, shop_id: str) -> list[str]:
        """Recommenders with at least one stored version for the shop, by name."""
        ...

    def subscribe(self, callback: Subscriber) -> None:
        """Calls ``callback`` with every change `Event` any replica commits from now on (see
        `kosmos.store.events`); a ``resync`` event means some may have been missed."""
        ...

    def ping(self) -> None:
        """Raises Unavailable when the database cannot serve a query now (health checks)."""
        ...

    def close(self) -> None: ...
