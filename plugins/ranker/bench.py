"""Serving-speed benchmark: the ranker's ``recommend`` beside its sources' own time.

The ranker asks each source for its candidates, computes the features and scores them with
LightGBM. This prints p50 µs per customer of each source asked as the ranker asks it, their sum,
the ranker's whole answer, and the ratio of the two. The bar is the latency budget: the ranker's
p50 answer within ``--budget-ms`` (25 ms, a tenth of the 250 ms a plugin call may take by
default). Calls are interleaved customer by customer, so a noisy, shared machine slows all alike.

    .venv/bin/python plugins/ranker/bench.py                   # UCI Online Retail if present
    .venv/bin/python plugins/ranker/bench.py --data synthetic  # no data needed

The ranker is fitted on Online Retail's training part (before 2011-11-02, as `kosmos evaluate`
splits it), with ALS at 64 factors when ``kosmos-implicit`` is installed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import kosmos_ranker
import numpy as np

from kosmos.evaluation.datasets import online_retail, synthetic
from kosmos.evaluation.runner import build_queries, training_data
from kosmos.evaluation.split import ONLINE_RETAIL_CUTOFF, quantile_cutoff, temporal_split
from kosmos.plugin import RecommendQuery, discover

DEFAULT_DATA = Path("/work/shared/data/online-retail/online_retail.csv.gz")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the CSV, or 'synthetic'")
    parser.add_argument("--customers", type=int, default=300, help="customers timed")
    parser.add_argument("--sources", default="")
    parser.add_argument("--train-customers", default="1000")
    parser.add_argument("--budget-ms", type=float, default=25.0)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args(argv)
    if args.data == "synthetic" or not Path(args.data).is_file():
        dataset = synthetic(1000, 300, 7)
        split = temporal_split(dataset.interactions, quantile_cutoff(dataset.interactions, 0.8))
    else:
        dataset = online_retail(Path(args.data))
        split = temporal_split(dataset.interactions, ONLINE_RETAIL_CUTOFF, new_items_only=False)
    has_als = "als" in discover()
    sources = args.sources or (
        "als,buy_again,bought_together,popularity,trending"
        if has_als
        else "buy_again,bought_together,popularity,trending"
    )
    settings = {"sources": sources, "train_customers": args.train_customers}
    if has_als and "als" in sources.split(","):
        settings.update({"als.factors": "64", "als.regularization": "0.01", "als.iterations": "15"})
    ranker = kosmos_ranker.create(settings)
    started = time.perf_counter()
    ranker.fit(training_data(dataset, split))
    fit_s = time.perf_counter() - started
    model = ranker._require()  # the very sources it serves from
    queries = [q for c, q in build_queries(dataset, split, args.k).items() if c in split.warm][
        : args.customers
    ]
    names = ranker.source_names
    timings: dict[str, list[int]] = {n: [] for n in [*names, "ranker"]}
    clock = time.perf_counter_ns
    for round_ in range(2):  # the first round warms caches; the second is timed
        for q in queries:
            asked = RecommendQuery(
                q.customer_id,
                k=max(ranker.candidates, q.k),
                exclude_item_ids=q.exclude_item_ids,
                filter_already_seen=q.filter_already_seen,
                recent_interactions=q.recent_interactions,
                customer_features=q.customer_features,
                reasons=False,
            )
            for n in names:
                t0 = clock()
                model.sources[n].recommend(asked)
                if round_:
                    timings[n].append(clock() - t0)
            t0 = clock()
            ranker.recommend(q)
            if round_:
                timings["ranker"].append(clock() - t0)
    p50 = {n: float(np.percentile(t, 50)) / 1000.0 for n, t in timings.items()}
    total_sources = float(np.percentile(np.sum([timings[n] for n in names], axis=0), 50)) / 1000
    print(f"{dataset.summary}; ranker fitted in {fit_s:.1f} s; {len(queries)} warm customers")
    print(f"{'what':<34} {'p50 µs':>10}")
    for n in names:
        print(f"{'source ' + n:<34} {p50[n]:>10.0f}")
    print(f"{'sources together':<34} {total_sources:>10.0f}")
    print(f"{'ranker (sources + features + GBM)':<34} {p50['ranker']:>10.0f}")
    print(f"ranker / sources: {p50['ranker'] / total_sources:.2f}")
    within = p50["ranker"] <= args.budget_ms * 1000
    print(
        f"ranker p50 {p50['ranker'] / 1000:.1f} ms: {'within' if within else 'OVER'} the "
        f"{args.budget_ms:g} ms budget"
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
