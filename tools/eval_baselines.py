"""Does wrapping cost anything? The plugins against their libraries called directly, in one run.

    .venv/bin/python tools/eval_baselines.py --data-dir /work/shared/data

UCI Online Retail, the data README's temporal split (train before 2011-11-02; test: products new
to the customer), the same metrics (`kosmos.evaluation`). Each pair has the same hyperparameters:

- popularity: the built-in plugin without recency decay (``half_life_days`` 10^6) against a
  numpy count of buyers per product; the plugin's default (14-day half-life) is shown too;
- ALS: the ``als`` plugin against ``implicit.cpu.als.AlternatingLeastSquares`` (factors 64,
  regularization 0.01, alpha 1, 15 iterations, seed 42, one thread) on the invoice-count
  matrix, with ``recommend(..., filter_already_liked_items=True)``;
- LightFM: the ``lightfm`` plugin against ``lightfm.LightFM`` (WARP, 64 components, learning
  rate 0.05, seed 42, one thread, 60 epochs), both with features (customer country; product
  price band and description words). Directly, LightFM's own ``fit`` and ``predict`` (over every
  product; a cold customer as a row of features only), given the inputs the plugin gives it
  (the id's own column 1 and the features together 1; log1p invoice counts as sample weights)
  and, for contrast, plain one-hot rows on a binary matrix.

Then the routed chain. The bar: each plugin within noise of its library on the warm customers
(the README's reference figures are over them), and the chain above every single recommender
on all customers. Only this tool imports implicit and lightfm; the core finds them by entry
point.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from lightfm import LightFM
from rich.console import Console
from rich.progress import track
from rich.table import Table
from threadpoolctl import threadpool_limits

from kosmos.evaluation import (
    ONLINE_RETAIL_CUTOFF,
    DataNotFound,
    Dataset,
    Result,
    Split,
    evaluate,
    markdown_table,
    online_retail,
    results_table,
    score,
    temporal_split,
)
from kosmos.plugin import discover
from kosmos.plugin.routing import Routing

K = 10
FACTORS = 64
ALS = {"factors": 64, "regularization": 0.01, "alpha": 1.0, "iterations": 15}
LIGHTFM_EPOCHS = 60
SEED = 42
NO_DECAY_DAYS = "1000000"
ROUTING = "warm=als,popularity;cold=popularity"
NOISE = 0.005
"""How far below its library a plugin may land and still be the same model: on this split, seeds
1, 2, 3 and 42 moved warm NDCG@10 over 0.0803-0.0832 (LightFM, 60 epochs) and 0.0962-0.0980
(ALS)."""


class _Index:
    """Rows for the customers that have training history, columns for the catalog."""

    def __init__(self, dataset: Dataset, split: Split) -> None:
        self.items = list(dataset.item_ids)
        self.item = {item: n for n, item in enumerate(self.items)}
        self.customers = list(dict.fromkeys(i.customer_id for i in split.train))
        self.customer = {c: n for n, c in enumerate(self.customers)}
        pairs: dict[tuple[int, int], float] = {}
        for i in split.train:
            key = (self.customer[i.customer_id], self.item[i.item_id])
            pairs[key] = pairs.get(key, 0.0) + i.weight
        rows, cols = (np.fromiter(axis, dtype=np.int32) for axis in zip(*pairs, strict=True))
        shape = (len(self.customers), len(self.items))
        self.counts = sp.csr_matrix(
            (np.fromiter(pairs.values(), dtype=np.float32), (rows, cols)), shape=shape
        )

    def ids(self, columns: Sequence[int] | npt.NDArray[np.int64]) -> list[str]:
        return [self.items[int(c)] for c in columns]


def _top(scores: npt.NDArray[np.float64], seen: npt.NDArray[np.int32], k: int) -> list[int]:
    scores = scores.astype(np.float64, copy=True)
    scores[seen] = -np.inf
    top = np.argpartition(-scores, k)[:k]
    return [int(n) for n in top[np.argsort(-scores[top], kind="stable")] if scores[n] > -np.inf]


def direct_popularity(index: _Index, split: Split) -> Result:
    """Buyers per product, counted with numpy; the customer's own products left out."""
    started = time.perf_counter()
    buyers = np.bincount(index.counts.indices, minlength=len(index.items)).astype(np.float64)
    fit = time.perf_counter() - started
    started = time.perf_counter_ns()
    rankings = {}
    empty = np.zeros(0, dtype=np.int32)
    for customer in split.test:
        row = index.customer.get(customer)
        seen = index.counts[row].indices if row is not None else empty
        rankings[customer] = index.ids(_top(buyers, seen, K))
    us = (time.perf_counter_ns() - started) / len(split.test) / 1000
    return score("numpy: buyers per product", rankings, split, len(index.items), K, fit, us)


