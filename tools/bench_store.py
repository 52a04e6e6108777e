"""The data path's benchmarks (issue 8), each beside a floor measured in the same run.

1. Durable feedback: events/s through ``Store.record_interactions`` (idempotent, existence
   checked, durable before it returns; group-committed on PostgreSQL) on SQLite and PostgreSQL,
   beside a plain batched insert (same batches, same threads, one commit per batch, no checks)
   into the same database.
2. Recommend latency through gRPC right after a one-item catalog write, beside the latency
   with no write in between, on a 20k-item shop.
4. Event delivery between two replicas' stores (PostgreSQL LISTEN/NOTIFY): from the writing
   commit returning to the other replica's subscriber, beside the commit itself.
3. Goodput of well-behaved callers (4 threads, 50 ms calls) while another process floods the
   server with 1 ms-deadline calls, beside their goodput alone.
5. Keeping the list behind a recommendation id (SQLite, every first page keeps one): CPU per
   list through ``Store.put_recommendation_list`` (the list writer's group commits, JSON
   included), beside plain batched inserts of the same rows, already encoded, into copies of
   the table in the same file: its layout (a rowid table) and the WITHOUT ROWID layout it had
   before issue 12.
6. A fresh replica whose models all come from the trainer learning the shop's repeat purchases
   (the seen-item policy's ``learned``): the purchases and the items' categories alone, as it
   reads them now, beside the whole history read for a fit (``training_data``), as it did
   before; both give the same items.
7. A fit's read of a shop's interactions (``training_data``), on SQLite and PostgreSQL: the
   plugins' interactions built straight from the store's plain rows
   (``Store.iter_training_rows``), beside the records path it replaced (``iter_interactions``,
   then one plugin interaction per record).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import grpc
from rich.console import Console

sys.path.insert(0, os.path.dirname(__file__))
from bench_import import postgres_schema  # noqa: E402

from kosmos import cluster
from kosmos.client import KosmosClient
from kosmos.common.config import RecommendationSettings
from kosmos.common.server import build_server
from kosmos.store import SQLiteStore, Store
from kosmos.store.records import (
    Customer,
    Interaction,
    InteractionType,
    Item,
    RecommendationList,
    Shop,
)

PG_URL = os.environ.get("KOSMOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _seed(store: Store, items: int = 50, customers: int = 50) -> None:
    store.create_shop(Shop("bench"))
    for c in range(customers):
        store.create_customer(Customer("bench", f"c{c}"))
    store.upsert_items([Item("bench", f"i{n}") for n in range(items)])


def _rate(threads: int, batches: int, send: Callable[[int], None]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(batches)))
    return batches / (time.perf_counter() - started)


def _batch(n: int, size: int) -> list[Interaction]:
    return [
        Interaction("bench", f"c{(n + k) % 50}", f"i{k % 50}", InteractionType.CLICK, 1e9 + n)
        for k in range(size)
    ]


def feedback(
    store: Store, plain: Callable[[list[Interaction]], None], args: argparse.Namespace
) -> tuple[float, float]:
    _seed(store)

    def durable(n: int) -> None:
        store.record_interactions("bench", f"r{n}", "h", _batch(n, args.batch))

    def floor(n: int) -> None:
        plain(_batch(n, args.batch))

    ours = _rate(args.threads, args.batches, durable) * args.batch
    base = _rate(args.threads, args.batches, floor) * args.batch
    return ours, base


def sqlite_case(args: argparse.Namespace, folder: Path) -> tuple[float, float]:
    store = SQLiteStore(folder / "bench.db")
    local = threading.local()

    def plain(batch: list[Interaction]) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(folder / "bench.db", isolation_level=None, timeout=30)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE IF NOT EXISTS plain (c TEXT, i TEXT, t INT, e REAL)")
            local.conn = conn
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO plain VALUES (?, ?, ?, ?)",
            [(i.customer_id, i.item_id, int(i.type), i.event_time) for i in batch],
        )
        conn.execute("COMMIT")

    try:
        return feedback(store, plain, args)
    finally:
        store.close()


def postgres_case(args: argparse.Namespace) -> tuple[float, float] | None:
    import psycopg
    import psycopg_pool

    from kosmos.store.postgres import PostgresStore

    schema = f"kosmos_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL at {PG_URL} unreachable, skipped: {exc}")
        return None
    admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_URL}?options={quote(f'-c search_path={schema}')}"
    store = PostgresStore(url)
    admin.execute(f"CREATE TABLE {schema}.plain (c TEXT, i TEXT, t INT, e FLOAT8)")
    pool = psycopg_pool.ConnectionPool(url, min_size=args.threads, max_size=args.threads)

    def plain(batch: list[Interaction]) -> None:
        with pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO plain VALUES (%s, %s, %s, %s)",
                [(i.customer_id, i.item_id, int(i.type), i.event_time) for i in batch],
            )

    try:
        return feedback(store, plain, args)
    finally:
        store.close()
        pool.close()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def recommend_after_write(args: argparse.Namespace, folder: Path) -> tuple[float, float]:
    store = SQLiteStore(folder / "catalog.db")
    store.create_shop(Shop("big"))
    store.create_customer(Customer("big", "alice"))
    for start in range(0, args.catalog, 5000):
        store.upsert_items(
            [Item("big", f"i{n:06}", category=f"c{n % 20}") for n in range(start, start + 5000)]
        )
    store.record_interactions(
        "big", "seed", "h", [Interaction("big", "alice", "i000001", InteractionType.CLICK, 1.0)]
    )
    server, port, _health = build_server(
        "127.0.0.1:0", 4, cluster.services(store, RecommendationSettings(refresh_seconds=0))
    )
    server.start()
    try:
        with KosmosClient(f"127.0.0.1:{port}", timeout=30) as client:
            grpc.channel_ready_future(client._channels[f"127.0.0.1:{port}"]).result(timeout=5)
            client.recommend("big", "alice")  # warm: models, catalog, connections

            def timed() -> float:
                started = time.perf_counter()
                client.recommend("big", "alice")
                return (time.perf_counter() - started) * 1000

            before = statistics.median(timed() for _ in range(args.rounds))
            after = []
            for n in range(args.rounds):
                store.upsert_items([Item("big", f"i{n:06}", title=f"changed {n}")])
                after.append(timed())
            return before, statistics.median(after)
    finally:
        server.stop(None).wait()
        store.close()


_FLOOD = """
import sys, threading, grpc
call = grpc.insecure_channel(sys.argv[1]).unary_unary("/kosmos.bench.Slow/Work")
def flood():
    for _ in range(200000):
        try:
            call(b"x", timeout=0.001)
        except grpc.RpcError:
            pass
