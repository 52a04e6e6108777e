"""The customer's own choices in the request path (issue 11): what they asked never to see
(hard), what they like and dislike and the price range they prefer (a shift of the ranking),
and what their consent allows. Plain Python; imports no grpc.

The pipeline applies these after the merchant's rules and before rotation, variety and
paging, so that nothing upstream (a recommender, a fallback, a rule, a pin, an experiment) can
put back an item the customer excluded. Categories and brands match case-insensitively
(``str.casefold``), item ids exactly; an entry past its ``expire_time`` is ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kosmos.plugin import Interaction as PluginInteraction
from kosmos.store.records import (
    CONSENT_DEFAULTS,
    ConsentPurpose,
    Customer,
    ExclusionKind,
    Item,
    PreferenceKind,
)

if TYPE_CHECKING:
    from kosmos.recommendation.domain import Offer

# How far a preference moves an offer: its position in the list is multiplied by the factors
# that apply, and the list is sorted again (stable). A liked category or brand halves the
# position (offer 10 competes with offer 5); a dislike doubles it; outside the price range
# triples it. Positions, not scores: scores are not comparable across recommenders.
LIKED_FACTOR = 0.5
DISLIKED_FACTOR = 2.0
OUTSIDE_PRICE_FACTOR = 3.0
# Offers whose own reason is this generic get the customer's stated taste as their reason.
GENERIC_KINDS = frozenset({"picked_for_you", "popular", "trending", "new_for_you"})
NON_PERSONAL_REASON = "Popular in our shop"


def _live(expire_time: float | None, now: float) -> bool:
    return expire_time is None or expire_time > now


@dataclass(frozen=True, slots=True)
class Choices:
    """One customer's choices as they stand at ``now``.

    Attributes:
        item_ids: Items never to show (exact ids).
        categories: Categories never to show (casefolded).
        brands: Brands never to show (casefolded).
        liked: Liked categories and brands, casefolded, by kind.
        disliked: Disliked categories and brands, casefolded, by kind.
        price: The preferred (low, high) price; 0 means no bound. None: no range.
        personal: Whether the customer allows personalization: without it only the
            exclusions apply (a restriction the customer asked for), no preference.
    """

    item_ids: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    brands: frozenset[str] = frozenset()
    liked_categories: Mapping[str, str] = dataclasses.field(default_factory=dict)
    liked_brands: Mapping[str, str] = dataclasses.field(default_factory=dict)
    disliked_categories: frozenset[str] = frozenset()
    disliked_brands: frozenset[str] = frozenset()
    price: tuple[float, float] | None = None
    personal: bool = True

    @classmethod
    def of(
        cls,
        customer: Customer | None,
        now: float,
        consents: Mapping[ConsentPurpose, bool] | None = None,
    ) -> Choices:
        """The unexpired choices of ``customer`` (None: nobody's)."""
        personal = personalization_allowed(consents or {})
        if customer is None:
            return cls(personal=personal)
        exclusions = [e for e in customer.exclusions if _live(e.expire_time, now)]
        preferences = [p for p in customer.preferences if _live(p.expire_time, now)]
        price = None
        if customer.price_range is not None and _live(customer.price_range.expire_time, now):
            price = (customer.price_range.min_price, customer.price_range.max_price)

        def stated(kind: PreferenceKind) -> dict[str, str]:
            return {p.value.casefold(): p.value for p in preferences if p.kind is kind}

        return cls(
            item_ids=frozenset(e.value for e in exclusions if e.kind is ExclusionKind.ITEM),
            categories=frozenset(
                e.value.casefold() for e in exclusions if e.kind is ExclusionKind.CATEGORY
            ),
            brands=frozenset(
                e.value.casefold() for e in exclusions if e.kind is ExclusionKind.BRAND
            ),
            liked_categories=stated(PreferenceKind.LIKED_CATEGORY),
            liked_brands=stated(PreferenceKind.LIKED_BRAND),
            disliked_categories=frozenset(stated(PreferenceKind.DISLIKED_CATEGORY)),
            disliked_brands=frozenset(stated(PreferenceKind.DISLIKED_BRAND)),
            price=price,
            personal=personal,
        )

    def restrictions_only(self) -> Choices:
        """The exclusions alone, without the preferences."""
        return Choices(self.item_ids, self.categories, self.brands, personal=self.personal)

    def excludes(self, item: Item) -> bool:
        """Whether the customer asked never to be shown ``item``."""
        return (
            item.item_id in self.item_ids
            or (bool(item.category) and item.category.casefold() in self.categories)
            or (bool(item.brand) and item.brand.casefold() in self.brands)
        )

    def leaning(self, item: Item) -> tuple[float, str]:
        """The factor on the item's position and, for a like, the reason in words."""
        if not self.personal:
            return 1.0, ""
        factor, why = 1.0, ""
        category, brand = item.category.casefold(), item.brand.casefold()
        if category and category in self.liked_categories:
            factor *= LIKED_FACTOR
            why = f"Because you told us you like {self.liked_categories[category]}"
        if brand and brand in self.liked_brands:
            factor *= LIKED_FACTOR
            why = why or f"Because you told us you like {self.liked_brands[brand]}"
        if category and category in self.disliked_categories:
            factor *= DISLIKED_FACTOR
        if brand and brand in self.disliked_brands:
            factor *= DISLIKED_FACTOR
        if self.price is not None:
            low, high = self.price
            if (low and item.price < low) or (high and item.price > high):
                factor *= OUTSIDE_PRICE_FACTOR
        return factor, why

    def describe(self, item: Item) -> list[str]:
        """The stated choices that move ``item``, in words (`Explain`)."""
        if not self.personal:
            return ["You have not allowed personalization: offers are not personal"]
        said = []
        category, brand = item.category.casefold(), item.brand.casefold()
        if category and category in self.liked_categories:
            said.append(f"You like {self.liked_categories[category]}: ranked higher")
        if brand and brand in self.liked_brands:
            said.append(f"You like {self.liked_brands[brand]}: ranked higher")
        if category and category in self.disliked_categories:
            said.append(f"You are not interested in {item.category}: ranked lower")
        if brand and brand in self.disliked_brands:
            said.append(f"You are not interested in {item.brand}: ranked lower")
        if self.price is not None:
            low, high = self.price
            if (low and item.price < low) or (high and item.price > high):
                said.append("Outside the price range you prefer: ranked lower")
        return said

    def history(
        self, recent: Sequence[PluginInteraction], items: Mapping[str, Item]
    ) -> list[PluginInteraction]:
        """The history that may drive recommendations: without personalization none; else
        without the events on categories and brands the customer disliked or took back
        ("not interested any more", `kosmos.profile.tastes`)."""
        if not self.personal:
            return []
        if not (self.disliked_categories or self.disliked_brands):
            return list(recent)

        def counts(i: PluginInteraction) -> bool:
            item = items.get(i.item_id)
            if item is None:
                return True
            return (
                item.category.casefold() not in self.disliked_categories
                and item.brand.casefold() not in self.disliked_brands
            )

        return [i for i in recent if counts(i)]

    def apply(self, offers: Sequence[Offer]) -> list[Offer]:
        """Drops what the customer excluded, then lets their preferences move the rest."""
        excluding = bool(self.item_ids or self.categories or self.brands)
        leaning = bool(
            self.liked_categories
            or self.liked_brands
            or self.disliked_categories
            or self.disliked_brands
            or self.price is not None
        )
        if self.personal and not excluding and not leaning:  # most customers: nothing stated
            return list(offers)
        kept = [o for o in offers if not self.excludes(o.item)] if excluding else list(offers)
        if not self.personal:
            return [
                dataclasses.replace(o, kind="non_personal", reason=NON_PERSONAL_REASON, evidence=())
                for o in kept
            ]
        ranked: list[tuple[float, int, Offer]] = []
        for position, offer in enumerate(kept):
            factor, why = self.leaning(offer.item)
            if why and offer.kind in GENERIC_KINDS:
                offer = dataclasses.replace(offer, kind="you_told_us", reason=why, evidence=())
            ranked.append(((position + 1) * factor, position, offer))
        ranked.sort(key=lambda r: (r[0], r[1]))
        return [o for _, _, o in ranked]


def personalization_allowed(consents: Mapping[ConsentPurpose, bool]) -> bool:
    return consents.get(
        ConsentPurpose.PERSONALIZATION, CONSENT_DEFAULTS[ConsentPurpose.PERSONALIZATION]
    )


def training_allowed(consents: Mapping[ConsentPurpose, bool]) -> bool:
    return consents.get(ConsentPurpose.TRAINING, CONSENT_DEFAULTS[ConsentPurpose.TRAINING])
