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

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from kosmos.store.events import Subscriber
from kosmos.store.records import (
    ApiKey,
    CatalogChanges,
    Consent,
    ConsentPurpose,
    Customer,
    Erasure,
    ExperimentOutcomes,
    IdentityLink,
    Impression,
    Interaction,
    InteractionType,
    Item,
    ModelArtifact,
    RecommendationList,
    RecommendInputs,
    Replica,
    Shop,
    ShopSettingsRevision,
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

    def upsert_customers(
        self,
        customers: Sequence[Customer],
        replace: Collection[str] = ("attributes", "exclusions"),
        echo: bool = True,
    ) -> tuple[list[Customer], int]:
        """Creates or replaces profiles (all of one shop) in one transaction (bulk intake).

        A profile that exists gets the fields named in ``replace`` (``attributes``,
        ``exclusions``) from the one given, and a new ``update_time``; its other fields and its
        ``create_time`` stay.

        Returns:
            The stored profiles, in order (none without ``echo``: a bulk load asks for the
            count alone), and how many of them are new.
        """
        ...

    def upsert_items(self, items: Sequence[Item]) -> Sequence[Item]:
        """Creates or replaces items (all of one shop), stamping ``update_time``."""
        ...

    def existing_item_ids(self, shop_id: str, item_ids: Iterable[str]) -> set[str]:
        """The ids among ``item_ids`` that are in the catalog (cheaper than `get_items`)."""
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

    def import_interactions(
        self, shop_id: str, request_id: str, request_hash: str, interactions: Sequence[Interaction]
    ) -> tuple[int, bool]:
        """Bulk intake: stores interactions atomically under ``request_id``, in one batched
        write (``executemany``), without reading them back.

        Returns:
            How many interactions the request stored and whether this was a replay.

        Raises:
            AlreadyExists: ``request_id`` was used before with a different ``request_hash``.
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
        self,
        shop_id: str,
        customer_id: str,
        recent_limit: int,
        owned_types: Collection[InteractionType] = (),
        impressions_since: float | None = None,
    ) -> RecommendInputs | None:
        """The profile, the latest ``recent_limit`` interactions, the dismissed items and the
        items the customer ever had an ``owned_types`` interaction with (the seen-item policy),
        the shop's revisions (`ShopRevisions`) and, when ``impressions_since`` is given, the
        customer's impressions since then, read together (one snapshot, one round trip where
        the database allows). None when the customer (or the shop) does not exist."""
        ...

    def iter_interactions(
        self,
        shop_id: str,
        after_seq: int = 0,
        types: Collection[InteractionType] | None = None,
    ) -> Iterator[Interaction]:
        """Every interaction of a shop with seq > ``after_seq``, oldest first (training); only
        those of ``types`` when given (a serving process learning repeat purchases reads the
        purchases, not the whole history)."""
        ...

    def iter_training_rows(self, shop_id: str) -> Iterator[tuple[Any, ...]]:
        """The interactions `iter_interactions` gives (same order, same consent rule) as plain
        rows for a fit: ``(customer id, item id, type number, value, event time, channel,
        device, seq)``. A trainer reading millions of them builds no `Interaction` record."""
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

    def settings_revision(self, shop_id: str) -> int | None:
        """The shop's current settings revision (0: never set); None for an unknown shop. Read
        on every request, so it must be cheap."""
        ...

    def get_shop_settings(self, shop_id: str, revision: int = 0) -> ShopSettingsRevision | None:
        """A stored revision (0: the current one); None if there is none."""
        ...

    def put_shop_settings(self, shop_id: str, document: Mapping[str, Any]) -> ShopSettingsRevision:
        """Stores ``document`` as the shop's next revision and makes it current. Raises
        NotFound for an unknown shop."""
        ...

    def list_shop_settings(
        self, shop_id: str, before_revision: int | None, limit: int
    ) -> list[ShopSettingsRevision]:
        """Revisions below ``before_revision`` (None: all), newest first."""
        ...

    # -- the customer's own choices (issue 11) -----------------------------------------------

    def ensure_anonymous_customers(self, shop_id: str, customer_ids: Iterable[str]) -> list[str]:
        """Creates an empty profile marked ``anonymous`` for each id that has none (first use
        of an ``anon-`` id); returns the ids created. Raises NotFound for an unknown shop."""
        ...

    def undo_dismissal(self, shop_id: str, customer_id: str, item_id: str) -> int:
        """Deletes the customer's dismissals of ``item_id``; returns how many."""
        ...

    def consents(self, shop_id: str, customer_id: str) -> dict[ConsentPurpose, Consent]:
        """Every purpose's consent; a purpose never set has its default and no time."""
        ...

    def set_consent(
        self, shop_id: str, customer_id: str, purpose: ConsentPurpose, granted: bool, source: str
    ) -> tuple[Consent, int]:
        """Records a consent change (the current state and the history, one transaction).
        Withdrawing cross-device linking deletes the customer's links, both ways; withdrawing
        training masks the id in models built before now. Returns the consent as stored and
        how many links were deleted. Raises NotFound for an unknown customer."""
        ...

    def list_consent_changes(
        self, shop_id: str, customer_id: str, before_seq: int | None, limit: int
    ) -> list[Consent]:
        """The customer's consent changes with seq < ``before_seq``, newest first."""
        ...

    def link_identity(
        self, shop_id: str, customer_id: str, linked_id: str, source: str
    ) -> IdentityLink:
        """Links ``linked_id`` to ``customer_id`` (the first link stays when it exists).

        Raises:
            NotFound: Either profile is unknown.
            FailedPrecondition: Either withdrew cross-device linking consent.
        """
        ...

    def unlink_identity(self, shop_id: str, customer_id: str, linked_id: str) -> bool: ...

    def list_identity_links(
        self, shop_id: str, customer_id: str, after: str, limit: int
    ) -> list[IdentityLink]:
        """The customer's links with linked id > ``after``, in linked id order."""
        ...

    def erase_customer(self, shop_id: str, customer_id: str) -> Erasure:
        """Removes, in one transaction, the profile, interactions, consents and their history,
        identity links (both ways), the idempotency records of requests that held only this
        customer, and every stored model version fitted before now that does not serve; masks
        the id in models built before now (`RecommendInputs.mask_time`) and changes the shop's
        `data_version`. Idempotent. Raises NotFound for an unknown shop."""
        ...

    def latest_mask_time(self, shop_id: str) -> float | None:
        """The latest erasure or training withdrawal of the shop: model versions fitted before
        it must not serve again once replaced."""

    # -- issue 13: merchant rules and experiments (versioned documents), lists, impressions --

    def document_revisions(self, shop_id: str) -> dict[str, int]:
        """The current revision of each kind of versioned document the shop has (``rules``,
        ``experiments``); empty for none or an unknown shop. One cheap read per request."""
        ...

    def get_document(
        self, shop_id: str, kind: str, revision: int = 0
    ) -> ShopSettingsRevision | None:
        """A stored revision of one kind of document (0: the current one); None if none."""
        ...

    def put_document(
        self,
        shop_id: str,
        kind: str,
        document: Mapping[str, Any],
        expected_revision: int | None = None,
    ) -> ShopSettingsRevision:
        """Stores ``document`` as the next revision of ``kind`` and makes it current. Raises
        NotFound for an unknown shop, and Aborted when ``expected_revision`` is given and is
        not the current one (a concurrent update won)."""
        ...

    def list_documents(
        self, shop_id: str, kind: str, before_revision: int | None, limit: int
    ) -> list[ShopSettingsRevision]:
        """Revisions of ``kind`` below ``before_revision`` (None: all), newest first."""
        ...

    def put_recommendation_list(self, record: RecommendationList) -> None:
        """Keeps the list behind a recommendation id until its ``expire_time`` (lists of an
        experiment are kept for its report)."""
        ...

    def get_recommendation_list(
        self, shop_id: str, recommendation_id: str, now: float
    ) -> RecommendationList | None:
        """The list, if it was kept and has not expired at ``now``."""
        ...

    def record_impressions(self, shop_id: str, impressions: Sequence[Impression]) -> int:
        """Stores impressions atomically, each (list, item) once; returns how many were new.
        Raises NotFound for a customer that does not exist."""
        ...

    def recent_impressions(self, shop_id: str, customer_id: str, since: float) -> list[Impression]:
        """A customer's impressions at or after ``since``, newest first (at most 2000)."""
        ...

    def experiment_outcomes(self, shop_id: str, experiment_id: str) -> ExperimentOutcomes:
        """The lists an experiment decided, their impressions and the interactions citing them."""
        ...

    def beat_replica(self, replica: Replica, purge_before: float) -> None:
        """Records a serving process's heartbeat (insert or replace by ``replica_id``) and, in
        the same write, forgets replicas last seen before ``purge_before``."""
        ...

    def list_replicas(self, seen_since: float) -> list[Replica]:
        """Replicas whose last heartbeat is at or after ``seen_since``, by ``replica_id``."""
        ...

    def remove_replica(self, replica_id: str) -> bool:
        """Forgets a replica (it stopped); False when it was not recorded."""
        ...

    def close(self) -> None: ...
