"""The synthetic shop: seeded, sized, and with the structure recommenders need."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict

import numpy as np
import pytest

from kosmos.datasets import generate, plan, write
from kosmos.datasets.__main__ import main as write_dataset
from kosmos.datasets.synthetic import BLOCK
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


def test_popularity_is_skewed_within_each_category(shop):
    # Zipf: a category's best seller (its first item) is viewed more than its median item.
    big = generate(customers=1500, items=200, seed=5)
    views = Counter(i.item_id for i in big.interactions if i.type is InteractionType.VIEW)
    per_category: dict[str, list[str]] = defaultdict(list)
    for item in big.items:
        per_category[item.category].append(item.item_id)
    for ids in per_category.values():
        counts = [views[i] for i in ids]
        assert counts[0] > 3 * sorted(counts)[len(counts) // 2]


def test_customers_prefer_items_of_their_own_style():
    # Within a category, what a customer views leans toward their liking for the hidden styles:
    # the affinity of viewed items beats that of the category's items weighted by popularity.
    p = plan(customers=800, items=100, seed=2)
    events = np.concatenate(list(p.events()))
    views = events[events["type"] == int(InteractionType.VIEW)]
    affinity = np.einsum("nd,nd->n", p.styles[views["item"]], p.liking[views["customer"]])
    shuffled = np.random.default_rng(0).permutation(views["item"])  # same popularity mix
    baseline = np.einsum("nd,nd->n", p.styles[shuffled], p.liking[views["customer"]])
    assert affinity.mean() > baseline.mean() + 0.5


def test_companions_are_bought_together_and_volume_is_realistic(shop):
    purchases = {
        (i.customer_id, round(i.time, 3)): i.item_id
        for i in shop.interactions
        if i.type is InteractionType.PURCHASE
    }
    companion_buys = sum((c, round(t + 1.0, 3)) in purchases for c, t in purchases)
    assert companion_buys > 0.05 * len(purchases)
    assert 20 <= len(shop.interactions) / len(shop.customers) <= 45


def test_bad_sizes_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="positive"):
        generate(customers=0)
    assert write_dataset(["--customers", "10", "--sessions", "0", "--out", str(tmp_path)]) == 2
    assert "sessions_per_customer must be positive" in capsys.readouterr().err


def _rows(shop_rows):
    out = []
    for row in shop_rows:
        record = asdict(row)
        if "type" in record:
            record["type"] = row.type.name.lower()
        out.append(record)
    return out


def test_streamed_files_are_the_shop_generate_returns(tmp_path):
    # Several blocks of customers, several part files and several time windows: the streaming
    # merge must give exactly the in-memory shop, in the same order.
    args = {"customers": 2 * BLOCK + 300, "items": 40, "seed": 9, "sessions_per_customer": 1.0}
    counts = write(tmp_path, spill=1000, window=3000, **args)
    shop = generate(**args)
    read = {
        kind: [json.loads(line) for line in (tmp_path / f"{kind}.jsonl").read_text().splitlines()]
        for kind in ("items", "customers", "interactions")
    }
    assert read["items"] == _rows(shop.items)
    assert read["customers"] == _rows(shop.customers)
    assert read["interactions"] == _rows(shop.interactions)
    assert counts["interactions"] == len(shop.interactions) > 10 * BLOCK
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "customers.jsonl",
        "interactions.jsonl",
        "items.jsonl",
    ]  # the part files are gone


def test_the_command_writes_what_generate_returns(tmp_path):
    assert (
        write_dataset(["--customers", "60", "--items", "30", "--seed", "4", "--out", str(tmp_path)])
        == 0
    )
    shop = generate(customers=60, items=30, seed=4)
    lines = (tmp_path / "interactions.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == _rows(shop.interactions)


def test_sessions_spread_over_the_whole_period():
    # Customers start shopping at any time: some only in the last half (cold in a temporal
    # split), and events are spread evenly over the days.
    shop = generate(customers=400, items=60, seed=4)
    middle = (shop.start_time + shop.end_time) / 2
    first: dict[str, float] = {}
    for i in shop.interactions:
        first.setdefault(i.customer_id, i.time)
    assert sum(t > middle for t in first.values()) > 0.03 * len(first)
    late = sum(i.time > middle for i in shop.interactions)
    assert 0.4 < late / len(shop.interactions) < 0.6
