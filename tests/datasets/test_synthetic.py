"""The synthetic shop: seeded, sized, and with the structure recommenders need."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from kosmos.datasets import generate
from kosmos.store.records import InteractionType


@pytest.fixture(scope="module")
def shop():
    return generate(customers=150, items=80, seed=3)


def test_same_seed_same_shop(shop):
    again = generate(customers=150, items=80, seed=3)
    assert again.interactions == shop.interactions and again.items == shop.items
    assert generate(customers=150, items=80, seed=4).interactions != shop.interactions


def test_sizes_and_time_order(shop):
    assert len(shop.customers) == 150 and len(shop.items) == 80
    times = [i.time for i in shop.interactions]
    assert times == sorted(times) and shop.start_time <= times[0] and times[-1] <= shop.end_time


def test_funnel_repeat_purchases_and_dismissals(shop):
    kinds = Counter(i.type for i in shop.interactions)
    assert (
        kinds[InteractionType.VIEW] > kinds[InteractionType.CLICK] > kinds[InteractionType.PURCHASE]
    )
    assert kinds[InteractionType.DISMISS] > 0
    bought = Counter(
        (i.customer_id, i.item_id) for i in shop.interactions if i.type is InteractionType.PURCHASE
    )
    assert any(n > 1 for n in bought.values()), "no repeat purchases"


def test_attributes_predict_taste(shop):
    # Customers sharing a country should share favourite categories more than strangers do.
    category = {i.item_id: i.category for i in shop.items}
    country = {c.customer_id: c.attributes["country"] for c in shop.customers}
    favourite: dict[str, Counter] = defaultdict(Counter)
    for i in shop.interactions:
        favourite[country[i.customer_id]][category[i.item_id]] += 1
    tops = {c: counts.most_common(1)[0][0] for c, counts in favourite.items()}
    assert len(set(tops.values())) > 1, "every country likes the same category: no signal"


def test_titles_are_unique(shop):
    # Reasons name items by title ("Because you bought ..."): two items must not share one.
    titles = [i.title for i in generate(customers=5, items=400, seed=1).items]
    assert len(set(titles)) == len(titles)
