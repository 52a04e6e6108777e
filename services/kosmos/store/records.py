"""Plain records the stores read and write. Times are seconds since the Unix epoch (UTC)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from itertools import repeat
from typing import Any, TypeVar, overload

T = TypeVar("T")


class InteractionType(IntEnum):
    """Mirrors ``kosmos.v1.InteractionType``; the numbers are the proto's."""

    VIEW = 1
    CLICK = 2
    ADD_TO_CART = 3
    PURCHASE = 4
    RATING = 5
    DISMISS = 6


class ExclusionKind(IntEnum):
    """Mirrors ``kosmos.v1.ExclusionKind``."""

    ITEM = 1
    CATEGORY = 2
    BRAND = 3


@dataclass(frozen=True, slots=True)
class Shop:
    shop_id: str
    display_name: str = ""
    create_time: float = 0.0


class PreferenceKind(IntEnum):
    """Mirrors ``kosmos.v1.PreferenceKind``."""

    LIKED_CATEGORY = 1
    DISLIKED_CATEGORY = 2
    LIKED_BRAND = 3
    DISLIKED_BRAND = 4


class ConsentPurpose(IntEnum):
    """Mirrors ``kosmos.v1.ConsentPurpose``."""

    PERSONALIZATION = 1
    TRAINING = 2
    CROSS_DEVICE_LINKING = 3


@dataclass(frozen=True, slots=True)
class Exclusion:
    """``expire_time`` None: never lapses."""

    kind: ExclusionKind
    value: str
    expire_time: float | None = None


@dataclass(frozen=True, slots=True)
class Preference:
    kind: PreferenceKind
    value: str
    expire_time: float | None = None


@dataclass(frozen=True, slots=True)
class PriceRange:
    """0 for a bound means none."""

    min_price: float = 0.0
    max_price: float = 0.0
    expire_time: float | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    shop_id: str
    customer_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    exclusions: tuple[Exclusion, ...] = ()
    create_time: float = 0.0
    update_time: float = 0.0
    preferences: tuple[Preference, ...] = ()
    price_range: PriceRange | None = None
    anonymous: bool = False


ANONYMOUS_PREFIX = "anon-"
"""Ids with this prefix are anonymous or device ids (issue 11): they shop and send feedback
before they have a profile, which their first feedback, consent or link creates."""


def is_anonymous(customer_id: str) -> bool:
    return customer_id.startswith(ANONYMOUS_PREFIX)


CUSTOMER_FIELDS = ("attributes", "exclusions", "preferences", "price_range")
"""The profile fields a caller replaces (``update_mask`` paths, `Store.upsert_customers`)."""


def encode_exclusions(exclusions: Sequence[Exclusion]) -> str:
    if not exclusions:
        return "[]"  # most profiles: no JSON encoder call for each of a bulk load's rows
    return json.dumps(
        [
            (e.kind.value, e.value)
            if e.expire_time is None
            else (e.kind.value, e.value, e.expire_time)
            for e in exclusions
        ]
    )


def decode_exclusions(raw: str) -> tuple[Exclusion, ...]:
    return tuple(
        Exclusion(ExclusionKind(e[0]), e[1], e[2] if len(e) > 2 else None) for e in json.loads(raw)
    )


def encode_preferences(preferences: Sequence[Preference]) -> str:
    return json.dumps([(p.kind.value, p.value, p.expire_time) for p in preferences])


def decode_preferences(raw: str) -> tuple[Preference, ...]:
    return tuple(Preference(PreferenceKind(k), v, t) for k, v, t in json.loads(raw or "[]"))


def encode_price_range(price_range: PriceRange | None) -> str:
    if price_range is None:
        return ""
    return json.dumps((price_range.min_price, price_range.max_price, price_range.expire_time))


def decode_price_range(raw: str) -> PriceRange | None:
    if not raw:
        return None
    low, high, expire = json.loads(raw)
    return PriceRange(low, high, expire)


