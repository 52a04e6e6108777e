"""The served path, offline: every test customer asks `Recommendations.recommend` — the domain
code behind the ``Recommend`` RPC — what a shopper would get.

The data set's training part goes into a real store (a temporary SQLite file: catalog, profiles
and every training interaction), the models `kosmos.evaluation.runner` fitted are put into
service on a `ModelHub`, and each test customer is asked for one page at the split's ``now``
(``request_time``). Routing, the seen-item policy, stock and customer exclusions, variety and
reasons all run as they do for a shopper; only the gRPC hop is left out (``make bench-quality``
adds it back). Scoring these rankings beside the plugins' own answers shows what the service
adds or costs.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kosmos.evaluation.datasets import CatalogEntry, Dataset
from kosmos.evaluation.split import Split
from kosmos.plugin import Recommender, TrainingData
from kosmos.plugin.routing import Routing
from kosmos.recommendation.domain import Context, Recommendations
from kosmos.recommendation.models import ModelHub
from kosmos.recommendation.seen import SeenPolicy
from kosmos.store import SQLiteStore, Store
from kosmos.store.records import Customer, Interaction, Item, Shop

__all__ = ["ServedPath", "load_store"]

_BATCH = 5000


def load_store(store: Store, dataset: Dataset, split: Split, tick: Callable[[int], None]) -> None:
    """Writes the shop as the service would hold it at the split's ``now``: the whole catalog,
    every customer's profile, and the training interactions (never the test ones)."""
    shop = dataset.name
    store.create_shop(Shop(shop, dataset.name))
    blank = CatalogEntry()
    items = []
    for item_id in dataset.item_ids:
        entry = dataset.catalog.get(item_id, blank)
        items.append(
            Item(
                shop_id=shop,
                item_id=item_id,
                title=entry.title or item_id,
                category=entry.category,
                price=entry.price,
                available=True,
            )
        )
    for start in range(0, len(items), _BATCH):
        store.upsert_items(items[start : start + _BATCH])
    customers = sorted(
        {*dataset.customer_features, *split.test, *(i.customer_id for i in split.train)}
    )
    for customer in customers:
        store.create_customer(
            Customer(shop, customer, dict(dataset.customer_features.get(customer, {})))
        )
    tick(len(customers))
    rows = [
        Interaction(shop, i.customer_id, i.item_id, i.type, i.time, i.value) for i in split.train
    ]
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        request = hashlib.sha256(f"{shop}/{start}".encode()).hexdigest()
        store.record_interactions(shop, f"load-{start}", request, batch)
        tick(len(batch))


@dataclass
class ServedPath:
    """The recommendation domain over one data set, with already fitted models.

    Use as a context manager: it owns a temporary SQLite store.
    """

    dataset: Dataset
    split: Split
    routing: Routing
    policy: SeenPolicy
    max_per_category: int = 3
    recent: int = 25

    def __enter__(self) -> ServedPath:
        self._folder = tempfile.TemporaryDirectory(prefix="kosmos-served-")
        self.store: Store = SQLiteStore(Path(self._folder.name) / "served.db")
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()
        self._folder.cleanup()

    def load(self, tick: Callable[[int], None] = lambda n: None) -> None:
        load_store(self.store, self.dataset, self.split, tick)

    def rankings(
        self,
        models: Mapping[str, Recommender],
        data: TrainingData,
        customers: Sequence[str],
        k: int,
        tick: Callable[[], None] = lambda: None,
    ) -> dict[str, list[str]]:
        """Each customer's page of ``k`` offers, as ``Recommend`` serves it at ``split.now``."""
        shop = self.dataset.name
        hub = ModelHub(
            self.store,
            {},
            self.routing.names,
            {},
            refresh_seconds=0,
            seen_policy=self.policy,
            weights=self.dataset.weights,
        )
        for name in self.routing.names:
            hub.serve(shop, name, models[name], "evaluated")
        hub.learn_repeatable(shop, data)
        recommendations = Recommendations(
            self.store,
            hub,
            self.routing,
            self.max_per_category,
            self.recent,
            clock=lambda: self.split.now,
            seen_policy=self.policy,
            weights=self.dataset.weights,
        )
        context = Context(request_time=self.split.now)
        out = {}
        for customer in customers:
            page = recommendations.recommend(shop, customer, context, k, 0)
            out[customer] = [o.item.item_id for o in page.offers]
            tick()
        return out
