"""Rotation: offers a customer was shown and ignored sink for them (issue 13).

An impression (`FeedbackService.RecordImpressions`) is never a positive signal: it never
reaches a recommender. Here it counts against an item: each list that showed the item, and
after which the customer did nothing with it (no click, cart, purchase or rating at or after
the impression), adds ``0.5 ** (age / IMPRESSION_HALF_LIFE_HOURS)``, so an impression an hour
old weighs nearly 1 and one two days old 0.5. An item with ignored weight ``w`` is placed as if
it ranked ``strength × w`` places lower than it does.

``strength`` is the customer's novelty preference times `MAX_STRENGTH` (10 places per fresh
ignored impression at preference 1, 5 at the default 0.5). The preference is
stated in the profile (attribute ``novelty``, 0 to 1: 0 turns rotation off for them, 1 rotates
hardest), or else learned from dismissals: ``0.5 + 0.5 × d / (d + 10)`` for ``d`` dismissed
items, so a customer who keeps saying "not for me" sees shown-and-ignored items sink faster.

Plain Python; imports no grpc.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kosmos.plugin import Interaction as PluginInteraction
from kosmos.store.records import Impression, InteractionType

IMPRESSION_HALF_LIFE_HOURS = 48.0
"""Half-life of an ignored impression's weight."""
HORIZON_HALF_LIVES = 4
"""Impressions older than this many half-lives (8 days) are not read."""
MAX_STRENGTH = 10.0
"""Places an item sinks per fresh ignored impression at novelty preference 1."""
NOVELTY_ATTRIBUTE = "novelty"
"""The profile attribute a customer states their novelty preference in (0 to 1)."""
ENGAGED = frozenset(
    {
        InteractionType.CLICK,
        InteractionType.ADD_TO_CART,
        InteractionType.PURCHASE,
        InteractionType.RATING,
    }
)


def horizon(now: float) -> float:
    """The oldest impression time that still counts."""
    return now - HORIZON_HALF_LIVES * IMPRESSION_HALF_LIFE_HOURS * 3600.0


def novelty(attributes: Mapping[str, str], dismissed: int) -> float:
    """The customer's novelty preference, 0 to 1: stated, or learned from dismissals."""
    stated = attributes.get(NOVELTY_ATTRIBUTE)
    if stated is not None:
        try:
            value = float(stated)
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return min(1.0, max(0.0, value))
    return 0.5 + 0.5 * dismissed / (dismissed + 10)


def ignored_weights(
    impressions: Iterable[Impression], recent: Sequence[PluginInteraction], now: float
) -> dict[str, float]:
    """Item id → decayed weight of the lists that showed it and were ignored."""
    engaged: dict[str, float] = {}  # item -> the latest engagement time
    for i in recent:
        if i.type in ENGAGED:
            engaged[i.item_id] = max(engaged.get(i.item_id, 0.0), i.time)
    half_life = IMPRESSION_HALF_LIFE_HOURS * 3600.0
    weights: dict[str, float] = {}
    for shown in impressions:
        if shown.event_time > now or engaged.get(shown.item_id, -1.0) >= shown.event_time:
            continue
        age = now - shown.event_time
        weights[shown.item_id] = weights.get(shown.item_id, 0.0) + 0.5 ** (age / half_life)
    return weights


def rotate(offers: list[Any], weights: Mapping[str, float], strength: float) -> list[Any]:
    """Reorders ``offers`` (each with ``item.item_id``), best first, so that ignored items sink;
    stable for items never shown."""
    if not weights or strength <= 0.0:
        return offers
    keyed = [
        (rank + strength * weights.get(o.item.item_id, 0.0), rank, o)
        for rank, o in enumerate(offers)
    ]
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [o for _, _, o in keyed]