def direct_als(index: _Index, split: Split) -> Result:
    """implicit's ALS on the invoice-count matrix, its own ``recommend``."""
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(**ALS, random_state=SEED, num_threads=1, dtype=np.float32)
        started = time.perf_counter()
        model.fit(index.counts, show_progress=False)
        fit = time.perf_counter() - started
    warm = [c for c in split.test if c in index.customer]
    rows = np.array([index.customer[c] for c in warm], dtype=np.int32)
    started = time.perf_counter_ns()
    ids, _ = model.recommend(rows, index.counts[rows], N=K, filter_already_liked_items=True)
    us = (time.perf_counter_ns() - started) / len(rows) / 1000
    rankings = {c: index.ids(ids[n]) for n, c in enumerate(warm)}  # cold: nothing to say
    name = "implicit AlternatingLeastSquares"
    return score(name, rankings, split, len(index.items), K, fit, us)


def _rows(
    ids: Sequence[str],
    features: Mapping[str, Mapping[str, str]],
    known: int,
    normalise: bool,
) -> sp.csr_matrix:
    """Feature rows: the first ``known`` ids get their own column (1); every id gets one column
    per ``name=value`` feature, 1 each, or together 1 (``normalise``). Rows past ``known`` are
    customers LightFM never saw: features only, LightFM's own cold-start recipe."""
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    data: list[float] = []
    for n, entity in enumerate(ids):
        own = features.get(entity, {})
        if n < known:
            rows.append(n)
            cols.append(n)
            data.append(1.0)
        for name, value in own.items():
            rows.append(n)
            cols.append(known + vocabulary.setdefault(f"{name}={value}", len(vocabulary)))
            data.append(1.0 / len(own) if normalise else 1.0)
    shape = (len(ids), known + len(vocabulary))
    return sp.csr_matrix((np.array(data, dtype=np.float32), (rows, cols)), shape=shape)


def direct_lightfm(
    index: _Index, dataset: Dataset, split: Split, epochs: int, plugin_inputs: bool
) -> Result:
    """LightFM WARP with features, fitted and asked through its own API (``fit``, ``predict``).

    With ``plugin_inputs`` it gets what the plugin gives it: feature rows whose features weigh 1
    together beside the id's 1, and ``log1p`` of the invoice counts, scaled to mean 1, as sample
    weights. Without: plain one-hot rows and a binary matrix, as one would write it first.
    """
    known = len(index.customers)
    customers = index.customers + sorted(split.cold)
    user_features = _rows(customers, dataset.customer_features, known, plugin_inputs)
    item_features = _rows(index.items, dataset.item_features, len(index.items), plugin_inputs)
    counts = index.counts.tocoo()
    binary = sp.coo_matrix(
        (np.ones(counts.nnz, dtype=np.float32), (counts.row, counts.col)), shape=counts.shape
    )
    weights = None
    if plugin_inputs:
        w = np.log1p(counts.data.astype(np.float64))
        weights = sp.coo_matrix(
            ((w / w.mean()).astype(np.float32), (counts.row, counts.col)), shape=counts.shape
        )
    model = LightFM(no_components=FACTORS, loss="warp", learning_rate=0.05, random_state=SEED)
    started = time.perf_counter()
    model.fit(
        binary,
        user_features=user_features[:known],
        item_features=item_features,
        sample_weight=weights,
        epochs=epochs,
        num_threads=1,
    )
    fit = time.perf_counter() - started
    every = np.arange(len(index.items), dtype=np.int32)
    row_of = {c: n for n, c in enumerate(customers)}
    empty = np.zeros(0, dtype=np.int32)
    rankings = {}
    started = time.perf_counter_ns()
    for customer in track(split.test, description="LightFM predict", transient=True):
        row = row_of[customer]
        scores = model.predict(row, every, user_features=user_features, item_features=item_features)
        seen = index.counts[row].indices if row < known else empty
        rankings[customer] = index.ids(_top(scores, seen, K))
    us = (time.perf_counter_ns() - started) / len(split.test) / 1000
    how = "the plugin's inputs" if plugin_inputs else "one-hot rows, binary"
    return score(f"lightfm.LightFM (WARP; {how})", rankings, split, len(index.items), K, fit, us)


