"""What each customer owns of their world (issue 11): their stated choices, what Kosmos infers
of them and their corrections, consent per purpose, identity across devices, and erasure with
a receipt. Plain Python; imports no grpc.

Every change is a store write that the request path reads on the next request (one snapshot,
`Store.recommend_inputs`), so it holds from the next request on on every replica sharing the
store; no cache has to be told.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from kosmos.common.errors import InvalidArgument, NotFound
from kosmos.common.names import customer_name, shop_name
from kosmos.plugin.signals import DEFAULT_WEIGHTS, to_plugin
from kosmos.store import Store
from kosmos.store.records import (
    Consent,
    ConsentPurpose,
    Customer,
    Erasure,
    IdentityLink,
    Interaction,
    InteractionType,
    Preference,
    PreferenceKind,
    is_anonymous,
)

TASTE_HISTORY = 200
"""Inferred tastes read the customer's latest this many events (event time)."""
MAX_TASTES = 5
MAX_EVIDENCE = 5
MAX_PREFERENCES = 500
MAX_LINKED = 1000
"""At most this many linked ids are erased with a customer."""
TASTE_KINDS = {
    PreferenceKind.LIKED_CATEGORY: PreferenceKind.DISLIKED_CATEGORY,
    PreferenceKind.LIKED_BRAND: PreferenceKind.DISLIKED_BRAND,
}


@dataclass(frozen=True, slots=True)
class Taste:
    kind: PreferenceKind
    value: str
    weight: float
    evidence: tuple[Interaction, ...]


@dataclass(frozen=True, slots=True)
class Receipt:
    """An erasure's receipt: what the store removed and when the last derived artifact goes
    (None: nothing is pending)."""

    shop_id: str
    customer_id: str
    erasure: Erasure
    last_artifact_delete_time: float
    erased_linked: tuple[str, ...] = ()


