"""``make bench`` (memory): bytes held per catalog item and per customer by what a serving
process keeps in memory: the catalog cache, the popularity model and ALS (64 factors).

Each structure is built at two sizes, under `tracemalloc` (Python objects and numpy's arrays,
which numpy reports to it), and what it still holds after a garbage collection is the figure;
the slope between the two sizes is the cost of one more item or customer, free of fixed costs
(imports, caches, the interpreter). Items vary with customers fixed and the other way round;
every customer has the same number of events, spread over the catalog as a long tail. The
catalog rows look like the synthetic generator's (title, category, brand, price, one
attribute). Native memory that numpy does not report (implicit's own C++ buffers during a fit)
is not counted: the models keep their factors in numpy arrays.
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kosmos.plugin import Interaction, TrainingData
from kosmos.recommendation.catalog_cache import CatalogCache
from kosmos.recommenders.popularity import create as create_popularity
from kosmos.store.records import InteractionType, Item, Shop
from kosmos.store.sqlite import SQLiteStore

SHOP = "bench"
CATEGORIES = ("Kitchen", "Garden", "Toys", "Books", "Sport", "Beauty", "Office", "Music")
EVENTS_PER_CUSTOMER = 20


def retained(build: Callable[[], Any]) -> int:
    """Bytes that what ``build`` returns still holds once garbage is collected."""
    gc.collect()
    tracemalloc.start()
    try:
        kept = build()
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return held


def items(n: int) -> list[Item]:
    rng = random.Random(n)
    return [
        Item(
            SHOP,
            f"sku-{k:07d}",
            f"{rng.choice(('Cosy', 'Classic', 'Rustic', 'Deluxe'))} Thing {k}",
            (category := rng.choice(CATEGORIES)),
            f"{category[:3].upper()}-{rng.choice('ABC')}",
            round(rng.uniform(2, 200), 2),
            rng.random() > 0.1,
            {"price_band": rng.choice(("low", "mid", "high"))},
        )
        for k in range(n)
    ]


def training(customers: int, catalog: int) -> TrainingData:
    rng = random.Random(customers * 7 + catalog)
    ids = [f"sku-{k:07d}" for k in range(catalog)]
    now = time.time()
    events = [
        Interaction(
            f"c-{c:07d}",
            ids[
                min(int(rng.paretovariate(1.2)) - 1, catalog - 1)
                if e % 2
                else rng.randrange(catalog)
            ],
            InteractionType.VIEW if e % 3 else InteractionType.PURCHASE,
            1.0 if e % 3 else 4.0,
            now - rng.uniform(0, 30 * 86400),
        )
        for c in range(customers)
        for e in range(EVENTS_PER_CUSTOMER)
    ]
    features = {i: {"category": CATEGORIES[k % len(CATEGORIES)]} for k, i in enumerate(ids)}
    return TrainingData(events, ids, {}, features, now, SHOP)


def catalog_cache(n: int, folder: Path) -> int:
    store = SQLiteStore(folder / f"catalog-{n}.db")
    try:
        store.create_shop(Shop(SHOP, "Bench", time.time()))
        rows = items(n)
        for start in range(0, n, 1000):
            store.upsert_items(rows[start : start + 1000])
        del rows
        cache = CatalogCache(store)
        return retained(lambda: (cache, cache.items(SHOP)))
    finally:
        store.close()


def model(factory: Callable[[], Any], customers: int, catalog: int) -> int:
    data = training(customers, catalog)

    def fit() -> Any:
        recommender = factory()
        recommender.fit(data)
        return recommender

    return retained(fit)


def als() -> Any:
    from kosmos_implicit import create_als

    return create_als({"factors": "64", "iterations": "3", "num_threads": "1"})


def popularity() -> Any:
    return create_popularity({})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--items", type=int, nargs=2, default=(5_000, 25_000), help="two catalog sizes")
    p.add_argument(
        "--customers", type=int, nargs=2, default=(2_000, 10_000), help="two customer counts"
    )
    args = p.parse_args()
    small_items, large_items = args.items
    small_customers, large_customers = args.customers
    rows: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        catalog_cache(100, Path(tmp))  # warm-up
        a, b = (catalog_cache(n, Path(tmp)) for n in args.items)
        rows.append(("catalog cache", "item", (b - a) / (large_items - small_items)))
    for name, factory in (("popularity", popularity), ("ALS, 64 factors", als)):
        model(factory, 100, 100)  # warm-up: what a first fit imports is no cost per item
        a = model(factory, small_customers, small_items)
        b = model(factory, small_customers, large_items)
        rows.append((name, "item", (b - a) / (large_items - small_items)))
        b = model(factory, large_customers, small_items)
        rows.append(
            (
                name,
                f"customer ({EVENTS_PER_CUSTOMER} events)",
                (b - a) / (large_customers - small_customers),
            )
        )
    table = Table(
        title="make bench — memory held per item and per customer (tracemalloc, the slope"
        f" between {small_items:,} and {large_items:,} items, {small_customers:,} and"
        f" {large_customers:,} customers)",
        title_justify="left",
    )
    for column in ("structure", "per", "bytes", "1M of them"):
        table.add_column(column, justify="left" if column in ("structure", "per") else "right")
    for name, per, slope in rows:
        table.add_row(name, per, f"{slope:,.0f}", f"{slope * 1e6 / 2**20:,.0f} MiB")
    Console(width=110).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
