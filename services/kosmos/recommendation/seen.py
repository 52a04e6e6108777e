"""The seen-item policy: what a customer already has is not offered again in "for you", unless
it is something people buy again.

A shop sells two kinds of things. Some are bought once (a kettle, a film one has rated): offering
them again wastes a slot. Others are bought again and again (tea, printer ink, the gift-ware a
retailer restocks): offering them is the best thing to do. The policy decides per item, from the
shop's own data (`learn_repeatable`: the share of an item's buyers who bought it on more than one
occasion) or from configuration, and the service and ``kosmos evaluate`` both apply it through
`SeenPolicy.excluded`, so offline figures describe what a shopper receives.

Placements in ``free_placements`` (``buy_again`` by default) skip the policy: there, what the
customer has is exactly what is wanted. Dismissed items are never offered anywhere; that is not
this policy's business but a hard filter of the service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    """Items whose repurchase rate in the shop's data reaches ``SeenPolicy.repeat_rate``."""
    ALWAYS = "always"
    """Every owned item may come back (a grocery shop)."""
    NEVER = "never"
    """No owned item comes back (a film catalogue)."""


@dataclass(frozen=True, slots=True)
class SeenPolicy:
    """A shop's seen-item policy.

    Attributes:
        owned: Interaction kinds after which the customer has the item.
        repeat: Which owned items may come back (`Repeat`).
        repeat_rate: With ``learned``: the share of an item's buyers who bought it on more than
            one occasion at which it counts as bought again.
        min_buyers: With ``learned``: items with fewer buyers are judged by their category's rate
            (or not repeatable when the category has too few buyers as well).
        repeatable_item_ids: Items that may always come back, whatever was learned.
        free_placements: Placements where owned items are wanted (``buy_again``).
    """

    owned: frozenset[InteractionType] = OWNED_DEFAULT
    repeat: Repeat = Repeat.LEARNED
    repeat_rate: float = 0.1
    min_buyers: int = 5
    repeatable_item_ids: frozenset[str] = frozenset()
    free_placements: frozenset[str] = frozenset({"buy_again"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.repeat_rate <= 1.0:
            raise ValueError("repeat_rate must be between 0 and 1")
        if self.min_buyers < 1:
            raise ValueError("min_buyers must be at least 1")

    def excluded(
        self, owned_item_ids: Iterable[str], learned: frozenset[str], placement: str = ""
    ) -> frozenset[str]:
        """What of ``owned_item_ids`` must not be offered at ``placement``.

        Args:
            owned_item_ids: Items the customer has (an interaction of a kind in ``owned``).
            learned: The items `learn_repeatable` found to be bought again in this shop.
            placement: The request's placement.
        """
        if placement in self.free_placements or self.repeat is Repeat.ALWAYS:
            return frozenset()
        owned = frozenset(owned_item_ids)
        if self.repeat is Repeat.NEVER:
            return owned - self.repeatable_item_ids
        return owned - learned - self.repeatable_item_ids


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
        policy: Supplies ``repeat_rate`` and ``min_buyers``.
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
            and tally.repeaters >= policy.repeat_rate * tally.buyers
        ):
            repeatable.add(item)
    return frozenset(repeatable)
