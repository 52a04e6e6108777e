"""Serving-speed benchmark: the plugin's ``recommend`` against the plain numpy floor.

The bar: scoring one warm customer costs at most 2x ``item_factors @ user`` plus one
``np.argpartition`` top-k on the same factors. Calls are interleaved (floor, plugin, floor, ...)
so that a noisy, shared machine slows both alike; figures are p50 over ``--calls`` calls.

    .venv/bin/python plugins/implicit/bench.py                     # UCI online retail if present
    .venv/bin/python plugins/implicit/bench.py --data synthetic    # no data needed

The UCI file is read where it lies (``/work/shared/data/online-retail/online_retail.csv.gz`` by
default) and never copied; it is cleaned as ``/work/shared/data/README.md`` describes.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import kosmos_implicit
import numpy as np

from kosmos.plugin import (
    Interaction,
    InteractionType,
    Recommender,
    RecommendQuery,
    TrainingData,
)

DEFAULT_DATA = Path("/work/shared/data/online-retail/online_retail.csv.gz")
BAR = 2.0
_STOCK_CODE = re.compile(r"^\d{5}")


def online_retail(path: Path) -> TrainingData:
    """Purchase lines, cleaned as the data README says; one interaction per invoice line."""
    interactions = []
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if (
                not row["CustomerID"]
                or row["InvoiceNo"].startswith("C")
                or float(row["Quantity"]) <= 0
                or float(row["UnitPrice"]) <= 0
                or not _STOCK_CODE.match(row["StockCode"])
            ):
                continue
            when = datetime.fromisoformat(row["InvoiceDate"]).timestamp()
            interactions.append(
                Interaction(
                    row["CustomerID"].removesuffix(".0"),
                    row["StockCode"],
                    InteractionType.PURCHASE,
                    1.0,
                    when,
                    float(row["Quantity"]),
                )
            )
    interactions.sort(key=lambda i: i.time)
    return TrainingData(interactions=interactions, now=interactions[-1].time)


def synthetic(customers: int = 4300, items: int = 3700, lines: int = 400_000) -> TrainingData:
    """A seeded stand-in of the same size: power-law item popularity, 20 taste clusters."""
    rng = np.random.default_rng(7)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    cluster_of_item = rng.integers(0, 20, items)
    cluster_of_customer = rng.integers(0, 20, customers)
    who = np.sort(rng.integers(0, customers, lines))
    what = np.empty(lines, dtype=np.int64)
    for cluster in range(20):
        mine = cluster_of_customer[who] == cluster
        weights = popularity * np.where(cluster_of_item == cluster, 8.0, 1.0)
        what[mine] = rng.choice(items, size=int(mine.sum()), p=weights / weights.sum())
    order = rng.permutation(lines)
    interactions = [
        Interaction(f"c{c}", f"i{i}", InteractionType.PURCHASE, 1.0, 1.7e9 + n * 60.0)
        for n, (c, i) in enumerate(zip(who[order].tolist(), what[order].tolist(), strict=True))
    ]
    return TrainingData(interactions=interactions, item_ids=[f"i{i}" for i in range(items)])


def p50_us(samples: list[int]) -> float:
    return float(np.percentile(samples, 50)) / 1000.0


def race(
    calls: int, floor: Callable[[int], object], plugin: Callable[[int], object]
) -> tuple[float, float]:
    """p50 µs of ``floor(n)`` and ``plugin(n)``, interleaved call by call."""
    for n in range(200):  # warm the caches and the allocator
        floor(n)
        plugin(n)
    a: list[int] = []
    b: list[int] = []
    clock = time.perf_counter_ns
    for n in range(calls):
        t0 = clock()
        floor(n)
        t1 = clock()
        plugin(n)
        t2 = clock()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return p50_us(a), p50_us(b)


def latest(data: TrainingData, n: int = 20) -> dict[str, list[Interaction]]:
    """Each customer's ``n`` latest interactions, newest first, as the service passes them."""
    recents: dict[str, list[Interaction]] = {}
    for i in reversed(data.interactions):
        mine = recents.setdefault(i.customer_id, [])
        if len(mine) < n:
            mine.append(i)
    return recents


Row = tuple[str, float, float]


