"""JSON on the request path: the standard library against orjson, on what a ``Recommend`` encodes
and decodes.

Two payloads, both real: the kept list of a first page (``--offers`` documents as
`kosmos.recommendation.pages.to_document` makes them, encoded as `kosmos.store._lists` does),
and the JSON columns of SQLite's one read for a customer with ``--events`` interactions (the
row `SQLiteStore.recommend_inputs` fetches, from a store in a temporary directory). Prints
microseconds per call for each library and the ratio, the floor being the standard library in
the same run.

    .venv/bin/python tools/bench_json.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from kosmos.store.records import Customer, Interaction, InteractionType, Item, Shop
from kosmos.store.sqlite import SQLiteStore, _inputs_params, _inputs_sql


def per_call_us(fn: Callable[[], Any], n: int) -> float:
    """Median of five rounds of ``n`` calls, microseconds per call."""
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(rounds)


def kept_list(offers: int) -> tuple[tuple[Any, ...], ...]:
    return tuple(
        (
            f"sku-{n:05d}",
            0.1 + n / 7,
            "Popular in shoes, which you've been browsing",
            "popularity",
            "popular",
            (f"sku-{n + 1:05d}",),
            "",
        )
        for n in range(offers)
    )


def read_columns(directory: Path, events: int) -> list[str]:
    """The JSON columns of the one read for a customer with ``events`` interactions."""
    store = SQLiteStore(directory / "bench.db")
    try:
        store.create_shop(Shop("acme", "Acme"))
        store.create_customer(Customer("acme", "alice"))
        store.upsert_items([Item("acme", f"sku-{n:05d}", category="c") for n in range(events)])
        kinds = [InteractionType.VIEW, InteractionType.PURCHASE, InteractionType.DISMISS]
        store.record_interactions(
            "acme",
            "seed",
            "h",
            [
                Interaction("acme", "alice", f"sku-{n:05d}", kinds[n % 3], 1.7e9 + n * 61.3)
                for n in range(events)
            ],
        )
        owned = sorted({int(InteractionType.PURCHASE), int(InteractionType.DISMISS)})
        conn = store._connection()
        row = conn.execute(
            _inputs_sql(1, len(owned), True),
            _inputs_params("acme", "alice", ["alice"], 50, owned, 0.0),
        ).fetchone()
        return [row[k] for k in row.keys() if k.startswith("k_") and isinstance(row[k], str)]
    finally:
        store.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--offers", type=int, default=50, help="offers in the kept list (50)")
    p.add_argument("--events", type=int, default=34, help="the customer's interactions (34)")
    p.add_argument("--calls", type=int, default=4000)
    args = p.parse_args()
    offers = kept_list(args.offers)
    kept = json.dumps(offers)
    with tempfile.TemporaryDirectory() as tmp:
        columns = read_columns(Path(tmp), args.events)
    rows = [
        (
            f"encode a kept list of {args.offers} offers",
            lambda: json.dumps(list(offers), separators=(",", ":")),
            lambda: orjson.dumps(offers).decode(),
        ),
        (
            "decode it (page 2)",
            lambda: json.loads(kept),
            lambda: orjson.loads(kept),
        ),
        (
            f"decode the read's {len(columns)} JSON columns ({args.events} events)",
            lambda: [json.loads(c) for c in columns],
            lambda: [orjson.loads(c) for c in columns],
        ),
    ]
    table = Table(title="JSON on the request path, µs per call", title_justify="left")
    for column in ("what", "json (floor)", "orjson", "orjson / json"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for what, standard, fast in rows:
        assert json.loads(json.dumps(standard())) == json.loads(json.dumps(fast()))
        floor, ours = per_call_us(standard, args.calls), per_call_us(fast, args.calls)
        table.add_row(what, f"{floor:.1f}", f"{ours:.1f}", f"{ours / floor:.2f}×")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
