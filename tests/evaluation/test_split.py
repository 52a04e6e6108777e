"""Splits: what trains, what tests, who is warm and who is cold."""

from __future__ import annotations

import pytest

from kosmos.datasets import generate
from kosmos.evaluation import (
    quantile_cutoff,
    random_split,
    synthetic,
    temporal_split,
)
from kosmos.plugin import Interaction, InteractionType

P, V, D = InteractionType.PURCHASE, InteractionType.VIEW, InteractionType.DISMISS


def i(customer, item, time, kind=P, weight=1.0):
    return Interaction(customer, item, kind, weight, float(time))


LOG = [
    i("ann", "a", 1),
    i("ann", "b", 2),
    i("bob", "a", 3),
    i("bob", "z", 4, D, 0.0),
    # cutoff at 10
    i("ann", "a", 10),  # bought again: not new
    i("ann", "c", 11),
    i("bob", "z", 12),  # dismissed before: not new either
    i("bob", "d", 13, V),
    i("cid", "a", 14),  # first seen after the cutoff: cold
    i("cid", "e", 15, D, 0.0),  # a dismissal is no positive
    i("dan", "f", 16, D, 0.0),  # only a dismissal: not a test customer
]


def test_temporal_split_by_hand():
    split = temporal_split(LOG, 10.0)
    assert split.train == LOG[:4]
    assert split.test == {"ann": {"c"}, "bob": {"d"}, "cid": {"a"}}
    assert split.warm == {"ann", "bob"} and split.cold == {"cid"}
    assert split.now == 10.0 and split.new_items_only and split.test_pairs == 3


def test_temporal_split_with_repeats():
    split = temporal_split(LOG, 10.0, new_items_only=False)
    assert split.test == {"ann": {"a", "c"}, "bob": {"z", "d"}, "cid": {"a"}}


def test_temporal_split_with_a_custom_signal():
    split = temporal_split(LOG, 10.0, relevant=lambda x: x.type is P)
    assert split.test == {"ann": {"c"}, "cid": {"a"}}


def test_quantile_cutoff():
    times = [i("c", "x", t) for t in range(10)]
    assert quantile_cutoff(times, 0.8) == 8.0
    assert len(temporal_split(times, quantile_cutoff(times, 0.8)).train) == 8
    with pytest.raises(ValueError):
        quantile_cutoff([], 0.8)
    with pytest.raises(ValueError):
        quantile_cutoff(times, 1.0)


def _check_properties(interactions, split):
    history: dict[str, set[str]] = {}
    for x in split.train:
        history.setdefault(x.customer_id, set()).add(x.item_id)
    assert split.warm | split.cold == set(split.test) and not split.warm & split.cold
    assert all(items for items in split.test.values())
    for customer, items in split.test.items():
        # New items only: nothing tested that the customer had touched in training.
        assert not items & history.get(customer, set())
    assert not split.cold & set(history)  # cold customers have no training rows
    assert split.warm <= set(history)
    assert len(split.train) <= len(interactions)


def test_temporal_split_properties_on_the_synthetic_shop():
    shop = synthetic(customers=120, items=40, seed=5)
    cutoff = quantile_cutoff(shop.interactions, 0.8)
    split = temporal_split(shop.interactions, cutoff)
    _check_properties(shop.interactions, split)
    assert (
        max(x.time for x in split.train)
        < cutoff
        <= min(x.time for x in shop.interactions[len(split.train) :])
    )
    assert [x.time for x in split.train] == sorted(x.time for x in split.train)
    assert 0.75 < len(split.train) / len(shop.interactions) <= 0.8
    assert split.warm and split.test_pairs > len(split.test)


def test_random_split_holds_out_cold_customers():
    log = [i(f"c{c}", f"x{(c * 7 + n) % 30}", c * 100 + n) for c in range(50) for n in range(20)]
    split = random_split(log, test_share=0.2, cold_share=0.1, seed=42)
    _check_properties(log, split)
    assert len(split.cold) == 5  # every rating of a held-out customer is test
    assert 0.65 < len(split.train) / len(log) < 0.8
    assert split.now == max(x.time for x in split.train)
    again = random_split(log, test_share=0.2, cold_share=0.1, seed=42)
    assert again.train == split.train and again.test == split.test
    assert random_split(log, seed=43).train != split.train
    assert not random_split(log, cold_share=0.0).cold


def test_random_split_rejects_bad_shares():
    with pytest.raises(ValueError):
        random_split(LOG, test_share=0.0)
    with pytest.raises(ValueError):
        random_split(LOG, cold_share=1.0)


def test_synthetic_weights_are_the_services():
    shop = generate(customers=20, items=20, seed=1)
    data = synthetic(customers=20, items=20, seed=1)
    assert len(data.interactions) == len(shop.interactions)
    by_type = {x.type: x.weight for x in data.interactions if x.type is not InteractionType.RATING}
    assert by_type[V] == 1.0 and by_type[P] == 8.0
    assert all(x.weight == x.value for x in data.interactions if x.type is InteractionType.RATING)
    assert data.item_features["sku-00000"]["category"] and data.customer_features["c-00000"]