def bench_factors(
    name: str, model: Recommender, data: TrainingData, calls: int, k: int
) -> tuple[list[Row], float]:
    """ALS or BPR against the floor on its own factors; returns the rows and the floor."""
    state = model._require()  # type: ignore[attr-defined]  # the very arrays it serves from
    matrix = state.matrix
    sample = np.random.default_rng(0).choice(len(matrix.customer_ids), size=1000).tolist()
    ids = [matrix.customer_ids[r] for r in sample]
    recents = latest(data)
    item_factors, users = state.item_factors, state.user_factors

    def floor(n: int) -> object:
        scores = item_factors @ users[sample[n % 1000]]
        return np.argpartition(scores, -k)[-k:]

    cases = {
        "warm customer": [RecommendQuery(c, k=k) for c in ids],
        "+ 20 recent + filter_already_seen": [
            RecommendQuery(
                c, k=k, recent_interactions=recents[c], filter_already_seen=True, reasons=False
            )
            for c in ids
        ],
        # Not scoring: naming the recent item behind each offer ("Because you bought ...").
        "+ 20 recent + filter + reasons (not in the bar)": [
            RecommendQuery(c, k=k, recent_interactions=recents[c], filter_already_seen=True)
            for c in ids
        ],
    }
    if model.capabilities.partial_fit:  # ALS folds a new click in at request time
        after_fit = max(i.time for i in data.interactions) + 60.0
        cases["+ 1 click after the fit (fold-in)"] = [
            RecommendQuery(
                c,
                k=k,
                recent_interactions=[
                    Interaction(
                        c,
                        matrix.item_ids[n % matrix.n_items],
                        InteractionType.CLICK,
                        1.0,
                        after_fit,
                    ),
                    *recents[c],
                ],
            )
            for n, c in enumerate(ids)
        ]
    rows: list[Row] = []
    floors = []
    for case, queries in cases.items():
        floor_us, us = race(calls, floor, _served_by(model, queries))
        floors.append(floor_us)
        rows.append((f"{name}: recommend, {case}", us, us / floor_us))
    floor_us = float(np.median(floors))
    return [(f"{name}: numpy floor (matvec + argpartition)", floor_us, 1.0), *rows], floor_us


def _nothing(n: int) -> object:
    return None


def _served_by(model: Recommender, queries: list[RecommendQuery]) -> Callable[[int], object]:
    return lambda n: model.recommend(queries[n % len(queries)])


def bench_item_item(
    model: Recommender, data: TrainingData, calls: int, k: int, als_floor_us: float
) -> list[Row]:
    """Item-item has no factors to race against: compared with the ALS floor."""
    state = model._require()  # type: ignore[attr-defined]
    matrix = state.matrix
    sample = np.random.default_rng(0).choice(len(matrix.customer_ids), size=1000).tolist()
    ids = [matrix.customer_ids[r] for r in sample]
    recents = latest(data)
    rows: list[Row] = []
    for case, queries in {
        "warm customer": [RecommendQuery(c, k=k) for c in ids],
        "+ 20 recent + filter_already_seen": [
            RecommendQuery(c, k=k, recent_interactions=recents[c], filter_already_seen=True)
            for c in ids
        ],
    }.items():
        _, us = race(calls, _nothing, _served_by(model, queries))
        rows.append((f"item_item: recommend, {case} (vs ALS floor)", us, us / als_floor_us))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="online_retail.csv.gz, or 'synthetic' (default: %(default)s)",
    )
    parser.add_argument("--calls", type=int, default=5000, help="timed calls per figure")
    parser.add_argument("--k", type=int, default=10, help="items per answer")
    args = parser.parse_args(argv)
    if args.calls < 2000:
        parser.error("--calls must be at least 2000")

    t = time.perf_counter()
    if args.data == "synthetic":
        data, source = synthetic(), "synthetic"
    else:
        path = Path(args.data)
        if not path.exists():
            print(
                f"{path} is missing: pass --data PATH to the UCI online retail file, "
                "or --data synthetic",
                file=sys.stderr,
            )
            return 2
        data, source = online_retail(path), f"UCI online retail ({path.name})"
    print(
        f"data: {source}, {len(data.interactions)} interactions, read in "
        f"{time.perf_counter() - t:.1f} s; k={args.k}, p50 over {args.calls} calls"
    )

    models: dict[str, Recommender] = {
        "als": kosmos_implicit.create_als({}),
        "bpr": kosmos_implicit.create_bpr({}),
        "item_item": kosmos_implicit.create_item_item({}),
    }
    for name, model in models.items():
        t = time.perf_counter()
        model.fit(data)
        print(f"{name}: fitted in {time.perf_counter() - t:.1f} s (default settings)")

    rows: list[Row] = []
    verdicts: list[bool] = []
    als_floor_us = 0.0
    for name in ("als", "bpr"):
        got, floor_us = bench_factors(name, models[name], data, args.calls, args.k)
        rows += got
        als_floor_us = als_floor_us or floor_us
        verdicts += [
            ratio <= BAR
            for label, _, ratio in got
            if "fold-in" not in label and "not in" not in label
        ]
    rows += bench_item_item(models["item_item"], data, args.calls, args.k, als_floor_us)

    print(f"{'case':66} {'p50 µs':>8} {'× floor':>8}")
    for label, us, ratio in rows:
        print(f"{label:66} {us:8.1f} {ratio:8.2f}")
    ok = all(verdicts)
    print(
        f"bar: ALS/BPR recommend for a warm customer <= {BAR}x the floor: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
