"""Scoring one customer as the catalog grows: popularity's precomputed ranking and ALS with and
without its ANN index (faiss HNSW), at 3k, 10k and 100k items by default, with recall@10 of the
index against the exact scan on the same model. Synthetic data (long-tailed popularity); one
process, so the figures are the plugins' own cost, not the server's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from kosmos.plugin import Interaction, InteractionType, RecommendQuery, TrainingData
from kosmos.recommenders.popularity import PopularityRecommender


def _data(items: int, customers: int, per_customer: int, seed: int) -> TrainingData:
    rng = np.random.default_rng(seed)
    # A long tail: most items are bought by someone (they are live), a few by many.
    weights = rng.permutation(1.0 / (np.arange(items) + 10.0) ** 0.7)
    weights /= weights.sum()
    interactions = [
        Interaction(f"c{c}", f"i{i}", InteractionType.PURCHASE, 1.0, 0.0)
        for c in range(customers)
        for i in rng.choice(items, per_customer, replace=False, p=weights)
    ]
    features = {f"i{i}": {"category": f"k{i % 50}"} for i in range(items)}
    return TrainingData(
        interactions=interactions, item_ids=[f"i{i}" for i in range(items)], item_features=features
    )


def _p50_us(model: object, queries: list[RecommendQuery]) -> float:
    times = []
    for q in queries:
        started = time.perf_counter()
        model.recommend(q)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - started)
    return float(np.percentile(times, 50) * 1e6)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--items", type=int, nargs="+", default=[3000, 10000, 100000])
    p.add_argument("--customers", type=int, default=10000)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--factors", type=int, default=64)
    args = p.parse_args()
    import kosmos_implicit

    print("items  live   popularity µs   ALS exact µs   ALS ANN µs   recall@10   index build s")
    for items in args.items:
        data = _data(items, args.customers, 12, seed=items)
        rng = np.random.default_rng(1)
        customers = [f"c{c}" for c in rng.choice(args.customers, args.queries, replace=False)]
        queries = [RecommendQuery(customer_id=c, k=10, filter_already_seen=True) for c in customers]
        popularity = PopularityRecommender()
        popularity.fit(data)
        pop = _p50_us(popularity, queries)
        settings = {"factors": str(args.factors), "iterations": "15"}
        exact = kosmos_implicit.create_als({**settings, "ann_min_items": "0"})
        exact.fit(data)
        with tempfile.TemporaryDirectory() as tmp:
            exact.save(Path(tmp))
            approximate = kosmos_implicit.create_als({**settings, "ann_min_items": "1"})
            started = time.perf_counter()
            approximate.load(Path(tmp))  # the same factors; the index is built on load
            build = time.perf_counter() - started
        hits = 0
        for q in queries:
            truth = {s.item_id for s in exact.recommend(q)}
            hits += len(truth & {s.item_id for s in approximate.recommend(q)})
        recall = hits / (10 * len(queries))
        live = len({i.item_id for i in data.interactions})
        print(
            f"{items:>6} {live:>6} {pop:>15.0f} {_p50_us(exact, queries):>14.0f}"
            f" {_p50_us(approximate, queries):>12.0f} {recall:>11.3f} {build:>15.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
