"""The embedded store: SQLite in WAL mode, one connection per thread.

Durability: ``synchronous=FULL`` makes every commit reach the disk before it returns, so
feedback is acknowledged only once it would survive a power cut. Writes take the database lock
up front (``BEGIN IMMEDIATE``) so check-then-insert (request ids) cannot race.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kosmos.common import deadline
from kosmos.common.errors import AlreadyExists, DeadlineExceeded, NotFound
from kosmos.store import _migrations
from kosmos.store.records import (
    Customer,
    Exclusion,
    ExclusionKind,
    Interaction,
    InteractionType,
    Item,
    Shop,
    ShopSettingsRevision,
)

# SQLite calls the progress handler every this many virtual machine steps; it aborts the
# statement once the caller's deadline has passed.
_PROGRESS_STEPS = 2000
_MAX_PARAMS = 500


def _chunks(values: Sequence[str], size: int = _MAX_PARAMS) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _customer(row: sqlite3.Row) -> Customer:
    return Customer(
        shop_id=row["shop_id"],
        customer_id=row["customer_id"],
        attributes=json.loads(row["attributes"]),
        exclusions=tuple(
            Exclusion(ExclusionKind(kind), value) for kind, value in json.loads(row["exclusions"])
        ),
        create_time=row["create_time"],
        update_time=row["update_time"],
    )


def _item(row: sqlite3.Row) -> Item:
    return Item(
        shop_id=row["shop_id"],
        item_id=row["item_id"],
        title=row["title"],
        category=row["category"],
        brand=row["brand"],
        price=row["price"],
        available=bool(row["available"]),
        attributes=json.loads(row["attributes"]),
        update_time=row["update_time"],
    )


# Interactions are read on every recommendation: select columns in this order and build
# records positionally (name lookups on sqlite3.Row cost more than the query).
_INTERACTION_COLUMNS = (
    "shop_id, customer_id, item_id, type, event_time, value, recommendation_id, seq"
)
_TYPES = {t.value: t for t in InteractionType}


def _interaction(row: sqlite3.Row) -> Interaction:
    return Interaction(row[0], row[1], row[2], _TYPES[row[3]], row[4], row[5], row[6], row[7])


class SQLiteStore:
    """`kosmos.store.Store` on one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._migrate()

    # -- connections -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.set_progress_handler(deadline.expired, _PROGRESS_STEPS)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with self._translate():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise DeadlineExceeded("a database query") from exc
            raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._translate():
            return self._connection().execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_time REAL NOT NULL)"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in _migrations.load("sqlite"):
                if migration.version in applied:
                    continue
                for statement in migration.sql.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )

    def schema_version(self) -> int:
        return int(self._query("SELECT max(version) FROM schema_migrations")[0][0])

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- shops -------------------------------------------------------------------------------

    def create_shop(self, shop: Shop) -> Shop:
        created = Shop(shop.shop_id, shop.display_name, time.time())
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO shops (shop_id, display_name, create_time) VALUES (?, ?, ?)",
                    (created.shop_id, created.display_name, created.create_time),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists("SHOP_EXISTS", f"shop {shop.shop_id!r} already exists") from None
        return created

    def get_shop(self, shop_id: str) -> Shop | None:
        rows = self._query("SELECT * FROM shops WHERE shop_id = ?", (shop_id,))
        return (
            Shop(rows[0]["shop_id"], rows[0]["display_name"], rows[0]["create_time"])
            if rows
            else None
        )

    def list_shop_ids(self) -> list[str]:
        return [row[0] for row in self._query("SELECT shop_id FROM shops ORDER BY shop_id")]

    # -- customers ---------------------------------------------------------------------------

    def create_customer(self, customer: Customer) -> Customer:
        now = time.time()
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO customers (shop_id, customer_id, attributes, exclusions,"
                    " create_time, update_time) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        customer.shop_id,
                        customer.customer_id,
                        json.dumps(customer.attributes),
                        json.dumps([(e.kind.value, e.value) for e in customer.exclusions]),
                        now,
                        now,
                    ),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists(
                "CUSTOMER_EXISTS", f"customer {customer.customer_id!r} already exists"
            ) from None
        created = self.get_customer(customer.shop_id, customer.customer_id)
        assert created is not None
        return created

    def get_customer(self, shop_id: str, customer_id: str) -> Customer | None:
        rows = self._query(
            "SELECT * FROM customers WHERE shop_id = ? AND customer_id = ?", (shop_id, customer_id)
        )
        return _customer(rows[0]) if rows else None

    def update_customer(self, customer: Customer) -> Customer:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE customers SET attributes = ?, exclusions = ?, update_time = ?"
                " WHERE shop_id = ? AND customer_id = ?",
                (
                    json.dumps(customer.attributes),
                    json.dumps([(e.kind.value, e.value) for e in customer.exclusions]),
                    time.time(),
                    customer.shop_id,
                    customer.customer_id,
                ),
            )
        if cursor.rowcount == 0:
            raise NotFound("customer", f"shops/{customer.shop_id}/customers/{customer.customer_id}")
        updated = self.get_customer(customer.shop_id, customer.customer_id)
        assert updated is not None
        return updated

    def delete_customer(self, shop_id: str, customer_id: str) -> bool:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM interactions WHERE shop_id = ? AND customer_id = ?",
                (shop_id, customer_id),
            )
            cursor = conn.execute(
                "DELETE FROM customers WHERE shop_id = ? AND customer_id = ?",
                (shop_id, customer_id),
            )
        return cursor.rowcount > 0

    def list_customers(self, shop_id: str, after: str, limit: int) -> list[Customer]:
        rows = self._query(
            "SELECT * FROM customers WHERE shop_id = ? AND customer_id > ?"
            " ORDER BY customer_id LIMIT ?",
            (shop_id, after, limit),
        )
        return [_customer(row) for row in rows]

    def existing_customer_ids(self, shop_id: str, customer_ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(sorted(set(customer_ids))):
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"SELECT customer_id FROM customers WHERE shop_id = ? AND customer_id IN ({marks})",
                (shop_id, *chunk),
            )
            found.update(row[0] for row in rows)
        return found

    def upsert_customers(
        self,
        customers: Sequence[Customer],
        replace: Collection[str] = ("attributes", "exclusions"),
    ) -> tuple[list[Customer], int]:
        if not customers:
            return [], 0
        shop_id = customers[0].shop_id
        now = time.time()
        sets = [f"{f} = excluded.{f}" for f in ("attributes", "exclusions") if f in replace]
        with self._write() as conn:
            existing: dict[str, Customer] = {}
            for chunk in _chunks([c.customer_id for c in customers]):
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT * FROM customers WHERE shop_id = ? AND customer_id IN ({marks})",
                    (shop_id, *chunk),
                ).fetchall()
                existing.update((row["customer_id"], _customer(row)) for row in rows)
            conn.executemany(
                "INSERT INTO customers (shop_id, customer_id, attributes, exclusions,"
                " create_time, update_time) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (shop_id, customer_id) DO UPDATE SET "
                + ", ".join([*sets, "update_time = excluded.update_time"]),
                [
                    (
                        c.shop_id,
                        c.customer_id,
                        json.dumps(c.attributes),
                        json.dumps([(e.kind.value, e.value) for e in c.exclusions]),
                        now,
                        now,
                    )
                    for c in customers
                ],
            )
        stored = []
        for c in customers:
            old = existing.get(c.customer_id)
            keep_attributes = old is not None and "attributes" not in replace
            keep_exclusions = old is not None and "exclusions" not in replace
            stored.append(
                Customer(
                    c.shop_id,
                    c.customer_id,
                    old.attributes if old is not None and keep_attributes else dict(c.attributes),
                    old.exclusions if old is not None and keep_exclusions else tuple(c.exclusions),
                    old.create_time if old is not None else now,
                    now,
                )
            )
        return stored, len(customers) - len(existing)

    # -- items -------------------------------------------------------------------------------

    def upsert_items(self, items: Sequence[Item]) -> list[Item]:
        now = time.time()
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO items (shop_id, item_id, title, category, brand, price, available,"
                " attributes, update_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (shop_id, item_id) DO UPDATE SET title = excluded.title,"
                " category = excluded.category, brand = excluded.brand, price = excluded.price,"
                " available = excluded.available, attributes = excluded.attributes,"
                " update_time = excluded.update_time",
                [
                    (
                        i.shop_id,
                        i.item_id,
                        i.title,
                        i.category,
                        i.brand,
                        i.price,
                        int(i.available),
                        json.dumps(i.attributes),
                        now,
                    )
                    for i in items
                ],
            )
            for shop_id in {i.shop_id for i in items}:
                conn.execute(
                    "UPDATE shops SET catalog_version = catalog_version + 1 WHERE shop_id = ?",
                    (shop_id,),
                )
        return [
            Item(
                i.shop_id,
                i.item_id,
                i.title,
                i.category,
                i.brand,
                i.price,
                i.available,
                dict(i.attributes),
                now,
            )
            for i in items
        ]

    def existing_item_ids(self, shop_id: str, item_ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(sorted(set(item_ids))):
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"SELECT item_id FROM items WHERE shop_id = ? AND item_id IN ({marks})",
                (shop_id, *chunk),
            )
            found.update(row[0] for row in rows)
        return found

    def catalog_version(self, shop_id: str) -> int | None:
        rows = self._query("SELECT catalog_version FROM shops WHERE shop_id = ?", (shop_id,))
        return int(rows[0][0]) if rows else None

    def get_items(self, shop_id: str, item_ids: Iterable[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for chunk in _chunks(sorted(set(item_ids))):
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"SELECT * FROM items WHERE shop_id = ? AND item_id IN ({marks})", (shop_id, *chunk)
            )
            found.update((row["item_id"], _item(row)) for row in rows)
        return found

    def list_items(self, shop_id: str, after: str, limit: int) -> list[Item]:
        rows = self._query(
            "SELECT * FROM items WHERE shop_id = ? AND item_id > ? ORDER BY item_id LIMIT ?",
            (shop_id, after, limit),
        )
        return [_item(row) for row in rows]

    # -- interactions ------------------------------------------------------------------------

    def record_interactions(
        self, shop_id: str, request_id: str, request_hash: str, interactions: Sequence[Interaction]
    ) -> tuple[list[Interaction], bool]:
        with self._write() as conn:
            row = conn.execute(
                "SELECT request_hash FROM feedback_requests WHERE shop_id = ? AND request_id = ?",
                (shop_id, request_id),
            ).fetchone()
            if row is not None:
                if row[0] != request_hash:
                    raise AlreadyExists(
                        "REQUEST_ID_REUSED",
                        f"request_id {request_id!r} was already used for a different request",
                    )
                rows = conn.execute(
                    f"SELECT {_INTERACTION_COLUMNS} FROM interactions"
                    " WHERE shop_id = ? AND request_id = ? ORDER BY seq",
                    (shop_id, request_id),
                ).fetchall()
                return [_interaction(r) for r in rows], True
            conn.execute(
                "INSERT INTO feedback_requests (shop_id, request_id, request_hash, create_time)"
                " VALUES (?, ?, ?, ?)",
                (shop_id, request_id, request_hash, time.time()),
            )
            last = self._insert_interactions(conn, shop_id, request_id, interactions)
        # One writer holds the lock and seq is AUTOINCREMENT: the batch got consecutive seqs.
        first = last - len(interactions) + 1
        stored = [
            Interaction(
                shop_id,
                i.customer_id,
                i.item_id,
                i.type,
                i.event_time,
                i.value,
                i.recommendation_id,
                first + n,
            )
            for n, i in enumerate(interactions)
        ]
        return stored, False

    @staticmethod
    def _insert_interactions(
        conn: sqlite3.Connection,
        shop_id: str,
        request_id: str,
        interactions: Sequence[Interaction],
    ) -> int:
        """Inserts a batch with one ``executemany``; returns the last seq it got."""
        conn.executemany(
            "INSERT INTO interactions (shop_id, customer_id, item_id, type, value,"
            " event_time, recommendation_id, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    shop_id,
                    i.customer_id,
                    i.item_id,
                    int(i.type),
                    i.value,
                    i.event_time,
                    i.recommendation_id,
                    request_id,
                )
                for i in interactions
            ],
        )
        return int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])

    def import_interactions(
        self, shop_id: str, request_id: str, request_hash: str, interactions: Sequence[Interaction]
    ) -> tuple[int, bool]:
        with self._write() as conn:
            row = conn.execute(
                "SELECT request_hash FROM feedback_requests WHERE shop_id = ? AND request_id = ?",
                (shop_id, request_id),
            ).fetchone()
            if row is not None:
                if row[0] != request_hash:
                    raise AlreadyExists(
                        "REQUEST_ID_REUSED",
                        f"request_id {request_id!r} was already used for a different request",
                    )
                count = conn.execute(
                    "SELECT count(*) FROM interactions WHERE shop_id = ? AND request_id = ?",
                    (shop_id, request_id),
                ).fetchone()[0]
                return int(count), True
            conn.execute(
                "INSERT INTO feedback_requests (shop_id, request_id, request_hash, create_time)"
                " VALUES (?, ?, ?, ?)",
                (shop_id, request_id, request_hash, time.time()),
            )
            self._insert_interactions(conn, shop_id, request_id, interactions)
        return len(interactions), False

    def list_interactions(
        self, shop_id: str, customer_id: str, before_seq: int | None, limit: int
    ) -> list[Interaction]:
        rows = self._query(
            f"SELECT {_INTERACTION_COLUMNS} FROM interactions"
            " WHERE shop_id = ? AND customer_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (shop_id, customer_id, before_seq if before_seq is not None else 2**62, limit),
        )
        return [_interaction(row) for row in rows]

    def dismissed_item_ids(self, shop_id: str, customer_id: str) -> set[str]:
        rows = self._query(
            "SELECT DISTINCT item_id FROM interactions"
            " WHERE shop_id = ? AND customer_id = ? AND type = ?",
            (shop_id, customer_id, int(InteractionType.DISMISS)),
        )
        return {row[0] for row in rows}

    def iter_interactions(self, shop_id: str) -> Iterator[Interaction]:
        after = 0
        while True:
            rows = self._query(
                f"SELECT {_INTERACTION_COLUMNS} FROM interactions"
                " WHERE shop_id = ? AND seq > ? ORDER BY seq LIMIT 5000",
                (shop_id, after),
            )
            if not rows:
                return
            for row in rows:
                yield _interaction(row)
            after = rows[-1][7]

    # -- per-shop settings -------------------------------------------------------------------

    def settings_revision(self, shop_id: str) -> int | None:
        rows = self._query("SELECT settings_revision FROM shops WHERE shop_id = ?", (shop_id,))
        return int(rows[0][0]) if rows else None

    def get_shop_settings(self, shop_id: str, revision: int = 0) -> ShopSettingsRevision | None:
        if revision:
            rows = self._query(
                "SELECT * FROM shop_settings WHERE shop_id = ? AND revision = ?",
                (shop_id, revision),
            )
        else:
            rows = self._query(
                "SELECT s.* FROM shop_settings s JOIN shops USING (shop_id)"
                " WHERE s.shop_id = ? AND s.revision = shops.settings_revision",
                (shop_id,),
            )
        return _settings(rows[0]) if rows else None

    def put_shop_settings(self, shop_id: str, document: Mapping[str, Any]) -> ShopSettingsRevision:
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                "SELECT settings_revision FROM shops WHERE shop_id = ?", (shop_id,)
            ).fetchone()
            if row is None:
                raise NotFound("shop", f"shops/{shop_id}")
            revision = int(row[0]) + 1
            conn.execute(
                "INSERT INTO shop_settings (shop_id, revision, document, create_time)"
                " VALUES (?, ?, ?, ?)",
                (shop_id, revision, json.dumps(document, sort_keys=True), now),
            )
            conn.execute(
                "UPDATE shops SET settings_revision = ? WHERE shop_id = ?", (revision, shop_id)
            )
        return ShopSettingsRevision(shop_id, revision, json.loads(json.dumps(document)), now)

    def list_shop_settings(
        self, shop_id: str, before_revision: int | None, limit: int
    ) -> list[ShopSettingsRevision]:
        rows = self._query(
            "SELECT * FROM shop_settings WHERE shop_id = ? AND revision < ?"
            " ORDER BY revision DESC LIMIT ?",
            (shop_id, before_revision if before_revision is not None else 2**62, limit),
        )
        return [_settings(row) for row in rows]


def _settings(row: sqlite3.Row) -> ShopSettingsRevision:
    return ShopSettingsRevision(
        row["shop_id"], row["revision"], json.loads(row["document"]), row["create_time"]
    )
