"""How fast the plugin serves one customer, against the numpy floor and LightFM's own predict.

    .venv/bin/python plugins/lightfm/bench.py [--data PATH | --synthetic] [--epochs N] [--calls N]

With UCI Online Retail (see /work/shared/data/README.md; read in place, never copied) it fits on
the cleaned purchase log, customer feature Country, item feature price band. Without it, on
synthetic data of a similar shape. Each figure is the p50 of ``--calls`` single-customer calls,
k=10, cycling over warm customers:

- floor: ``item_factors @ user_vector`` + ``argpartition`` top-k on the same factors;
- plugin: ``LightFMRecommender.recommend`` (also with filtering, and for a cold customer);
- predict: LightFM's ``model.predict`` over every item + ``argpartition``.

The bar: the plugin's warm ``recommend`` costs at most 2x the floor.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from kosmos_lightfm import LightFMRecommender, LightFMSettings

from kosmos.plugin import Interaction, InteractionType, RecommendQuery, TrainingData

RETAIL = Path("/work/shared/data/online-retail/online_retail.csv.gz")
K = 10


def load_retail(path: Path) -> TrainingData:
    """The cleaning of /work/shared/data/README.md: purchases by known customers, real products."""
    interactions = []
    customer_features: dict[str, dict[str, str]] = {}
    prices: dict[str, list[float]] = {}
    product = re.compile(r"^\d{5}")
    with gzip.open(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            customer, code = row["CustomerID"], row["StockCode"]
            if not customer or row["InvoiceNo"].startswith("C") or not product.match(code):
                continue
            quantity, price = float(row["Quantity"]), float(row["UnitPrice"])
            if quantity <= 0 or price <= 0:
                continue
            customer = customer.removesuffix(".0")
            when = datetime.fromisoformat(row["InvoiceDate"]).timestamp()
            interactions.append(
                Interaction(customer, code, InteractionType.PURCHASE, 1.0, when, quantity)
            )
            customer_features[customer] = {"country": row["Country"]}
            prices.setdefault(code, []).append(price)
    interactions.sort(key=lambda i: i.time)
    item_features = {
        code: {"price_band": str(min(int(math.log2(float(np.median(p))) + 3), 9))}
        for code, p in prices.items()
    }
    return TrainingData(
        interactions=interactions,
        item_ids=sorted(prices),
        customer_features=customer_features,
        item_features=item_features,
        now=interactions[-1].time,
    )


def synthetic(customers: int = 4300, items: int = 3700, per_customer: int = 60) -> TrainingData:
    """Taste clusters with popular items, about the size of the online-retail log."""
    rng = np.random.default_rng(0)
    clusters = 20
    item_cluster = rng.integers(0, clusters, items)
    popularity = 1.0 / rng.permutation(np.arange(1, items + 1)) ** 0.8
    interactions = []
    customer_features = {}
    for c in range(customers):
        cluster = int(rng.integers(0, clusters))
        p = popularity * np.where(item_cluster == cluster, 20.0, 1.0)
        bought = rng.choice(items, size=per_customer, p=p / p.sum())
        customer_features[f"c{c}"] = {"country": f"country-{cluster % 7}"}
        interactions += [
            Interaction(f"c{c}", f"i{i}", InteractionType.PURCHASE, 1.0, float(n))
            for n, i in enumerate(bought)
        ]
    return TrainingData(
        interactions=interactions,
        item_ids=[f"i{i}" for i in range(items)],
        customer_features=customer_features,
        item_features={f"i{i}": {"category": f"cat-{item_cluster[i]}"} for i in range(items)},
    )


def p50_us(call: Callable[[int], object], calls: int) -> float:
    """Median wall time of ``call(n)`` in microseconds, after a warm-up."""
    for n in range(min(200, calls)):
        call(n)
    times = np.empty(calls)
    for n in range(calls):
        start = time.perf_counter_ns()
        call(n)
        times[n] = time.perf_counter_ns() - start
    return float(np.median(times)) / 1000.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=RETAIL, help="online_retail.csv.gz")
    parser.add_argument("--synthetic", action="store_true", help="use synthetic data")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--no-features", action="store_true", help="ids only")
    parser.add_argument("--calls", type=int, default=5000, help="timed calls per figure (>= 2000)")
    args = parser.parse_args(argv)
    if args.calls < 2000:
        parser.error("--calls must be at least 2000")

    if args.synthetic:
        data, source = synthetic(), "synthetic"
    elif args.data.exists():
        data, source = load_retail(args.data), str(args.data)
    else:
        print(f"{args.data} is missing: using synthetic data instead", file=sys.stderr)
        data, source = synthetic(), "synthetic"

    settings = LightFMSettings(
        no_components=args.components, epochs=args.epochs, use_features=not args.no_features
    )
    model = LightFMRecommender(settings, keep_training_state=True)
    start = time.perf_counter()
    model.fit(data)
    fit_s = time.perf_counter() - start
    state = model.training_state
    assert state is not None
    lfm = state.model
    servable = len(model.recommend(RecommendQuery("nobody", k=10**9)))
    print(
        f"data: {source}: {len(data.interactions)} interactions, {len(state.customer_ids)} warm "
        f"customers, {len(state.item_ids)} items trained, {servable} served\n{settings}\n"
        f"fit: {fit_s:.1f} s"
    )

    # The floor: the same factors LightFM would score with, as plain float32 arrays.
    _, item_emb = lfm.get_item_representations(state.item_features)
    _, user_emb = lfm.get_user_representations(state.user_features)
    item_factors = np.ascontiguousarray(item_emb, dtype=np.float32)
    user_factors = np.ascontiguousarray(user_emb, dtype=np.float32)
    users = len(state.customer_ids)
    item_rows = np.arange(len(state.item_ids), dtype=np.int32)

    def floor(n: int) -> object:
        scores = item_factors @ user_factors[n % users]
        return np.argpartition(scores, -K)[-K:]

    warm = [RecommendQuery(c, K) for c in state.customer_ids]
    seen: dict[str, list[Interaction]] = {c: [] for c in state.customer_ids}
    for i in reversed(data.interactions):
        if i.customer_id in seen and len(seen[i.customer_id]) < 20:
            seen[i.customer_id].append(i)
    filtered = [
        RecommendQuery(c, K, filter_already_seen=True, recent_interactions=seen[c], reasons=False)
        for c in state.customer_ids
    ]
    countries = sorted({f["country"] for f in data.customer_features.values()})
    cold = [
        RecommendQuery(f"new-{n}", K, customer_features={"country": c})
        for n, c in enumerate(countries)
    ]

    def predict(n: int) -> object:
        scores = lfm.predict(
            n % users,
            item_rows,
            item_features=state.item_features,
            user_features=state.user_features,
        )
        return np.argpartition(scores, -K)[-K:]

    figures = {
        "floor (numpy @ + argpartition)": p50_us(floor, args.calls),
        "plugin recommend, warm": p50_us(lambda n: model.recommend(warm[n % users]), args.calls),
        "plugin recommend, warm, filter seen + 20 recent": p50_us(
            lambda n: model.recommend(filtered[n % users]), args.calls
        ),
        "plugin recommend, cold (country)": p50_us(
            lambda n: model.recommend(cold[n % len(cold)]), args.calls
        ),
        "lightfm predict + argpartition": p50_us(predict, args.calls),
    }
    base = figures["floor (numpy @ + argpartition)"]
    print(f"one customer, k={K}, p50 of {args.calls} calls:")
    for name, us in figures.items():
        print(f"  {name:<50} {us:8.1f} µs  {us / base:5.2f}x floor")
    ratio = figures["plugin recommend, warm"] / base
    print(f"bar (warm recommend <= 2x floor): {'met' if ratio <= 2 else 'MISSED'} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
