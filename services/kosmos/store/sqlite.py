"""The embedded store: SQLite in WAL mode, one connection per thread.

Durability: ``synchronous=FULL`` makes every commit reach the disk before it returns, so
feedback is acknowledged only once it would survive a power cut. Writes take the database lock
up front (``BEGIN IMMEDIATE``) so check-then-insert (request ids, existence) cannot race.

Waiting: SQLite's busy timeout is set before every statement to what is left of the caller's
deadline (at most ``lock_timeout``), so a lock held by another writer costs a caller no more
than its deadline; a write whose deadline has passed by commit time is rolled back instead.
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
from kosmos.common.errors import AlreadyExists, DeadlineExceeded, NotFound, Unavailable
from kosmos.common.names import customer_name, item_name, shop_name
from kosmos.store import _migrations
from kosmos.store._tracing import traced
from kosmos.store.events import CATALOG, CUSTOMER, MODEL, Event, Subscriber, Subscribers
from kosmos.store.records import (
    ApiKey,
    CatalogChanges,
    Customer,
    Exclusion,
    ExclusionKind,
    Interaction,
    InteractionType,
    Item,
    ModelArtifact,
    RecommendInputs,
    Shop,
    ShopSettingsRevision,
)

# SQLite calls the progress handler every this many virtual machine steps; it aborts the
# statement once the caller's deadline has passed.
_PROGRESS_STEPS = 2000
_MAX_PARAMS = 500
_MMAP_BYTES = 256 * 1024 * 1024
# How long a statement waits for another writer's lock when the caller set no deadline.
LOCK_TIMEOUT_SECONDS = 10.0
# Driver messages that mean "another process holds the database" or "the file is gone": the
# caller may retry. Other OperationalErrors are bugs and stay errors.
_BUSY = ("locked", "busy")
_GONE = ("disk i/o error", "unable to open", "readonly database", "disk is full")


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


def _api_key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        shop_id=row["shop_id"],
        scope=row["scope"],
        secret_hash=row["secret_hash"],
        display_name=row["display_name"],
        create_time=row["create_time"],
        revoke_time=row["revoke_time"],
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
# The literal type number lets SQLite use the partial index ``interactions_dismissed``.
_DISMISSED = (
    "SELECT DISTINCT item_id FROM interactions"
    f" WHERE shop_id = ? AND customer_id = ? AND type = {int(InteractionType.DISMISS)}"
)


def _interaction(row: sqlite3.Row) -> Interaction:
    return Interaction(row[0], row[1], row[2], _TYPES[row[3]], row[4], row[5], row[6], row[7])


@traced("sqlite")
class SQLiteStore:
    """`kosmos.store.Store` on one SQLite file."""

    def __init__(self, path: str | Path, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        self.path = str(path)
        self.lock_timeout = lock_timeout
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # SQLite has one writer at a time anyway: this process's writers queue here and are
        # handed the file in turn, instead of sleeping in SQLite's busy handler and polling.
        self._writer = threading.Lock()
        self._subscribers = Subscribers()
        self._migrate()

    # -- connections -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
            conn.row_factory = sqlite3.Row
            # Before anything else: switching a new file to WAL takes a lock, which another
            # process opening the same file at once (KOSMOS_PROCESSES) may hold for a moment.
            conn.execute(f"PRAGMA busy_timeout = {max(1, int(self.lock_timeout * 1000))}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            # Reads map the file instead of copying pages: another connection's write then
            # costs this one little (its page cache is dropped on every foreign commit).
            conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
            conn.set_progress_handler(deadline.expired, _PROGRESS_STEPS)
            self._local.conn = conn
            self._local.busy_ms = -1
            with self._lock:
                self._connections.append(conn)
        return conn

    def _bounded(self, stage: str) -> sqlite3.Connection:
        """The thread's connection, its lock wait bounded by the deadline; refuses when the
        deadline has passed already (no work starts for a caller that gave up)."""
        deadline.check(stage)
        conn = self._connection()
        left = deadline.remaining()
        wait = self.lock_timeout if left is None else min(left, self.lock_timeout)
        busy_ms = max(1, int(wait * 1000))
        if busy_ms != self._local.busy_ms:
            conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
            self._local.busy_ms = busy_ms
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        deadline.check("a database write")
        left = deadline.remaining()
        wait = self.lock_timeout if left is None else min(max(left, 0.0), self.lock_timeout)
        if not self._writer.acquire(timeout=wait):
            deadline.check("waiting for the database lock")
            raise Unavailable("DATABASE_BUSY", "the database is busy with other writes; retry")
        try:
            with self._translate():
                conn = self._bounded("a database write")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    # The caller gave up while we waited or worked: do not commit behind its
                    # back (it will retry, and the retry must not find a half-known attempt).
                    deadline.check("a database commit")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        finally:
            self._writer.release()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One snapshot for several statements (WAL readers never block writers)."""
        with self._translate():
            conn = self._bounded("a database read")
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if "interrupted" in message or deadline.expired():
                raise DeadlineExceeded("a database query") from exc
            if any(word in message for word in _BUSY):
                raise Unavailable(
                    "DATABASE_BUSY", "the database is locked by another writer; retry"
                ) from exc
            if any(word in message for word in _GONE):
                raise Unavailable("DATABASE_UNAVAILABLE", "the database cannot be used") from exc
            raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._translate():
            return self._bounded("a database query").execute(sql, params).fetchall()

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
        """The newest migration applied."""
        return int(self._query("SELECT max(version) FROM schema_migrations")[0][0])

    def pragma(self, name: str) -> str:
        """A connection setting as SQLite reports it (``journal_mode``, ``synchronous``)."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma name: {name!r}")
        return str(self._query(f"PRAGMA {name}")[0][0])

    def ping(self) -> None:
        self._query("SELECT 1")

    # -- API keys ----------------------------------------------------------------------------

    def create_api_key(self, key: ApiKey) -> ApiKey:
        created = ApiKey(
            key.key_id, key.shop_id, key.scope, key.secret_hash, key.display_name, time.time()
        )
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO api_keys (key_id, shop_id, scope, secret_hash, display_name,"
                    " create_time) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        created.key_id,
                        created.shop_id,
                        created.scope,
                        created.secret_hash,
                        created.display_name,
                        created.create_time,
                    ),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists("API_KEY_EXISTS", "the key id is taken") from None
        return created

    def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = self._query("SELECT * FROM api_keys WHERE key_id = ?", (key_id,))
        return _api_key(rows[0]) if rows else None

    def list_api_keys(self, shop_id: str | None, after: str, limit: int) -> list[ApiKey]:
        if shop_id is None:
            rows = self._query(
                "SELECT * FROM api_keys WHERE key_id > ? ORDER BY key_id LIMIT ?", (after, limit)
            )
        else:
            rows = self._query(
                "SELECT * FROM api_keys WHERE shop_id = ? AND key_id > ? ORDER BY key_id LIMIT ?",
                (shop_id, after, limit),
            )
        return [_api_key(row) for row in rows]

    def revoke_api_key(self, key_id: str) -> ApiKey | None:
        with self._write() as conn:
            conn.execute(
                "UPDATE api_keys SET revoke_time = ? WHERE key_id = ? AND revoke_time IS NULL",
                (time.time(), key_id),
            )
            rows = conn.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchall()
        return _api_key(rows[0]) if rows else None

    def subscribe(self, callback: Subscriber) -> None:
        # One process owns an embedded file: its own writes are every write there is.
        self._subscribers.add(callback)

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
        self._subscribers.deliver(Event(CUSTOMER, customer.shop_id, customer.customer_id))
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
        if cursor.rowcount > 0:
            self._subscribers.deliver(Event(CUSTOMER, shop_id, customer_id))
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
            versions: dict[str, int] = {}
            for shop_id in sorted({i.shop_id for i in items}):
                row = conn.execute(
                    "UPDATE shops SET catalog_version = catalog_version + 1 WHERE shop_id = ?"
                    " RETURNING catalog_version",
                    (shop_id,),
                ).fetchone()
                versions[shop_id] = int(row[0]) if row is not None else 0
            conn.executemany(
                "INSERT INTO items (shop_id, item_id, title, category, brand, price, available,"
                " attributes, update_time, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (shop_id, item_id) DO UPDATE SET title = excluded.title,"
                " category = excluded.category, brand = excluded.brand, price = excluded.price,"
                " available = excluded.available, attributes = excluded.attributes,"
                " update_time = excluded.update_time, version = excluded.version",
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
                        versions[i.shop_id],
                    )
                    for i in items
                ],
            )
        for shop_id in versions:
            self._subscribers.deliver(Event(CATALOG, shop_id))
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

    def catalog_changes(self, shop_id: str, since_version: int) -> CatalogChanges | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT catalog_version FROM shops WHERE shop_id = ?", (shop_id,)
            ).fetchone()
            if row is None:
                return None
            # No ORDER BY: SQLite would then walk the primary key (every item) instead of
            # items_by_version (only what changed); the few changed rows sort in Python.
            rows = conn.execute(
                "SELECT * FROM items WHERE shop_id = ? AND version > ?",
                (shop_id, since_version),
            ).fetchall()
        items = sorted((_item(r) for r in rows), key=lambda i: i.item_id)
        return CatalogChanges(int(row[0]), items)

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
            replay = self._replay(conn, shop_id, request_id, request_hash)
            if replay is not None:
                return replay, True
            self._check_references(conn, shop_id, interactions)
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
    def _replay(
        conn: sqlite3.Connection, shop_id: str, request_id: str, request_hash: str
    ) -> list[Interaction] | None:
        """What an earlier request with this id stored, or None when it is new."""
        row = conn.execute(
            "SELECT request_hash FROM feedback_requests WHERE shop_id = ? AND request_id = ?",
            (shop_id, request_id),
        ).fetchone()
        if row is None:
            return None
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
        return [_interaction(r) for r in rows]

    @staticmethod
    def _check_references(
        conn: sqlite3.Connection, shop_id: str, interactions: Sequence[Interaction]
    ) -> None:
        """Raises NotFound for the first unknown shop, customer or item, inside the write."""
        if conn.execute("SELECT 1 FROM shops WHERE shop_id = ?", (shop_id,)).fetchone() is None:
            raise NotFound("shop", shop_name(shop_id))
        for table, column, ids, name in (
            ("customers", "customer_id", {i.customer_id for i in interactions}, customer_name),
            ("items", "item_id", {i.item_id for i in interactions}, item_name),
        ):
            found: set[str] = set()
            for chunk in _chunks(sorted(ids)):
                marks = ",".join("?" * len(chunk))
                found.update(
                    r[0]
                    for r in conn.execute(
                        f"SELECT {column} FROM {table} WHERE shop_id = ? AND {column} IN ({marks})",
                        (shop_id, *chunk),
                    )
                )
            missing = sorted(ids - found)
            if missing:
                raise NotFound(table.removesuffix("s"), name(shop_id, missing[0]))

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
            # Inside the write, as for record_interactions: no orphan rows (issue 8).
            self._check_references(conn, shop_id, interactions)
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
        return {row[0] for row in self._query(_DISMISSED, (shop_id, customer_id))}

    def recommend_inputs(
        self,
        shop_id: str,
        customer_id: str,
        recent_limit: int,
        owned_types: Collection[InteractionType] = (),
    ) -> RecommendInputs | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT * FROM customers WHERE shop_id = ? AND customer_id = ?",
                (shop_id, customer_id),
            ).fetchone()
            if row is None:
                return None
            recent = conn.execute(
                f"SELECT {_INTERACTION_COLUMNS} FROM interactions"
                " WHERE shop_id = ? AND customer_id = ? ORDER BY seq DESC LIMIT ?",
                (shop_id, customer_id, recent_limit),
            ).fetchall()
            dismissed = conn.execute(_DISMISSED, (shop_id, customer_id)).fetchall()
            owned = []
            kinds = sorted({int(t) for t in owned_types})
            if kinds:
                owned = conn.execute(
                    "SELECT DISTINCT item_id FROM interactions WHERE shop_id = ?"
                    f" AND customer_id = ? AND type IN ({','.join('?' * len(kinds))})",
                    (shop_id, customer_id, *kinds),
                ).fetchall()
        return RecommendInputs(
            _customer(row),
            [_interaction(r) for r in recent],
            frozenset(r[0] for r in dismissed),
            frozenset(r[0] for r in owned),
        )

    def iter_interactions(self, shop_id: str, after_seq: int = 0) -> Iterator[Interaction]:
        after = after_seq
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

    def data_version(self, shop_id: str) -> str:
        with self._read() as conn:
            seq = conn.execute(
                "SELECT max(seq), count(*) FROM interactions WHERE shop_id = ?", (shop_id,)
            ).fetchone()
            catalog = conn.execute(
                "SELECT catalog_version FROM shops WHERE shop_id = ?", (shop_id,)
            ).fetchone()
            customers = conn.execute(
                "SELECT count(*), max(update_time) FROM customers WHERE shop_id = ?", (shop_id,)
            ).fetchone()
        return (
            f"{seq[0] or 0}.{seq[1]}.{catalog[0] if catalog else -1}.{customers[0]}"
            f".{customers[1] or 0}"
        )

    # -- model artifacts ---------------------------------------------------------------------

    def put_model_artifact(self, artifact: ModelArtifact, blob: bytes) -> None:
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO model_artifacts (shop_id, recommender, version, create_time,"
                    " manifest, artifact) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        artifact.shop_id,
                        artifact.recommender,
                        artifact.version,
                        artifact.create_time,
                        artifact.manifest,
                        blob,
                    ),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists(
                "MODEL_VERSION_EXISTS", f"model version {artifact.version!r} already exists"
            ) from None

    def model_artifacts(self, shop_id: str, recommender: str) -> list[ModelArtifact]:
        rows = self._query(
            "SELECT shop_id, recommender, version, create_time, manifest FROM model_artifacts"
            " WHERE shop_id = ? AND recommender = ? ORDER BY create_time, version",
            (shop_id, recommender),
        )
        return [ModelArtifact(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def model_blob(self, shop_id: str, recommender: str, version: str) -> bytes | None:
        rows = self._query(
            "SELECT artifact FROM model_artifacts"
            " WHERE shop_id = ? AND recommender = ? AND version = ?",
            (shop_id, recommender, version),
        )
        return bytes(rows[0][0]) if rows else None

    def set_current_model(self, shop_id: str, recommender: str, version: str) -> None:
        with self._write() as conn:
            found = conn.execute(
                "SELECT 1 FROM model_artifacts WHERE shop_id = ? AND recommender = ?"
                " AND version = ?",
                (shop_id, recommender, version),
            ).fetchone()
            if found is None:
                raise NotFound("model version", f"{shop_id}/{recommender}/{version}")
            conn.execute(
                "INSERT INTO model_current (shop_id, recommender, version) VALUES (?, ?, ?)"
                " ON CONFLICT (shop_id, recommender) DO UPDATE SET version = excluded.version",
                (shop_id, recommender, version),
            )
        self._subscribers.deliver(Event(MODEL, shop_id, recommender))

    def current_model(self, shop_id: str, recommender: str) -> str | None:
        rows = self._query(
            "SELECT version FROM model_current WHERE shop_id = ? AND recommender = ?",
            (shop_id, recommender),
        )
        return str(rows[0][0]) if rows else None

    def delete_model_artifacts(
        self, shop_id: str, recommender: str, versions: Sequence[str]
    ) -> None:
        with self._write() as conn:
            conn.executemany(
                "DELETE FROM model_artifacts WHERE shop_id = ? AND recommender = ? AND version = ?",
                [(shop_id, recommender, v) for v in versions],
            )

    def model_recommenders(self, shop_id: str) -> list[str]:
        rows = self._query(
            "SELECT DISTINCT recommender FROM model_artifacts WHERE shop_id = ? ORDER BY 1",
            (shop_id,),
        )
        return [r[0] for r in rows]

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