class Ecosystem:
    """The customer-facing operations of ProfileService beyond the profile itself.

    Args:
        store: The store.
        retrain_seconds: At most how long until a new model version replaces one that still
            holds an erased customer (the trainer's schedule; the receipt's promise).
    """

    def __init__(self, store: Store, retrain_seconds: float = 24 * 3600.0) -> None:
        self.store = store
        self.retrain_seconds = retrain_seconds

    def _customer(self, shop_id: str, customer_id: str) -> Customer:
        customer = self.store.get_customer(shop_id, customer_id)
        if customer is None:
            if self.store.get_shop(shop_id) is None:
                raise NotFound("shop", shop_name(shop_id))
            raise NotFound("customer", customer_name(shop_id, customer_id))
        return customer

    def _known_or_anonymous(self, shop_id: str, customer_id: str) -> None:
        if is_anonymous(customer_id):
            self.store.ensure_anonymous_customers(shop_id, [customer_id])
        else:
            self._customer(shop_id, customer_id)

    # -- dismissals and tastes ---------------------------------------------------------------

    def undo_dismissal(self, shop_id: str, customer_id: str, item_id: str) -> int:
        self._customer(shop_id, customer_id)
        return self.store.undo_dismissal(shop_id, customer_id, item_id)

    def tastes(self, shop_id: str, customer_id: str) -> tuple[Customer, list[Taste]]:
        """The profile and the top categories and brands of the customer's weighted recent
        history, strongest first, without those the customer dislikes or took back."""
        inputs = self.store.recommend_inputs(shop_id, customer_id, TASTE_HISTORY)
        if inputs is None:
            self._customer(shop_id, customer_id)
            raise NotFound("customer", customer_name(shop_id, customer_id))
        customer = inputs.customer
        history = [i for i in inputs.recent if i.type is not InteractionType.DISMISS]
        items = self.store.get_items(shop_id, {i.item_id for i in history})
        disliked = {
            (p.kind, p.value.casefold())
            for p in customer.preferences
            if p.kind in TASTE_KINDS.values()
        }
        tastes: list[Taste] = []
        for kind, attribute in (
            (PreferenceKind.LIKED_CATEGORY, "category"),
            (PreferenceKind.LIKED_BRAND, "brand"),
        ):
            weights: dict[str, float] = {}
            spelled: dict[str, str] = {}
            evidence: dict[str, list[Interaction]] = {}
            for interaction in history:  # newest first
                item = items.get(interaction.item_id)
                value = getattr(item, attribute) if item is not None else ""
                if not value or (TASTE_KINDS[kind], value.casefold()) in disliked:
                    continue
                key = value.casefold()
                weight = max(to_plugin(interaction, DEFAULT_WEIGHTS).weight, 0.0)
                weights[key] = weights.get(key, 0.0) + weight
                spelled.setdefault(key, value)
                evidence.setdefault(key, []).append(interaction)
            total = sum(weights.values())
            top = sorted(weights, key=lambda k: (-weights[k], k))[:MAX_TASTES]
            tastes.extend(
                Taste(
                    kind,
                    spelled[k],
                    weights[k] / total if total else 0.0,
                    tuple(evidence[k][:MAX_EVIDENCE]),
                )
                for k in top
            )
        return customer, tastes

    def correct_taste(
        self,
        shop_id: str,
        customer_id: str,
        kind: PreferenceKind,
        value: str,
        expire_time: float | None,
    ) -> Customer:
        """ "Not interested any more": records the matching dislike among the customer's stated
        preferences (replacing a like of the same value), which drops the taste from
        `tastes`, stops its history from driving recommendations and ranks it lower."""
        if kind not in TASTE_KINDS:
            raise InvalidArgument("kind", "NOT_A_TASTE", "must be LIKED_CATEGORY or LIKED_BRAND")
        customer = self._customer(shop_id, customer_id)
        key = value.casefold()
        kept = [
            p
            for p in customer.preferences
            if not (p.kind in (kind, TASTE_KINDS[kind]) and p.value.casefold() == key)
        ]
        if len(kept) >= MAX_PREFERENCES:
            raise InvalidArgument("value", "TOO_MANY_ENTRIES", "the profile has 500 preferences")
        kept.append(Preference(TASTE_KINDS[kind], value, expire_time))
        return self.store.update_customer(
            Customer(
                shop_id,
                customer_id,
                customer.attributes,
                customer.exclusions,
                preferences=tuple(kept),
                price_range=customer.price_range,
                anonymous=customer.anonymous,
            )
        )

    # -- consent -----------------------------------------------------------------------------

    def consents(self, shop_id: str, customer_id: str) -> list[Consent]:
        return list(self.store.consents(shop_id, customer_id).values())

    def set_consent(
        self, shop_id: str, customer_id: str, purpose: ConsentPurpose, granted: bool, source: str
    ) -> tuple[Consent, int]:
        self._known_or_anonymous(shop_id, customer_id)
        return self.store.set_consent(shop_id, customer_id, purpose, granted, source)

    def consent_changes(
        self, shop_id: str, customer_id: str, before_seq: int | None, limit: int
    ) -> list[Consent]:
        self._customer(shop_id, customer_id)
        return self.store.list_consent_changes(shop_id, customer_id, before_seq, limit)

    # -- identity ----------------------------------------------------------------------------

    def link(self, shop_id: str, customer_id: str, linked_id: str, source: str) -> IdentityLink:
        if linked_id == customer_id:
            raise InvalidArgument("linked", "SELF_LINK", "must differ from customer")
        self._customer(shop_id, customer_id)
        self._known_or_anonymous(shop_id, linked_id)
        return self.store.link_identity(shop_id, customer_id, linked_id, source)

    def unlink(self, shop_id: str, customer_id: str, linked_id: str) -> bool:
        self._customer(shop_id, customer_id)
        return self.store.unlink_identity(shop_id, customer_id, linked_id)

    def links(self, shop_id: str, customer_id: str, after: str, limit: int) -> list[IdentityLink]:
        self._customer(shop_id, customer_id)
        return self.store.list_identity_links(shop_id, customer_id, after, limit)

    # -- erasure -----------------------------------------------------------------------------

    def erase(self, shop_id: str, customer_id: str) -> Receipt:
        """Erases the customer and the anonymous ids linked to them (the same person's
        devices); a linked known customer is only unlinked. One store transaction per id."""
        devices = [
            link.linked_id
            for link in self.store.list_identity_links(shop_id, customer_id, "", MAX_LINKED)
            if is_anonymous(link.linked_id)
        ]
        erasure = self.store.erase_customer(shop_id, customer_id)
        for device in devices:
            more = self.store.erase_customer(shop_id, device)
            erasure = dataclasses.replace(
                erasure,
                interactions_removed=erasure.interactions_removed + more.interactions_removed,
                consents_removed=erasure.consents_removed + more.consents_removed,
                identity_links_removed=erasure.identity_links_removed + more.identity_links_removed,
                idempotency_records_removed=erasure.idempotency_records_removed
                + more.idempotency_records_removed,
                model_versions_removed=tuple(
                    dict.fromkeys(erasure.model_versions_removed + more.model_versions_removed)
                ),
                model_versions_pending=tuple(
                    dict.fromkeys(erasure.model_versions_pending + more.model_versions_pending)
                ),
            )
        last = erasure.erase_time
        if erasure.model_versions_pending or erasure.profile_removed:
            # A serving version (in the store, in a model folder, or fitted in a replica)
            # may hold the customer until the next fit replaces it.
            last = erasure.erase_time + self.retrain_seconds
        return Receipt(shop_id, customer_id, erasure, last, tuple(devices))


def live_preferences(preferences: Sequence[Preference], now: float) -> list[Preference]:
    return [p for p in preferences if p.expire_time is None or p.expire_time > now]


def check_finite_price(value: float, field: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(field, "INVALID_PRICE", "must be a finite number, not negative")
    return value
