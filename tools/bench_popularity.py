"""The popularity model at size: fit time and the fit's peak RSS, the saved version's size and
save time, load time, and a ``filter_already_seen`` answer, for a synthetic shop built in this
process (every customer with the same number of view events, items drawn from a long tail).

Run it at two commits (one from a worktree, ``PYTHONPATH=<worktree>/services``) to compare a
change to the model's shape: issue 12's arrays for who saw what were measured so.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import tempfile
import time
from pathlib import Path

from kosmos.plugin import Interaction, InteractionType, RecommendQuery, TrainingData
from kosmos.recommenders.popularity import create


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--customers", type=int, default=200_000)
    p.add_argument("--events", type=int, default=20, help="events per customer (20)")
    p.add_argument("--items", type=int, default=20_000)
    args = p.parse_args()
    rng = random.Random(1)
    items = [f"sku-{n:06d}" for n in range(args.items)]
    customers = [f"cust-{n:07d}" for n in range(args.customers)]
    last = args.items - 1
    interactions = [
        Interaction(
            customers[c],
            items[min(int(rng.paretovariate(1.2)) - 1, last)],
            InteractionType.VIEW,
            1.0,
            1e9 + c,
        )
        for c in range(args.customers)
        for _ in range(args.events)
    ]
    data = TrainingData(interactions=interactions, item_ids=items, now=1e9 + args.customers)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = create({})
    started = time.perf_counter()
    model.fit(data)
    fit = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        model.save(Path(folder))
        save = time.perf_counter() - started
        size = sum(f.stat().st_size for f in Path(folder).iterdir())
        del model, interactions, data
        gc.collect()
        loaded = create({})
        started = time.perf_counter()
        loaded.load(Path(folder))
        load = time.perf_counter() - started
        asked = [
            RecommendQuery(customer_id=customers[k], k=70, filter_already_seen=True)
            for k in range(0, args.customers, max(1, args.customers // 2000))
        ]
        started = time.perf_counter()
        for query in asked:
            loaded.recommend(query)
        answer = (time.perf_counter() - started) / len(asked) * 1e6
    print(
        f"popularity, {args.customers:,} customers × {args.events} events, {args.items:,} items:"
        f" fit {fit:.2f} s (peak RSS +{(peak - base) / 1024:,.0f} MiB), save {save:.2f} s"
        f" ({size / 2**20:,.0f} MiB), load {load:.2f} s, a filter_already_seen answer"
        f" {answer:.0f} µs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