def subject_hash(shop_id: str, customer_id: str) -> str:
    """What an erasure or a training withdrawal keeps of a customer id: a SHA-256, so the
    tombstone that masks their vector in older models holds no id in clear."""
    return hashlib.sha256(f"{shop_id}/{customer_id}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Consent:
    """One purpose's consent. ``update_time`` None: never set (the default applies)."""

    purpose: ConsentPurpose
    granted: bool
    source: str = "default"
    update_time: float | None = None
    seq: int = 0


CONSENT_DEFAULTS = {
    ConsentPurpose.PERSONALIZATION: True,
    ConsentPurpose.TRAINING: True,
    ConsentPurpose.CROSS_DEVICE_LINKING: True,
}
"""What applies to a purpose the customer never set (documented in the README)."""


@dataclass(frozen=True, slots=True)
class IdentityLink:
    shop_id: str
    customer_id: str
    linked_id: str
    source: str
    create_time: float


@dataclass(frozen=True, slots=True)
class Erasure:
    """What `Store.erase_customer` removed, counted.

    Attributes:
        model_versions_removed: ``recommender/version`` of stored versions deleted (rollback
            targets that held the customer).
        model_versions_pending: ``recommender/version`` of current versions that hold the
            customer until a newer one replaces them.
    """

    erase_time: float
    profile_removed: bool
    interactions_removed: int
    identity_links_removed: int
    consents_removed: int
    idempotency_records_removed: int
    model_versions_removed: tuple[str, ...] = ()
    model_versions_pending: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Item:
    shop_id: str
    item_id: str
    title: str = ""
    category: str = ""
    brand: str = ""
    price: float = 0.0
    available: bool = True
    attributes: dict[str, str] = field(default_factory=dict)
    update_time: float = 0.0


class _BuiltOnAccess(Sequence[T]):
    """A sequence whose entries are built when read (`_entry`): bulk batches held as columns,
    handed to code that takes records, without a record built per row on the fast path."""

    __slots__ = ()

    def _entry(self, n: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, n: int) -> T: ...

    @overload
    def __getitem__(self, n: slice) -> list[T]: ...

    def __getitem__(self, n: int | slice) -> T | list[T]:
        if isinstance(n, slice):
            return [self._entry(k) for k in range(*n.indices(len(self)))]
        return self._entry(n)


@dataclass(frozen=True, slots=True, eq=False)
class StoredItems(_BuiltOnAccess[Item]):
    """What `Store.upsert_items` returns: the items as written (their ``update_time`` the
    write's), each built on access, so a bulk load that asks for the count alone builds none."""

    written: Sequence[Item]
    update_time: float

    def __len__(self) -> int:
        return len(self.written)

    def _entry(self, n: int) -> Item:
        i = self.written[n]
        return replace(i, attributes=dict(i.attributes), update_time=self.update_time)


@dataclass(frozen=True, slots=True, eq=False)
class ItemColumns(_BuiltOnAccess[Item]):
    """A batch of items held as columns (bulk intake, `UpsertItems` with ``columns``): entry n
    of each column belongs to item n, already checked, its attributes as the JSON text the
    stores keep.

    Like `InteractionColumns`, a sequence of `Item` built on access, so every store takes it;
    `item_rows` zips the columns in C instead, with no `Item` built per row.
    """

    shop_id: str
    item_ids: Sequence[str]
    titles: Sequence[str]
    categories: Sequence[str]
    brands: Sequence[str]
    prices: Sequence[float]
    available: Sequence[bool]
    attributes_json: Sequence[str]

    def __len__(self) -> int:
        return len(self.item_ids)

    def _entry(self, n: int) -> Item:
        return Item(
            self.shop_id,
            self.item_ids[n],
            self.titles[n],
            self.categories[n],
            self.brands[n],
            self.prices[n],
            self.available[n],
            json.loads(self.attributes_json[n]),
        )


@dataclass(frozen=True, slots=True, eq=False)
class CustomerColumns(_BuiltOnAccess[Customer]):
    """A batch of profiles held as columns (bulk intake, `CreateCustomers` with ``columns``):
    ids and attributes (as JSON text), no exclusions; a sequence of `Customer` built on access,
    zipped in C by `customer_rows`."""

    shop_id: str
    customer_ids: Sequence[str]
    attributes_json: Sequence[str]

    def __len__(self) -> int:
        return len(self.customer_ids)

    def _entry(self, n: int) -> Customer:
        return Customer(self.shop_id, self.customer_ids[n], json.loads(self.attributes_json[n]))


def item_shop_ids(items: Sequence[Item]) -> set[str]:
    """The shops a batch of items belongs to (`ItemColumns`: its one shop, no `Item` built)."""
    if isinstance(items, ItemColumns):
        return {items.shop_id}
    return {i.shop_id for i in items}


def customer_ids(customers: Sequence[Customer]) -> Sequence[str]:
    """The ids of a batch of profiles, in order (`CustomerColumns`: its column)."""
    if isinstance(customers, CustomerColumns):
        return customers.customer_ids
    return [c.customer_id for c in customers]


def customer_rows(customers: Iterable[Customer], now: float) -> Iterable[tuple[Any, ...]]:
    """The customers table's bulk columns (shop, customer, attributes as JSON, exclusions,
    create time, update time) of a batch written at ``now``, for both stores' bulk writes:
    `CustomerColumns` zipped in C, any other sequence one tuple at a time."""
    if isinstance(customers, CustomerColumns):
        return zip(
            repeat(customers.shop_id),
            customers.customer_ids,
            customers.attributes_json,
            repeat("[]"),
            repeat(now),
            repeat(now),
        )
    dumps = json.dumps
    return [
        (c.shop_id, c.customer_id, dumps(c.attributes), encode_exclusions(c.exclusions), now, now)
        for c in customers
    ]


def item_rows(
    items: Iterable[Item], update_time: float, versions: Mapping[str, int]
) -> Iterable[tuple[Any, ...]]:
    """The items table's rows (shop, item, title, category, brand, price, available,
    attributes as JSON, update time, the shop's catalog version) of a batch, for both stores'
    bulk writes: `ItemColumns` zipped in C, any other sequence one tuple at a time."""
    if isinstance(items, ItemColumns):
        return zip(
            repeat(items.shop_id),
            items.item_ids,
            items.titles,
            items.categories,
            items.brands,
            items.prices,
            items.available,
            items.attributes_json,
            repeat(update_time),
            repeat(versions[items.shop_id]),
        )
    dumps = json.dumps
    return [
        (
            i.shop_id,
            i.item_id,
            i.title,
            i.category,
            i.brand,
            i.price,
            i.available,
            dumps(i.attributes),
            update_time,
            versions[i.shop_id],
        )
        for i in items
    ]


@dataclass(frozen=True, slots=True)
class Interaction:
    """One stored interaction; ``seq`` is 0 until the store assigns it."""

    shop_id: str
    customer_id: str
    item_id: str
    type: InteractionType
    event_time: float
    value: float = 0.0
    recommendation_id: str = ""
    seq: int = 0
    channel: str = ""  # where it happened (RecommendationContext.channel), issue 13
    device: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class InteractionColumns(_BuiltOnAccess[Interaction]):
    """A batch of interactions held as columns (bulk intake, `ImportInteractions` with
    ``columns``): entry n of each column belongs to interaction n, already checked.

    It is a sequence of `Interaction`, built on access, so every store takes it; a store may
    instead read the columns themselves (SQLite hands them to one ``executemany`` without an
    `Interaction` per row).
    """

    shop_id: str
    customer_ids: Sequence[str]
    item_ids: Sequence[str]
    types: Sequence[int]
    values: Sequence[float]
    event_times: Sequence[float]
    recommendation_ids: Sequence[str]

    def __len__(self) -> int:
        return len(self.customer_ids)

    def _entry(self, n: int) -> Interaction:
        return Interaction(
            self.shop_id,
            self.customer_ids[n],
            self.item_ids[n],
            InteractionType(self.types[n]),
            self.event_times[n],
            self.values[n],
            self.recommendation_ids[n],
        )


def referenced_ids(interactions: Sequence[Interaction]) -> tuple[set[str], set[str]]:
    """The distinct customer ids and item ids a batch names (what a store checks exist)."""
    if isinstance(interactions, InteractionColumns):
        return set(interactions.customer_ids), set(interactions.item_ids)
    return {i.customer_id for i in interactions}, {i.item_id for i in interactions}


def interaction_rows(
    shop_id: str, request_id: str, interactions: Sequence[Interaction]
) -> Iterable[tuple[Any, ...]]:
    """The interactions table's rows (shop, customer, item, type, value, event time,
    recommendation id, request id, channel, device) of a batch: `InteractionColumns` zipped in
    C, with no `Interaction` built per row; any other sequence one tuple at a time."""
    if isinstance(interactions, InteractionColumns):
        return zip(
            repeat(shop_id),
            interactions.customer_ids,
            interactions.item_ids,
            interactions.types,
            interactions.values,
            interactions.event_times,
            interactions.recommendation_ids,
            repeat(request_id),
            repeat(""),
            repeat(""),
        )
    return [
        (
            shop_id,
            i.customer_id,
            i.item_id,
            int(i.type),
            i.value,
            i.event_time,
            i.recommendation_id,
            request_id,
            i.channel,
            i.device,
        )
        for i in interactions
    ]


@dataclass(frozen=True, slots=True)
class CatalogChanges:
    """What changed in a shop's catalog since a version a reader holds.

    Attributes:
        version: The catalog version the reader holds once it has applied ``items``.
        items: Every item written after the version asked about, in item id order.
    """

    version: int
    items: list[Item]


@dataclass(frozen=True, slots=True)
class RecommendInputs:
    """Everything ``Recommend`` reads about one customer, from one consistent read.

    Attributes:
        customer: The profile.
        recent: The customer's latest interactions, newest first.
        dismissed_item_ids: Every item the customer ever dismissed.
        owned_item_ids: Every item the customer had an interaction of the asked kinds with.
        consents: The purposes the customer set (absent: `CONSENT_DEFAULTS`).
        linked_ids: The ids linked to the customer (both ways); their history is in the
            three above, merged by event time.
        mask_time: The latest erasure of this id or withdrawal of its training consent: a model
            built before it must not use a vector it holds for the id. None: there was none.
        revisions: The shop's catalog version and settings and document revisions, read with
            the rest, so the request's caches need no read of their own. None: not read (an
            anonymous customer's inputs are made up, not read).
        impressions: The customer's impressions since the ``impressions_since`` asked for,
            newest first (at most `IMPRESSIONS_LIMIT`); empty when not asked.
    """

    customer: Customer
    recent: list[Interaction]
    dismissed_item_ids: frozenset[str]
    owned_item_ids: frozenset[str] = frozenset()
    consents: Mapping[ConsentPurpose, bool] = field(default_factory=dict)
    linked_ids: tuple[str, ...] = ()
    mask_time: float | None = None
    revisions: ShopRevisions | None = None
    impressions: tuple[Impression, ...] = ()


IMPRESSIONS_LIMIT = 2000
"""The most impressions `RecommendInputs` and ``recent_impressions`` return."""


@dataclass(frozen=True, slots=True)
class ShopRevisions:
    """What the serving caches check before every request: the catalog's version, the per-shop
    settings' revision, and the revision of each versioned shop document (kind → revision)."""

    catalog_version: int
    settings_revision: int
    documents: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelArtifact:
    """One stored model version, without its packed files.

    Attributes:
        manifest: The version's manifest as JSON (see `kosmos.training.artifacts.Version`).
    """

    shop_id: str
    recommender: str
    version: str
    create_time: float
    manifest: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: never the secret, only its SHA-256 hash.

    ``shop_id`` is empty for operator keys, which act on every shop; ``scope`` is one of
    ``storefront``, ``admin`` and ``operator``.
    """

    key_id: str
    shop_id: str
    scope: str
    secret_hash: str
    display_name: str = ""
    create_time: float = 0.0
    revoke_time: float | None = None


@dataclass(frozen=True, slots=True)
class ShopSettingsRevision:
    """One stored revision of a shop's settings.

    ``document`` is the JSON object of the fields the shop set (`kosmos.shopconfig` gives it
    its meaning); the store keeps it as it is. Revisions count from 1.
    """

    shop_id: str
    revision: int
    document: Mapping[str, Any]
    create_time: float = 0.0


@dataclass(frozen=True, slots=True)
class RecommendationList:
    """The ranked list behind one served ``recommendation_id`` (stable pages, attribution).

    ``offers`` is the whole list as served, best first: JSON-able entries the recommendation
    service gives their meaning (`kosmos.recommendation.pages.to_document`). ``experiment_id`` and
    ``variant_id`` are empty when no experiment decided the list.
    """

    shop_id: str
    recommendation_id: str
    customer_id: str
    offers: tuple[Any, ...]
    create_time: float
    expire_time: float
    placement: str = ""
    experiment_id: str = ""
    variant_id: str = ""


@dataclass(frozen=True, slots=True)
class Impression:
    """One offer of one served list that a page showed to its customer."""

    shop_id: str
    customer_id: str
    recommendation_id: str
    item_id: str
    event_time: float


@dataclass(frozen=True, slots=True)
class ExperimentOutcomes:
    """What an experiment's lists led to, for its report.

    Attributes:
        lists: (recommendation id, customer id, variant id) of every list it decided.
        impressions: (recommendation id, item id) of every impression citing those lists.
        interactions: (recommendation id, item id, type, value, price) of every interaction
            citing those lists, with the item's catalog price (0 when unknown).
    """

    lists: list[tuple[str, str, str]]
    impressions: list[tuple[str, str]]
    interactions: list[tuple[str, str, InteractionType, float, float]]


@dataclass(frozen=True, slots=True)
class Replica:
    """One serving process's latest heartbeat (issue 14): the dashboard's health of each
    service and replica, whether one process serves, several share a port, or pods scale.

    ``replica_id`` is ``hostname/pid`` (a pod's hostname is its name); ``status`` is the gRPC
    health of its services (``SERVING``, ``NOT_SERVING``); times are Unix seconds.
    """

    replica_id: str
    services: tuple[str, ...]
    version: str
    start_time: float
    seen_time: float
    status: str
