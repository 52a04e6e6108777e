"""Plain records the stores read and write. Times are seconds since the Unix epoch (UTC)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


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


@dataclass(frozen=True, slots=True)
class Exclusion:
    kind: ExclusionKind
    value: str


@dataclass(frozen=True, slots=True)
class Customer:
    shop_id: str
    customer_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    exclusions: tuple[Exclusion, ...] = ()
    create_time: float = 0.0
    update_time: float = 0.0


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
    """

    customer: Customer
    recent: list[Interaction]
    dismissed_item_ids: frozenset[str]
    owned_item_ids: frozenset[str] = frozenset()


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
