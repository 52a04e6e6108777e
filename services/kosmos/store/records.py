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
