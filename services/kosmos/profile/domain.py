"""Profile rules: shops and customer profiles. Plain Python; imports no grpc."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence

from kosmos.common.errors import NotFound
from kosmos.common.names import customer_name, shop_name
from kosmos.store import Store
from kosmos.store.records import Customer, Exclusion, Preference, PriceRange, Shop


class Profiles:
    """Creates, reads, changes and erases shops and customer profiles."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create_shop(self, shop_id: str, display_name: str) -> Shop:
        return self.store.create_shop(Shop(shop_id, display_name))

    def get_shop(self, shop_id: str) -> Shop:
        shop = self.store.get_shop(shop_id)
        if shop is None:
            raise NotFound("shop", shop_name(shop_id))
        return shop

    def create_customer(
        self,
        shop_id: str,
        customer_id: str,
        attributes: Mapping[str, str],
        exclusions: Sequence[Exclusion],
        preferences: Sequence[Preference] = (),
        price_range: PriceRange | None = None,
    ) -> Customer:
        self.get_shop(shop_id)
        return self.store.create_customer(
            Customer(
                shop_id,
                customer_id,
                dict(attributes),
                tuple(exclusions),
                preferences=tuple(preferences),
                price_range=price_range,
            )
        )

    def upsert_customers(
        self,
        shop_id: str,
        customers: Sequence[Customer],
        replace: Collection[str],
        echo: bool = True,
    ) -> tuple[list[Customer], int]:
        """Creates profiles, or replaces the ``replace`` fields of those that exist, in one
        transaction; returns them (none without ``echo``) and how many are new."""
        self.get_shop(shop_id)
        return self.store.upsert_customers(customers, replace, echo)

    def get_customer(self, shop_id: str, customer_id: str) -> Customer:
        customer = self.store.get_customer(shop_id, customer_id)
        if customer is None:
            self.get_shop(shop_id)  # An unknown shop says so, rather than "no such customer".
            raise NotFound("customer", customer_name(shop_id, customer_id))
        return customer

    def update_customer(
        self,
        shop_id: str,
        customer_id: str,
        attributes: Mapping[str, str] | None,
        exclusions: Sequence[Exclusion] | None,
        preferences: Sequence[Preference] | None = None,
        price_range: PriceRange | None = None,
        clear_price_range: bool = False,
    ) -> Customer:
        """Replaces the fields given (not None); the others stay. Lapsed exclusions and
        preferences are dropped on every change."""
        current = self.get_customer(shop_id, customer_id)
        now = time.time()
        return self.store.update_customer(
            Customer(
                shop_id,
                customer_id,
                dict(attributes) if attributes is not None else current.attributes,
                tuple(
                    e
                    for e in (exclusions if exclusions is not None else current.exclusions)
                    if e.expire_time is None or e.expire_time > now
                ),
                preferences=tuple(
                    p
                    for p in (preferences if preferences is not None else current.preferences)
                    if p.expire_time is None or p.expire_time > now
                ),
                price_range=None
                if clear_price_range
                else (price_range if price_range is not None else current.price_range),
                anonymous=current.anonymous,
            )
        )

    def delete_customer(self, shop_id: str, customer_id: str) -> None:
        if not self.store.delete_customer(shop_id, customer_id):
            self.get_shop(shop_id)
            raise NotFound("customer", customer_name(shop_id, customer_id))

    def list_customers(self, shop_id: str, after: str, limit: int) -> list[Customer]:
        self.get_shop(shop_id)
        return self.store.list_customers(shop_id, after, limit)
