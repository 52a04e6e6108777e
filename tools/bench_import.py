"""``make bench`` (bulk intake): a shop imported through the public API against a plain batched
insert into the same database, on SQLite and on PostgreSQL, in the same run.

The shop is the synthetic generator's JSON Lines (``python -m kosmos.datasets --out DIR``),
imported exactly as ``kosmos import`` does (`kosmos.bulk`: items, then customers, then events)
into a cluster running as its own process (``python -m kosmos.cluster``, authenticated with
its bootstrap key like the other benchmarks), once on a SQLite file (``synchronous=FULL``) and
once on PostgreSQL (a schema of its own; skipped when the server cannot be reached, never under
``CI=true``). Right after each kind is imported, so that both see the same load on the
machine, the floor writes the same rows, already parsed, into copies of the same tables (the
same columns, keys, indexes and foreign keys, made from the real tables' own definitions) in
the same database, with a plain ``executemany`` of ``INSERT`` in one transaction per batch of
the API's batch size: what the database itself costs, with no parsing, validation or RPC. We
print records/s for both and their ratio, and what 10M events would take at the measured rate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.table import Table

sys.path.insert(0, os.path.dirname(__file__))
from bench import cpu_list  # noqa: E402

from kosmos import bulk
from kosmos.client import KosmosClient
from kosmos.datasets.__main__ import main as write_dataset

SHOP = "bench"
TEN_MILLION = 10_000_000
TYPES = {"view": 1, "click": 2, "add_to_cart": 3, "purchase": 4, "rating": 5, "dismiss": 6}
PG_URL = os.environ.get("KOSMOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
KINDS = ("items", "customers", "interactions")
BATCH = {
    "items": bulk.ITEMS_BATCH,
    "customers": bulk.CUSTOMERS_BATCH,
    "interactions": bulk.INTERACTIONS_BATCH,
}
COLUMNS = {
    "items": "shop_id, item_id, title, category, brand, price, available, attributes,"
    " update_time, version",
    "customers": "shop_id, customer_id, attributes, exclusions, create_time, update_time",
    "interactions": "shop_id, customer_id, item_id, type, value, event_time, recommendation_id,"
    " request_id, channel, device",
}


def rows(folder: Path, kind: str) -> list[tuple[Any, ...]]:
    """The rows ``kind``'s store writes, as the floor inserts them. Read only when the floor
    runs, after the API import of that kind, and dropped after it: a client holding a
    million parsed rows would spend half its time in the garbage collector walking them."""

    def read(kind: str) -> Iterator[dict[str, Any]]:
        with (folder / f"{kind}.jsonl").open() as f:
            yield from map(json.loads, f)

    now = time.time()
    if kind == "items":
        return [
            (
                SHOP,
                i["item_id"],
                i["title"],
                i["category"],
                i["brand"],
                i["price"],
                bool(i.get("available", True)),
                json.dumps(i["attributes"]),
                now,
                1,
            )
            for i in read("items")
        ]
    if kind == "customers":
        return [
            (SHOP, c["customer_id"], json.dumps(c["attributes"]), "[]", now, now)
            for c in read("customers")
        ]
    return [
        (SHOP, e["customer_id"], e["item_id"], TYPES[e["type"]], e["value"], e["time"], "")
        + ("floor", "", "")
        for e in read("interactions")
    ]


Insert = Callable[[str, list[tuple[Any, ...]]], None]
"""Writes one batch of one kind's rows into its floor table, in one transaction."""


def _rate(insert: Insert, kind: str, rows: list[tuple[Any, ...]]) -> float:
    """records/s of the plain insert of ``rows``, in batches of the API's size."""
    started = time.perf_counter()
    for start in range(0, len(rows), BATCH[kind]):
        insert(kind, rows[start : start + BATCH[kind]])
    return len(rows) / (time.perf_counter() - started)


