"""What the trainer reads (`kosmos.training.data.training_data`): the plugins' view of the
store, with one string per id (issue 12: a big shop's events held each id again)."""

from __future__ import annotations

import time

from kosmos.plugin.signals import Weights, to_plugin
from kosmos.store.records import Customer, Interaction, InteractionType, Item, Shop
from kosmos.training.data import training_data


def test_events_are_the_plugins_view_and_share_one_string_per_id(store):
    store.create_shop(Shop("acme"))
    store.upsert_items([Item("acme", "i1"), Item("acme", "i2")])
    store.create_customer(Customer("acme", "alice"))
    store.create_customer(Customer("acme", "guest"))
    now = time.time()
    events = [
        Interaction("acme", "alice", "i1", InteractionType.VIEW, now - 3),
        Interaction("acme", "alice", "i2", InteractionType.PURCHASE, now - 2, value=2.0),
        Interaction("acme", "alice", "i1", InteractionType.RATING, now - 1, value=4.0),
        Interaction("acme", "guest", "i1", InteractionType.CLICK, now, channel="app"),
    ]
    store.record_interactions("acme", "r1", "h", events)
    weights = Weights(purchase=5.0)
    data = training_data(store, "acme", now + 10, weights)
    stored = list(store.iter_interactions("acme"))
    assert data.interactions == [to_plugin(i, weights) for i in stored]
    first, _, third, fourth = data.interactions
    assert first.customer_id is third.customer_id
    assert first.item_id is third.item_id is fourth.item_id
    assert first.item_id is next(i for i in data.item_ids if i == "i1")  # the catalog's own