for _ in range(4):
    threading.Thread(target=flood, daemon=True).start()
print("flooding", flush=True)
threading.Event().wait()
"""


def goodput(calls: int = 40) -> tuple[float, float]:
    from kosmos.common.server import Service

    def work(request: bytes, _context: grpc.ServicerContext) -> bytes:
        threading.Event().wait(0.05)  # stands for 50 ms of work
        return request

    def register(server: grpc.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(work)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("kosmos.bench.Slow", {"Work": handler}),)
        )

    server, port, _health = build_server("127.0.0.1:0", 8, [Service("kosmos.bench.Slow", register)])
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/kosmos.bench.Slow/Work")
            call(b"x", timeout=5)

            def phase() -> float:
                started = time.perf_counter()
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(lambda _n: call(b"x", timeout=5), range(calls)))
                return calls / (time.perf_counter() - started)

            alone = phase()
            flood = subprocess.Popen(
                [sys.executable, "-c", _FLOOD, f"127.0.0.1:{port}"],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert flood.stdout is not None and flood.stdout.readline().strip() == "flooding"
                flooded = phase()
            finally:
                flood.kill()
                flood.communicate(timeout=30)
        return alone, flooded
    finally:
        server.stop(None).wait()


def events(rounds: int = 100) -> tuple[float, float] | None:
    """(p50 ms commit → delivery on the other store, p50 ms of the commit) on PostgreSQL."""
    import psycopg

    from kosmos.store.postgres import PostgresStore

    schema = f"kosmos_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        return None
    admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_URL}?options={quote(f'-c search_path={schema}')}"
    writer, reader = PostgresStore(url, pool_size=2), PostgresStore(url, pool_size=2)
    arrived = threading.Event()
    reader.subscribe(lambda _event: arrived.set())
    try:
        writer.create_shop(Shop("bench"))
        delivery, commit = [], []
        for n in range(rounds):
            arrived.clear()
            started = time.perf_counter()
            writer.upsert_items([Item("bench", f"i{n}")])
            committed = time.perf_counter()
            if not arrived.wait(5):
                raise RuntimeError("an event did not arrive within 5 s")
            delivery.append((time.perf_counter() - committed) * 1000)
            commit.append((committed - started) * 1000)
        return statistics.median(delivery), statistics.median(commit)
    finally:
        writer.close()
        reader.close()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def _lists(count: int) -> list[RecommendationList]:
    """``count`` lists of 50 offers as Recommend keeps them (`pages.to_document` entries)."""
    now = time.time()
    reasons = ("Popular with shoppers right now", "Popular in Toys, which you've been browsing")
    return [
        RecommendationList(
            "bench",
            uuid.uuid4().hex + uuid.uuid4().hex[:8],
            f"c{n % 50}",
            tuple(
                (f"sku-{(n * 7 + k) % 3000:05d}", 1.0 / (k + 1.3), reasons[k % 2])
                + ("popularity", "popular", (), "")
                for k in range(50)
            ),
            now,
            now + 86400,
        )
        for n in range(count)
    ]


def keeping_lists(folder: Path, count: int) -> dict[str, float]:
    """CPU microseconds per kept list: the store's writer, and plain inserts into copies of
    the table in its layout and in the old WITHOUT ROWID one (groups of 4, NORMAL sync)."""
    from kosmos.store._lists import list_row

    path = folder / "lists.db"
    store = SQLiteStore(path)
    store.create_shop(Shop("bench"))
    # A table that already holds a day's lists of a small shop, so inserts land in a B-tree.
    for record in _lists(count):
        store.put_recommendation_list(record)
    store._lists.flush()
    lists = _lists(count)
    started = time.process_time()
    for record in lists:
        store.put_recommendation_list(record)
    store._lists.flush()
    out = {"store": (time.process_time() - started) / count * 1e6}
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    (ddl,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'recommendation_lists'"
    ).fetchone()
    columns = "?, " * 8 + "?"
    for name, suffix in (("rowid table", ""), ("WITHOUT ROWID", " WITHOUT ROWID")):
        table = f"floor_lists_{len(out)}"
        shape = ddl.replace("recommendation_lists", table, 1).replace("WITHOUT ROWID", "")
        conn.execute(shape.rstrip() + suffix)
        conn.execute(f"CREATE INDEX {table}_expiry ON {table} (expire_time)")
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO {table} VALUES ({columns})", [list_row(r) for r in _lists(count)]
        )
        conn.execute("COMMIT")
        rows = [list_row(r) for r in _lists(count)]
        started = time.process_time()
        for start in range(0, len(rows), 4):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                f"INSERT OR REPLACE INTO {table} VALUES ({columns})", rows[start : start + 4]
            )
            conn.execute("COMMIT")
        out[name] = (time.process_time() - started) / count * 1e6
    conn.close()
    return out


def learning_repeats(folder: Path, customers: int) -> dict[str, float]:
    """Seconds to learn a shop's repeatable items both ways, on a SQLite shop of ``customers``
    customers with 20 events each (one in ten a purchase) over ``customers // 10`` items."""
    import random

    from kosmos.recommendation.models import ModelHub
    from kosmos.recommendation.seen import SeenPolicy, learn_repeatable
    from kosmos.training.data import training_data

    store = SQLiteStore(folder / "repeats.db")
    store.create_shop(Shop("bench"))
    items = max(10, customers // 10)
    store.upsert_items([Item("bench", f"i{n}", category=f"c{n % 50}") for n in range(items)])
    store.upsert_customers([Customer("bench", f"u{c}") for c in range(customers)])
    rng = random.Random(7)
    now = time.time()
    kinds = [InteractionType.VIEW] * 7 + [InteractionType.CLICK, InteractionType.ADD_TO_CART]
    events = [
        Interaction(
            "bench",
            f"u{c}",
            f"i{int(rng.paretovariate(1.2)) % items}",
            InteractionType.PURCHASE if rng.random() < 0.1 else rng.choice(kinds),
            now - rng.uniform(0, 60 * 86400),
        )
        for c in range(customers)
        for _ in range(20)
    ]
    for start in range(0, len(events), 10_000):
        store.import_interactions("bench", f"r{start}", "h", events[start : start + 10_000])
    policy = SeenPolicy()
    started = time.perf_counter()
    data = training_data(store, "bench", now)
    categories = {i: f.get("category", "") for i, f in data.item_features.items()}
    before = learn_repeatable(data.interactions, policy, categories)
    whole = time.perf_counter() - started
    del data
    hub = ModelHub(store, {}, (), {}, 0, seen_policy=policy)
    started = time.perf_counter()
    hub._learn_from_purchases("bench", policy)
    purchases = time.perf_counter() - started
    assert hub._repeatable["bench"] == before, "both ways must learn the same items"
    store.close()
    return {"events": len(events), "whole": whole, "purchases": purchases, "items": len(before)}


def _filled(store: Store, customers: int) -> int:
    """A shop of ``customers`` customers with 20 views each over 3,000 items; its events."""
    import random

    store.create_shop(Shop("bench"))
    store.upsert_items([Item("bench", f"i{n}") for n in range(3000)])
    store.upsert_customers([Customer("bench", f"u{c}") for c in range(customers)], echo=False)
    rng, now = random.Random(7), time.time()
    events = [
        Interaction(
            "bench",
            f"u{c}",
            f"i{int(rng.paretovariate(1.2)) % 3000}",
            InteractionType.VIEW,
            now - rng.uniform(0, 30 * 86400),
        )
        for c in range(customers)
        for _ in range(20)
    ]
    for start in range(0, len(events), 10_000):
        store.import_interactions("bench", f"r{start}", "h", events[start : start + 10_000])
    return len(events)


def training_read(folder: Path, customers: int) -> list[tuple[str, float, float]]:
    """(store, events/s from plain rows, events/s through records) for a fit's read, the
    better of two rounds each, alternated."""
    from kosmos.plugin.signals import DEFAULT_WEIGHTS, to_plugin
    from kosmos.training.data import _interactions

    def records(store: Store) -> object:
        return [to_plugin(i) for i in store.iter_interactions("bench")]

    def rows(store: Store) -> object:
        return _interactions(store, "bench", DEFAULT_WEIGHTS, {})

    out = []
    stores: list[tuple[str, Callable[[], Store]]] = [
        ("SQLite", lambda: SQLiteStore(folder / "training.db"))
    ]
    schema = postgres_schema(Console())
    if schema is not None:
        from kosmos.store.postgres import PostgresStore

        stores.append(("PostgreSQL", lambda: PostgresStore(schema[0])))
    try:
        for name, make in stores:
            store = make()
            count = _filled(store, customers)
            best = {"rows": 0.0, "records": 0.0}
            for _ in range(2):
                for way, read in (("records", records), ("rows", rows)):
                    started = time.perf_counter()
                    read(store)
                    best[way] = max(best[way], count / (time.perf_counter() - started))
            store.close()
            out.append((name, best["rows"], best["records"]))
    finally:
        if schema is not None:
            schema[1]()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--batches", type=int, default=400)
    p.add_argument("--batch", type=int, default=10, help="events per RecordInteractions")
    p.add_argument("--catalog", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--lists", type=int, default=3000, help="kept lists to time (3000)")
    p.add_argument("--only-lists", action="store_true", help="measure keeping lists alone")
    p.add_argument(
        "--repeat-customers", type=int, default=20000, help="customers of section 6's shop (20000)"
    )
    p.add_argument("--only-repeats", action="store_true", help="measure section 6 alone")
    p.add_argument(
        "--training-customers", type=int, default=30000, help="customers of section 7 (30000)"
    )
    p.add_argument("--only-training", action="store_true", help="measure section 7 alone")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, rows, records in training_read(folder, args.training_customers):
            print(
                f"a fit's read of {args.training_customers * 20:,} interactions ({name}):"
                f" {rows:,.0f} events/s from plain rows, {records:,.0f} through records"
                f" (ratio {rows / records:.2f})"
            )
        if args.only_training:
            return 0
        learned = learning_repeats(folder, args.repeat_customers)
        print(
            f"learning repeat purchases on a fresh replica ({args.repeat_customers} customers,"
            f" {learned['events']:,} events, SQLite): {learned['purchases']:.2f} s from the"
            f" purchases, {learned['whole']:.2f} s from the whole history read for a fit"
            f" (ratio {learned['whole'] / learned['purchases']:.1f}x; {learned['items']} items)"
        )
        if args.only_repeats:
            return 0
        kept = keeping_lists(folder, args.lists)
        print(
            f"keeping a 50-offer list (SQLite, CPU per list): {kept['store']:.0f} us through the"
            f" store's list writer; plain batched insert {kept['rowid table']:.0f} us into its"
            f" rowid table, {kept['WITHOUT ROWID']:.0f} us into the WITHOUT ROWID layout of"
            f" before (ratio store / plain {kept['store'] / kept['rowid table']:.2f})"
        )
        if args.only_lists:
            return 0
        rows = [("SQLite", sqlite_case(args, folder))]
        pg = postgres_case(args)
        if pg is not None:
            rows.append(("PostgreSQL", pg))
        print(f"durable feedback, {args.threads} threads, {args.batch} events per batch:")
        for name, (ours, base) in rows:
            print(
                f"  {name:<10} {ours:>9.0f} events/s durable   {base:>9.0f} events/s plain"
                f" batched insert   ratio {ours / base:.2f} (goal >= 0.50)"
            )
        before, after = recommend_after_write(args, folder)
        print(
            f"Recommend p50 on a {args.catalog}-item shop: {before:.1f} ms without writes,"
            f" {after:.1f} ms right after a 1-item catalog write"
            f" (ratio {after / before:.2f}, goal <= 1.20)"
        )
    delivered = events()
    if delivered is not None:
        print(
            f"catalog event to the other replica (LISTEN/NOTIFY): p50 {delivered[0]:.2f} ms after"
            f" the commit returned (the 1-item catalog commit itself: p50 {delivered[1]:.2f} ms)"
        )
    alone, flooded = goodput()
    print(
        f"goodput of 4 well-behaved callers: {alone:.0f} calls/s alone, {flooded:.0f} calls/s"
        f" under a flood of 1 ms-deadline calls (ratio {flooded / alone:.2f}, goal >= 0.80)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
