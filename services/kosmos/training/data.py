"""A shop's training data, read from the store in the shape plugins take."""

from __future__ import annotations

from kosmos.plugin import Interaction as PluginInteraction
from kosmos.plugin import TrainingData
from kosmos.plugin.features import item_features
from kosmos.plugin.signals import DEFAULT_WEIGHTS, Weights, weight
from kosmos.store import Store
from kosmos.store.records import InteractionType

PAGE = 1000


_TYPES = {int(t): t for t in InteractionType}


def _interactions(
    store: Store, shop_id: str, weights: Weights, ids: dict[str, str]
) -> list[PluginInteraction]:
    """The shop's interactions as plugins take them, built straight from the store's plain
    rows (`Store.iter_training_rows`): one object per event, not two (issue 12: a
    22.7M-event shop's trainer spent most of its time building them)."""
    types = _TYPES
    out: list[PluginInteraction] = []
    append = out.append
    for customer, item, number, value, at, channel, device, _seq in store.iter_training_rows(
        shop_id
    ):
        kind = types[number]
        append(
            PluginInteraction(
                ids.setdefault(customer, customer),
                ids.setdefault(item, item),
                kind,
                weight(kind, value, weights),
                at,
                value,
                channel,
                device,
            )
        )
    return out


def catalog_features(store: Store, shop_id: str) -> dict[str, dict[str, str]]:
    """Item id → its features (`kosmos.plugin.features.item_features`), for the whole
    catalog, read a page at a time."""
    items: dict[str, dict[str, str]] = {}
    after = ""
    while batch := store.list_items(shop_id, after, PAGE):
        for item in batch:
            items[item.item_id] = item_features(
                item.attributes,
                title=item.title,
                category=item.category,
                brand=item.brand,
                price=item.price,
            )
        after = batch[-1].item_id
    return items


def training_data(
    store: Store, shop_id: str, now: float, weights: Weights = DEFAULT_WEIGHTS
) -> TrainingData:
    """Everything a recommender fits on for one shop, read from the store.

    The fit's ``now`` is the newest event time (never later than ``now``): a shop whose
    history was imported from last year is fresh at its own last day, not stale by the clock.
    Item features come from `kosmos.plugin.features.item_features` (words of the title and of
    free-text attributes, category, brand, price and price band), exactly as ``kosmos
    evaluate`` builds them. ``weights`` are the shop's (`kosmos.shopconfig`).
    """
    items = catalog_features(store, shop_id)
    customers: dict[str, dict[str, str]] = {}
    after = ""
    while page := store.list_customers(shop_id, after, PAGE):
        customers.update((c.customer_id, dict(c.attributes)) for c in page)
        after = page[-1].customer_id
    # One string per customer and item id, not one per event (each row read brings its own
    # copies): half the memory of a big shop's interactions (217 to 109 bytes an event at 22
    # events per customer; issue 12, the 1M-customer shop).
    ids = {k: k for k in items}
    ids.update((k, k) for k in customers)
    interactions = _interactions(store, shop_id, weights, ids)
    newest = max((i.time for i in interactions), default=now)
    return TrainingData(
        interactions=interactions,
        item_ids=list(items),
        customer_features=customers,
        item_features=items,
        now=min(now, newest),
        shop_id=shop_id,
    )
