"""A shop's training data, read from the store in the shape plugins take."""

from __future__ import annotations

from kosmos.plugin import Interaction as PluginInteraction
from kosmos.plugin import TrainingData
from kosmos.plugin.features import item_features
from kosmos.plugin.signals import DEFAULT_WEIGHTS, WEIGHTS, Weights
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
    types, default, rating = _TYPES, weights is DEFAULT_WEIGHTS, InteractionType.RATING
    out: list[PluginInteraction] = []
    append = out.append
    for customer, item, number, value, at, channel, device, _seq in store.iter_training_rows(
        shop_id
    ):
        kind = types[number]
        if default:
            w = value if kind is rating else WEIGHTS[kind]
        else:
            w = weights.of(kind, value)
        append(
            PluginInteraction(
                ids.setdefault(customer, customer),
                ids.setdefault(item, item),
                kind,
                w,
                at,
                value,
                channel,
                device,
            )
        )
    return out


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