@contextmanager
def sqlite_floor(db: Path) -> Iterator[Insert]:
    """A plain executemany into copies of the real tables in the same file."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    for kind in KINDS:
        for (ddl,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL"
            " ORDER BY type DESC",  # the table, then its indexes
            (kind,),
        ).fetchall():
            ddl = re.sub(rf"\b{kind}\b", f"floor_{kind}", ddl, count=2)
            ddl = re.sub(r"^CREATE INDEX (\w+)", r"CREATE INDEX floor_\1", ddl)
            conn.execute(ddl)

    def insert(kind: str, batch: list[tuple[Any, ...]]) -> None:
        marks = ",".join("?" * len(batch[0]))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(f"INSERT INTO floor_{kind} ({COLUMNS[kind]}) VALUES ({marks})", batch)
        conn.execute("COMMIT")

    try:
        yield insert
    finally:
        for kind in reversed(KINDS):
            conn.execute(f"DROP TABLE floor_{kind}")
        conn.close()


@contextmanager
def postgres_floor(url: str) -> Iterator[Insert]:
    """A plain executemany (psycopg 3, pipelined) into copies of the real tables in the same
    schema."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    for kind in KINDS:
        conn.execute(f"CREATE TABLE floor_{kind} (LIKE {kind} INCLUDING ALL)")
        for (definition,) in conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'f'",
            (kind,),
        ).fetchall():
            conn.execute(f"ALTER TABLE floor_{kind} ADD {definition}")

    def insert(kind: str, batch: list[tuple[Any, ...]]) -> None:
        marks = ", ".join(["%s"] * len(batch[0]))
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO floor_{kind} ({COLUMNS[kind]}) VALUES ({marks})", batch
            )

    try:
        yield insert
    finally:
        for kind in reversed(KINDS):
            conn.execute(f"DROP TABLE floor_{kind}")
        conn.close()


@contextmanager
def cluster(database_url: str, cpus: set[int] = frozenset()) -> Iterator[tuple[str, str]]:
    """A cluster process on ``database_url`` (on ``cpus`` when given): its address and
    bootstrap key."""
    key = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
        "KOSMOS_DATABASE_URL": database_url,
        "KOSMOS_LOG_LEVEL": "WARNING",
        "KOSMOS_BOOTSTRAP_KEY": key,
        "KOSMOS_PROCESSES": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "kosmos.cluster"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip().rsplit(" ", 1)[-1], key
    finally:
        server.terminate()
        server.wait(timeout=60)
        if server.stdout is not None:
            server.stdout.close()


def measure(
    database_url: str,
    folder: Path,
    floor: Any,
    cpus: set[int] = frozenset(),
) -> dict[str, tuple[int, float, float]]:
    """Per kind: (records, seconds) imported the way ``kosmos import`` does, then at once the
    floor's records/s for the same rows, so that both see the same load on the machine."""
    out: dict[str, tuple[int, float, float]] = {}
    with (
        cluster(database_url, cpus) as (address, key),
        KosmosClient(address, timeout=300, api_key=key) as client,
    ):
        client.create_shop(SHOP)
        with floor() as insert:
            for kind, run in (
                ("items", bulk.import_items),
                ("customers", bulk.import_customers),
                ("interactions", bulk.import_interactions),
            ):
                started = time.perf_counter()
                count = run(client, SHOP, bulk.read_records(folder / f"{kind}.jsonl"))
                seconds = time.perf_counter() - started
                out[kind] = (count, seconds, _rate(insert, kind, rows(folder, kind)))
    return out


def client_alone(folder: Path) -> dict[str, float]:
    """Records/s of the client's own work per kind, with no RPC: reading the JSON Lines and
    building and serializing the requests exactly as ``kosmos import`` does (`kosmos.bulk`), on
    one core. No server can make an import faster than this."""
    from kosmos.v1 import catalog_service_pb2, profile_service_pb2

    requests = {
        "items": lambda columns: catalog_service_pb2.UpsertItemsRequest(
            parent=f"shops/{SHOP}", columns=columns, count_only=True
        ),
        "customers": lambda columns: profile_service_pb2.CreateCustomersRequest(
            parent=f"shops/{SHOP}", columns=columns, count_only=True
        ),
        "interactions": lambda columns: columns,
    }
    out = {}
    for kind, batches in (
        ("items", bulk._item_columns),
        ("customers", bulk._customer_columns),
        ("interactions", bulk._interaction_columns),
    ):
        started = time.process_time()
        count = 0
        with bulk._fewer_collections():  # as `kosmos import` runs
            records = bulk.read_records(folder / f"{kind}.jsonl")
            for batch, sources in batches(records, BATCH[kind]):
                count += len(sources)
                requests[kind](batch).SerializeToString()
        out[kind] = count / (time.process_time() - started)
    return out


