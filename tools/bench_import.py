"""``make bench`` (bulk intake): a shop imported through the public API against a plain
``executemany`` into the same SQLite file, in the same run.

The shop is the synthetic generator's JSON Lines (``python -m kosmos.datasets --out DIR``),
imported exactly as ``kosmos import`` does (`kosmos.bulk`) into a cluster running as its own
process (``python -m kosmos.cluster``, SQLite, ``synchronous=FULL``). The floor writes the same
rows, already parsed, into copies of the same tables (same columns, keys, indexes and foreign
keys) of the same database file, in transactions of the same size, with the store's pragmas:
what SQLite itself costs, with no parsing, validation or RPC. We print records/s for both, their
ratio, and what 10M events would take at the measured rate. For scale, the path a shop had
before (one ``CreateCustomer`` per customer) is timed on a few hundred customers.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kosmos import bulk
from kosmos.client import KosmosClient
from kosmos.datasets.__main__ import main as write_dataset

SHOP = "bench"
TEN_MILLION = 10_000_000
TYPES = {"view": 1, "click": 2, "add_to_cart": 3, "purchase": 4, "rating": 5, "dismiss": 6}


def floor(db: Path, folder: Path) -> dict[str, float]:
    """records/s of a plain executemany of the same rows into copies of the real tables."""
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(
        "CREATE TABLE floor_customers (shop_id TEXT NOT NULL REFERENCES shops (shop_id),"
        " customer_id TEXT NOT NULL, attributes TEXT NOT NULL, exclusions TEXT NOT NULL,"
        " create_time REAL NOT NULL, update_time REAL NOT NULL,"
        " PRIMARY KEY (shop_id, customer_id)) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE floor_interactions (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " shop_id TEXT NOT NULL, customer_id TEXT NOT NULL, item_id TEXT NOT NULL,"
        " type INTEGER NOT NULL, value REAL NOT NULL, event_time REAL NOT NULL,"
        " recommendation_id TEXT NOT NULL, request_id TEXT NOT NULL,"
        " FOREIGN KEY (shop_id, customer_id) REFERENCES customers (shop_id, customer_id))"
    )
    for index in ("customer_id, seq", "request_id", "seq"):
        name = "floor_by_" + index.split(",")[0]
        conn.execute(f"CREATE INDEX {name} ON floor_interactions (shop_id, {index})")
    now = time.time()
    customers = [
        (SHOP, c["customer_id"], json.dumps(c["attributes"]), "[]", now, now)
        for c in map(json.loads, (folder / "customers.jsonl").read_text().splitlines())
    ]
    events = [
        (SHOP, e["customer_id"], e["item_id"], TYPES[e["type"]], e["value"], e["time"], "", "f")
        for e in map(json.loads, (folder / "interactions.jsonl").read_text().splitlines())
    ]
    rates = {}
    for kind, rows, size, sql in (
        ("customers", customers, bulk.CUSTOMERS_BATCH, "INSERT INTO floor_customers VALUES"),
        (
            "interactions",
            events,
            bulk.INTERACTIONS_BATCH,
            "INSERT INTO floor_interactions (shop_id, customer_id, item_id, type, value,"
            " event_time, recommendation_id, request_id) VALUES",
        ),
    ):
        marks = ",".join("?" * len(rows[0]))
        started = time.perf_counter()
        for start in range(0, len(rows), size):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"{sql} ({marks})", rows[start : start + size])
            conn.execute("COMMIT")
        rates[kind] = len(rows) / (time.perf_counter() - started)
    conn.execute("DROP TABLE floor_interactions")
    conn.execute("DROP TABLE floor_customers")
    conn.close()
    return rates


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--customers", type=int, default=6000, help="synthetic customers (6000)")
    p.add_argument("--items", type=int, default=1000, help="synthetic items (1000)")
    p.add_argument("--one-by-one", type=int, default=300, help="customers created singly (300)")
    args = p.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shop"
        write_dataset(
            ["--customers", str(args.customers), "--items", str(args.items), "--out", str(folder)]
        )
        db = Path(tmp) / "bench.db"
        env = {
            **os.environ,
            "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
            "KOSMOS_DATABASE_URL": f"sqlite:///{db}",
            "KOSMOS_LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "kosmos.cluster"], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            address = server.stdout.readline().strip().rsplit(" ", 1)[-1]
            api: dict[str, tuple[int, float]] = {}
            with KosmosClient(address, timeout=120) as client:
                client.create_shop(SHOP)
                for kind, run in (
                    ("items", bulk.import_items),
                    ("customers", bulk.import_customers),
                    ("interactions", bulk.import_interactions),
                ):
                    started = time.perf_counter()
                    count = run(client, SHOP, bulk.read_records(folder / f"{kind}.jsonl"))
                    api[kind] = (count, time.perf_counter() - started)
                started = time.perf_counter()
                for n in range(args.one_by_one):
                    client.create_customer(SHOP, f"single-{n}", {"country": "UK"})
                single = args.one_by_one / (time.perf_counter() - started)
        finally:
            server.terminate()
            server.wait(timeout=30)
            if server.stdout is not None:
                server.stdout.close()
        rates = floor(db, folder)
    table = Table(
        title=f"make bench — bulk intake through the API vs plain executemany, same SQLite file, "
        f"{os.cpu_count()} cores",
        title_justify="left",
    )
    for column in ("records", "count", "API s", "API /s", "executemany /s", "API / floor"):
        table.add_column(column, justify="left" if column == "records" else "right")
    for kind in ("customers", "interactions"):
        count, seconds = api[kind]
        table.add_row(
            kind,
            f"{count:,}",
            f"{seconds:.1f}",
            f"{count / seconds:,.0f}",
            f"{rates[kind]:,.0f}",
            f"{count / seconds / rates[kind]:.0%}",
        )
    table.add_row(
        "customers, one CreateCustomer each", f"{args.one_by_one:,}", "", f"{single:,.0f}"
    )
    console.print(table)
    events, seconds = api["interactions"]
    console.print(
        f"10M events through ImportInteractions at this rate: "
        f"{TEN_MILLION / (events / seconds) / 60:.1f} min "
        f"(plain executemany: {TEN_MILLION / rates['interactions'] / 60:.1f} min)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