def plugins(dataset: Dataset, split: Split, epochs: int) -> Iterator[Result]:
    """The plugins, fitted and asked exactly as ``kosmos evaluate`` does."""
    installed = discover(required=["popularity", "als", "lightfm"])
    settings = {
        "popularity": {"half_life_days": NO_DECAY_DAYS},
        "als": {k: str(v) for k, v in ALS.items()},
        "lightfm": {"epochs": str(epochs), "no_components": str(FACTORS)},
    }
    run = evaluate(dataset, split, installed, ["popularity", "als", "lightfm"], (), settings, K)
    names = {
        "popularity": "plugin popularity (no decay)",
        "als": "plugin als",
        "lightfm": "plugin lightfm",
    }
    yield from (replace(r, name=names[r.name]) for r in run.results)
    # The service's defaults: popularity with its 14-day half-life, and the routed chain.
    routing = Routing.parse(ROUTING)
    chain = evaluate(
        dataset, split, installed, ["popularity"], [routing], {"als": settings["als"]}, K
    )
    popularity, routed = chain.results
    yield replace(popularity, name="plugin popularity (14-day half-life, default)")
    yield routed


def comparison(pairs: Sequence[tuple[str, Result, Result]]) -> Table:
    table = Table(title=f"Wrapping costs nothing? NDCG@{K}, warm customers", title_justify="left")
    for column in ("model", "library directly", "plugin", "Δ", f"bar: Δ ≥ -{NOISE}"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, library, plugin in pairs:
        a, b = library.scores["warm"].ndcg, plugin.scores["warm"].ndcg
        met = b >= a - NOISE
        table.add_row(
            name,
            f"{a:.4f}",
            f"{b:.4f}",
            f"{b - a:+.4f}",
            "[green]met[/green]" if met else "[red]MISSED[/red]",
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--epochs", type=int, default=LIGHTFM_EPOCHS, help="LightFM epochs")
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    args = parser.parse_args(argv)
    console = Console()
    try:
        with console.status("loading UCI Online Retail"):
            dataset = online_retail(args.data_dir / "online-retail" / "online_retail.csv.gz")
    except DataNotFound as error:
        Console(stderr=True).print(f"[red]error[/red]: {error}", highlight=False)
        return 2
    split = temporal_split(dataset.interactions, ONLINE_RETAIL_CUTOFF)
    console.print(dataset.summary, highlight=False)
    console.print(
        f"split: {split.description}; {len(split.warm):,} warm and {len(split.cold):,} cold "
        f"test customers, {split.test_pairs:,} test pairs",
        highlight=False,
    )
    index = _Index(dataset, split)
    with console.status("libraries called directly"):
        popularity = direct_popularity(index, split)
        als = direct_als(index, split)
    lightfm = direct_lightfm(index, dataset, split, args.epochs, plugin_inputs=True)
    one_hot = direct_lightfm(index, dataset, split, args.epochs, plugin_inputs=False)
    with console.status("the same models through their plugins"):
        ours = list(plugins(dataset, split, args.epochs))
    by_name = {r.name: r for r in ours}
    results = [
        popularity,
        by_name["plugin popularity (no decay)"],
        als,
        by_name["plugin als"],
        lightfm,
        one_hot,
        by_name["plugin lightfm"],
        by_name["plugin popularity (14-day half-life, default)"],
        by_name[f"routed {Routing.parse(ROUTING)}"],
    ]
    title = (
        f"UCI Online Retail, one run: libraries directly and through Kosmos plugins "
        f"(factors {FACTORS}, LightFM {args.epochs} epochs)"
    )
    console.print(results_table(results, K, title))
    pairs = [
        ("popularity", popularity, by_name["plugin popularity (no decay)"]),
        ("ALS", als, by_name["plugin als"]),
        ("LightFM WARP + features", lightfm, by_name["plugin lightfm"]),
    ]
    console.print(comparison(pairs))
    chain = results[-1].scores["all"].ndcg
    best_single = max(r.scores["all"].ndcg for r in results[:-1])
    verdict = "beats" if chain > best_single else "does NOT beat"
    console.print(
        f"routed chain {ROUTING}: NDCG@{K} {chain:.4f} on all customers {verdict} the best "
        f"single recommender ({best_single:.4f})",
        highlight=False,
    )
    if args.markdown:
        console.print(markdown_table(results, K), markup=False, highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