def postgres_schema(console: Console) -> tuple[str, Callable[[], None]] | None:
    """A fresh schema's URL and how to drop it, or None when PostgreSQL is unreachable."""
    import psycopg

    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise
        console.print(f"PostgreSQL at {PG_URL} unreachable, skipped: {exc}")
        return None
    schema = f"kosmos_bench_import_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()

    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options={quote(f'-c search_path={schema}')}", drop


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    # Big enough that each kind takes a second or more through the API (smaller runs spread
    # by a third between runs).
    # Enough customers and items that each kind's import runs long enough to time (a batch
    # is a millisecond or two), with about as many events as before at 1.2 sessions each.
    p.add_argument("--customers", type=int, default=100_000, help="synthetic customers (100000)")
    p.add_argument("--items", type=int, default=100_000, help="synthetic items (100000)")
    p.add_argument("--days", type=int, default=1, help="days of history (1)")
    p.add_argument("--sessions", type=float, default=1.2, help="mean sessions per customer (1.2)")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument(
        "--server-cpus",
        default="auto",
        help="CPUs of the cluster process (0,1); this process (the client and the floor) takes"
        " the others; 'auto': the first two on a machine of 4 or more, else shared",
    )
    args = p.parse_args()
    usable = sorted(os.sched_getaffinity(0))
    if args.server_cpus == "auto":
        args.server_cpus = f"{usable[0]},{usable[1]}" if len(usable) >= 4 else ""
    cpus = cpu_list(args.server_cpus)
    if cpus:
        os.sched_setaffinity(0, set(usable) - cpus)
    console = Console(width=max(Console().width, 110))
    results: list[tuple[str, dict[str, tuple[int, float, float]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shop"
        write_dataset(
            ["--customers", str(args.customers), "--items", str(args.items)]
            + ["--days", str(args.days), "--sessions", str(args.sessions), "--out", str(folder)]
        )
        alone = client_alone(folder)
        db = Path(tmp) / "bench.db"
        results.append(
            ("SQLite", measure(f"sqlite:///{db}", folder, lambda: sqlite_floor(db), cpus))
        )
        pg = None if args.no_postgres else postgres_schema(console)
        if pg is not None:
            url, drop = pg
            try:
                results.append(
                    ("PostgreSQL", measure(url, folder, lambda: postgres_floor(url), cpus))
                )
            finally:
                drop()
    where = (
        f"cluster on CPUs {args.server_cpus}, client and floor on the others"
        if cpus
        else "shared by the cluster, the client and the floor"
    )
    table = Table(
        title=f"make bench — bulk intake through the API vs a plain batched insert into the same"
        f" database, {os.cpu_count()} cores ({where})",
        title_justify="left",
    )
    columns = ("store", "records", "a call", "count", "API s", "API /s", "plain insert /s")
    for column in (*columns, "API / floor", "client alone / floor"):
        table.add_column(column, justify="left" if column in ("store", "records") else "right")
    for store, measured in results:
        for kind in KINDS:
            count, seconds, floor = measured[kind]
            table.add_row(
                store,
                kind,
                f"{BATCH[kind]:,}",
                f"{count:,}",
                f"{seconds:.1f}",
                f"{count / seconds:,.0f}",
                f"{floor:,.0f}",
                f"{count / seconds / floor:.0%}",
                f"{alone[kind] / floor:.0%}",
            )
    console.print(table)
    console.print(
        "client alone: reading the JSON Lines and building and serializing the requests as"
        " `kosmos import` does, no RPC, CPU of one core — "
        + ", ".join(f"{kind} {alone[kind]:,.0f}/s" for kind in KINDS)
    )
    for store, measured in results:
        events, seconds, floor = measured["interactions"]
        console.print(
            f"{store}: 10M events through ImportInteractions at this rate take "
            f"{TEN_MILLION / (events / seconds) / 60:.1f} min "
            f"(plain insert: {TEN_MILLION / floor / 60:.1f} min)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
