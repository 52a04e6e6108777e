"""The seen-item policy: what a customer already has is not offered again in "for you", unless
it is something people buy again.

A shop sells two kinds of things. Some are bought once (a kettle, a film one has rated): offering
them again wastes a slot. Others are bought again and again (tea, printer ink, the gift-ware a
retailer restocks): offering them is the best thing to do. The policy decides per item, from the
shop's own data (`learn_repeatable`: the share of an item's buyers who bought it on more than one
occasion) or from configuration, and the service and ``kosmos evaluate`` both apply it through
`SeenPolicy.excluded`, so offline figures describe what a shopper receives. A shop sets its
own policy through ``ShopSettingsService`` (`kosmos.shopconfig`); the cluster's comes from
``KOSMOS_OWNED_INTERACTIONS``, ``KOSMOS_REPEAT_PURCHASE``, ``KOSMOS_REPURCHASE_THRESHOLD``,
``KOSMOS_REPEATABLE_ITEMS`` and ``KOSMOS_REPEATABLE_CATEGORIES``.

Placements in ``free_placements`` (``buy_again`` by default) skip the policy: there, what the
customer has is exactly what is wanted. Dismissed items are never offered anywhere; that is not
this policy's business but a hard filter of the service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from kosmos.plugin import Interaction, InteractionType

__all__ = ["OWNED_DEFAULT", "Repeat", "SeenPolicy", "learn_repeatable"]

OWNED_DEFAULT = frozenset({InteractionType.PURCHASE, InteractionType.RATING})
"""The interaction kinds after which a customer "has" an item: bought it, or rated it."""

# Two purchases of one item closer than this are one occasion (one basket split in two lines).
_SAME_OCCASION_SECONDS = 3600.0


class Repeat(StrEnum):
    """Which owned items may come back."""

    LEARNED = "learned"
    """Items whose repurchase rate in the shop's data reaches the policy's threshold."""
    ALWAYS = "always"
    """Every owned item may come back (a grocery shop)."""
    NEVER = "never"
    """No owned item comes back (a film catalogue)."""


@dataclass(frozen=True, slots=True)
class SeenPolicy:
    """A shop's seen-item policy (``KOSMOS_OWNED_INTERACTIONS`` and friends, or the shop's own
    `ShopSettingsService` settings).

    Attributes:
        owned_types: Interaction kinds after which the customer has the item.
        repeat_purchase: Which owned items may come back (`Repeat`).
        repurchase_threshold: With ``learned``: the share of an item's buyers who bought it on
            more than one occasion at which it counts as bought again.
        min_buyers: With ``learned``: items with fewer buyers are judged by their category's
            rate (or not repeatable when the category has too few buyers as well).
        repeatable_item_ids: Items that may always come back, whatever was learned.
        repeatable_categories: Categories whose items may always come back.
        free_placements: Placements where owned items are wanted (``buy_again``).
    """

    owned_types: frozenset[InteractionType] = OWNED_DEFAULT
    repeat_purchase: Repeat = Repeat.LEARNED
    repurchase_threshold: float = 0.1
    min_buyers: int = 5
    repeatable_item_ids: frozenset[str] = frozenset()
    repeatable_categories: frozenset[str] = frozenset()
    free_placements: frozenset[str] = frozenset({"buy_again"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.repurchase_threshold <= 1.0:
            raise ValueError("repurchase_threshold must be between 0 and 1")
        if self.min_buyers < 1:
            raise ValueError("min_buyers must be at least 1")
        object.__setattr__(self, "repeat_purchase", Repeat(self.repeat_purchase))

    def offered_again(self, item_id: str, category: str, learned: bool) -> bool:
        """Whether an item the customer owns may be offered to them again.

        Args:
            item_id: The owned item.
            category: Its category.
            learned: Whether `learn_repeatable` found the shop's customers buy it again.
        """
        if item_id in self.repeatable_item_ids or category in self.repeatable_categories:
            return True
        if self.repeat_purchase is Repeat.ALWAYS:
            return True
        return self.repeat_purchase is Repeat.LEARNED and learned

    def excluded(
        self,
        owned_item_ids: Iterable[str],
        learned: frozenset[str],
        placement: str = "",
        category_of: Callable[[str], str] = lambda item_id: "",
    ) -> frozenset[str]:
        """What of ``owned_item_ids`` must not be offered at ``placement``.

        Args:
            owned_item_ids: Items the customer has (an interaction of a kind in
                ``owned_types``).
            learned: The items `learn_repeatable` found to be bought again in this shop.
            placement: The request's placement.
            category_of: An item's category (for ``repeatable_categories``).
        """
        if placement in self.free_placements or self.repeat_purchase is Repeat.ALWAYS:
            return frozenset()
        return frozenset(
            i
            for i in owned_item_ids
            if not self.offered_again(
                i, category_of(i) if self.repeatable_categories else "", i in learned
            )
        )


@dataclass(slots=True)
class _Tally:
    buyers: int = 0
    repeaters: int = 0


def learn_repeatable(
    interactions: Iterable[Interaction],
    policy: SeenPolicy,
    categories: Mapping[str, str] | None = None,
) -> frozenset[str]:
    """The items this shop's customers buy again, by the policy's rate.

    An item's repurchase rate is the share of its buyers who bought it on two or more occasions
    (purchases an hour or more apart). Items with fewer than ``min_buyers`` buyers take their
    category's rate, so a new tea flavour counts as repeatable where tea is.

    Args:
        interactions: The shop's interactions, in any order.
        policy: Supplies ``repurchase_threshold`` and ``min_buyers``.
        categories: Item id → category, for items with few buyers.
    """
    purchases: dict[tuple[str, str], list[float]] = {}
    for i in interactions:
        if i.type is InteractionType.PURCHASE:
            purchases.setdefault((i.customer_id, i.item_id), []).append(i.time)
    items: dict[str, _Tally] = {}
    for (_customer, item), times in purchases.items():
        times.sort()
        occasions, last = 0, float("-inf")
        for t in times:
            if t - last >= _SAME_OCCASION_SECONDS:
                occasions += 1
                last = t
        tally = items.setdefault(item, _Tally())
        tally.buyers += 1
        tally.repeaters += occasions > 1
    by_category: dict[str, _Tally] = {}
    for item, tally in items.items():
        category = (categories or {}).get(item, "")
        if category:
            c = by_category.setdefault(category, _Tally())
            c.buyers += tally.buyers
            c.repeaters += tally.repeaters
    repeatable = set()
    for item, tally in items.items():
        if tally.buyers < policy.min_buyers:
            tally = by_category.get((categories or {}).get(item, ""), tally)
        if (
            tally.buyers >= policy.min_buyers
            and tally.repeaters >= policy.repurchase_threshold * tally.buyers
        ):
            repeatable.add(item)
    return frozenset(repeatable)
