"""The embedded store: SQLite in WAL mode, one connection per thread.

Durability: ``synchronous=FULL`` makes every commit reach the disk before it returns, so
feedback is acknowledged only once it would survive a power cut. Writes take the database lock
up front (``BEGIN IMMEDIATE``) so check-then-insert (request ids, existence) cannot race.

Waiting: SQLite's busy timeout is set before every statement to what is left of the caller's
deadline (at most ``lock_timeout``), so a lock held by another writer costs a caller no more
than its deadline; a write whose deadline has passed by commit time is rolled back instead.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from kosmos.common import deadline
from kosmos.common.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    Unavailable,
)
from kosmos.common.names import customer_name, item_name, shop_name
from kosmos.store import _migrations
from kosmos.store._group import GroupWriter
from kosmos.store._lists import list_row, read_list
from kosmos.store._tracing import traced
from kosmos.store.events import (
    API_KEY,
    CATALOG,
    CUSTOMER,
    HISTORY,
    MODEL,
    Event,
    Subscriber,
    Subscribers,
)
from kosmos.store.records import (
    CONSENT_DEFAULTS,
    IMPRESSIONS_LIMIT,
    ApiKey,
    CatalogChanges,
    Consent,
    ConsentPurpose,
    Customer,
    Erasure,
    ExperimentOutcomes,
    IdentityLink,
    Impression,
    Interaction,
    InteractionType,
    Item,
    ModelArtifact,
    RecommendationList,
    RecommendInputs,
    Replica,
    Shop,
    ShopRevisions,
    ShopSettingsRevision,
    StoredItems,
    customer_ids,
    customer_rows,
    decode_exclusions,
    decode_preferences,
    decode_price_range,
    encode_exclusions,
    encode_preferences,
    encode_price_range,
    interaction_rows,
    item_rows,
    item_shop_ids,
    referenced_ids,
    subject_hash,
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
        exclusions=decode_exclusions(row["exclusions"]),
        create_time=row["create_time"],
        update_time=row["update_time"],
        preferences=decode_preferences(row["preferences"]),
        price_range=decode_price_range(row["price_range"]),
        anonymous=bool(row["anonymous"]),
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
    "shop_id, customer_id, item_id, type, event_time, value, recommendation_id, seq, channel,"
    " device"
)
_TYPES = {t.value: t for t in InteractionType}
# A customer who withdrew training consent never enters a model (issue 11); takes the shop id
# and ConsentPurpose.TRAINING.
_TRAINABLE = (
    "customer_id NOT IN (SELECT customer_id FROM consents WHERE shop_id = ? AND purpose = ?"
    " AND granted = 0)"
)
# The literal type number lets SQLite use the partial index ``interactions_dismissed``.
_DISMISSED = (
    "SELECT DISTINCT item_id FROM interactions"
    f" WHERE shop_id = ? AND customer_id = ? AND type = {int(InteractionType.DISMISS)}"
)


def _interaction(row: sqlite3.Row) -> Interaction:
    return Interaction(
        row[0], row[1], row[2], _TYPES[row[3]], row[4], row[5], row[6], row[7], row[8], row[9]
    )


_recency = operator.attrgetter("event_time", "seq")
_impression_time = operator.attrgetter("event_time")
# A REAL as text that reads back as the same float: SQLite's JSON and CAST keep 15
# significant digits, which loses a timestamp's microseconds (`tests/store/contract.py`
# checks the round trip).
_EXACT = "printf('%!.18g', {})"


@functools.lru_cache(maxsize=64)
def _inputs_sql(people: int, kinds: int, impressions: bool) -> str:
    """`SQLiteStore.recommend_inputs`'s one statement for a person of ``people`` ids (the
    customer's first), ``kinds`` interaction types of the dismissed-and-owned pass, with or
    without impressions. Its parameters: `_inputs_params`."""
    who = f"customer_id IN ({','.join('?' * people)})"
    shown = (
        "(SELECT json_group_array(json_array(recommendation_id, item_id,"
        f" {_EXACT.format('event_time')})) FROM (SELECT recommendation_id, item_id, event_time"
        " FROM impressions WHERE shop_id = ? AND customer_id = ? AND event_time >= ?"
        " ORDER BY event_time DESC LIMIT ?))"
        if impressions
        else "NULL"
    )
    return (
        "SELECT c.*, s.catalog_version AS k_catalog, s.settings_revision AS k_settings,"
        " (SELECT json_group_object(kind, revision) FROM shop_document_heads"
        "  WHERE shop_id = c.shop_id) AS k_documents,"
        " (SELECT json_group_array(json_array(purpose, granted)) FROM consents"
        "  WHERE shop_id = c.shop_id AND customer_id = c.customer_id) AS k_consents,"
        " (SELECT mask_time FROM model_masks WHERE shop_id = c.shop_id AND subject = ?)"
        " AS k_mask,"
        " (SELECT json_group_array(linked) FROM (SELECT linked_id AS linked FROM identity_links"
        "  WHERE shop_id = c.shop_id AND customer_id = c.customer_id"
        "  UNION SELECT customer_id FROM identity_links"
        "  WHERE shop_id = c.shop_id AND linked_id = c.customer_id)) AS k_linked,"
        " (SELECT json_group_array(json_array(customer_id, item_id, type,"
        f" {_EXACT.format('event_time')}, {_EXACT.format('value')}, recommendation_id, seq,"
        " channel, device)) FROM (SELECT customer_id, item_id, type, event_time, value,"
        f" recommendation_id, seq, channel, device FROM interactions WHERE shop_id = ? AND {who}"
        " ORDER BY event_time DESC, seq DESC LIMIT ?)) AS k_recent,"
        # Dismissed and owned in one pass over the person's distinct (item, type) pairs.
        " (SELECT json_group_array(json_array(item_id, type)) FROM (SELECT DISTINCT item_id,"
        f" type FROM interactions WHERE shop_id = ? AND {who}"
        f" AND type IN ({','.join('?' * kinds)}))) AS k_kinds,"
        f" {shown} AS k_shown"
        " FROM customers AS c JOIN shops AS s ON s.shop_id = c.shop_id"
        " WHERE c.shop_id = ? AND c.customer_id = ?"
    )


def _inputs_params(
    shop_id: str,
    customer_id: str,
    ids: Sequence[str],
    recent_limit: int,
    kinds: Sequence[int],
    since: float | None,
) -> tuple[Any, ...]:
    shown = () if since is None else (shop_id, customer_id, since, IMPRESSIONS_LIMIT)
    return (
        subject_hash(shop_id, customer_id),
        shop_id,
        *ids,
        recent_limit,
        shop_id,
        *ids,
        *kinds,
        *shown,
        shop_id,
        customer_id,
    )


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
        self._lists: GroupWriter[RecommendationList] = GroupWriter(
            self._put_lists, "kosmos-list-writer"
        )
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
        # Within a fifth below the wanted wait is near enough: requests with the same deadline
        # (each a millisecond or so less left than the last) then set it once, not once each (a
        # statement more a request, and two more hand-offs of the GIL).
        if not busy_ms * 0.8 <= self._local.busy_ms <= busy_ms:
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
        if rows:  # processes that cache keys drop it (`kosmos.common.auth`)
            self._subscribers.deliver(Event(API_KEY, rows[0]["shop_id"], key_id))
        return _api_key(rows[0]) if rows else None

    def subscribe(self, callback: Subscriber) -> None:
        # One process owns an embedded file: its own writes are every write there is.
        self._subscribers.add(callback)

    def beat_replica(self, replica: Replica, purge_before: float) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO replicas (replica_id, services, version, start_time, seen_time,"
                " status) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (replica_id) DO UPDATE"
                " SET services = excluded.services, version = excluded.version,"
                " start_time = excluded.start_time, seen_time = excluded.seen_time,"
                " status = excluded.status",
                (replica.replica_id, ",".join(replica.services), replica.version,
                 replica.start_time, replica.seen_time, replica.status),
            )  # fmt: skip
            conn.execute("DELETE FROM replicas WHERE seen_time < ?", (purge_before,))

    def list_replicas(self, seen_since: float) -> list[Replica]:
        rows = self._query(
            "SELECT replica_id, services, version, start_time, seen_time, status FROM replicas"
            " WHERE seen_time >= ? ORDER BY replica_id",
            (seen_since,),
        )
        return [
            Replica(r[0], tuple(s for s in r[1].split(",") if s), r[2], r[3], r[4], r[5])
            for r in rows
        ]

    def remove_replica(self, replica_id: str) -> bool:
        with self._write() as conn:
            gone = conn.execute("DELETE FROM replicas WHERE replica_id = ?", (replica_id,))
            return bool(gone.rowcount)

    def close(self) -> None:
        self._lists.close()
        self._lists = GroupWriter(self._put_lists, "kosmos-list-writer")  # it may be reopened
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
                    " create_time, update_time, preferences, price_range, anonymous)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        customer.shop_id,
                        customer.customer_id,
                        json.dumps(customer.attributes),
                        encode_exclusions(customer.exclusions),
                        now,
                        now,
                        encode_preferences(customer.preferences),
                        encode_price_range(customer.price_range),
                        int(customer.anonymous),
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
                "UPDATE customers SET attributes = ?, exclusions = ?, update_time = ?,"
                " preferences = ?, price_range = ?, anonymous = ?"
                " WHERE shop_id = ? AND customer_id = ?",
                (
                    json.dumps(customer.attributes),
                    encode_exclusions(customer.exclusions),
                    time.time(),
                    encode_preferences(customer.preferences),
                    encode_price_range(customer.price_range),
                    int(customer.anonymous),
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
        self._lists.flush()  # what was kept for the customer before this is deleted too
        with self._write() as conn:
            conn.execute(
                "DELETE FROM interactions WHERE shop_id = ? AND customer_id = ?",
                (shop_id, customer_id),
            )
            conn.execute(  # the lists kept for their later pages (no foreign key)
                "DELETE FROM recommendation_lists WHERE shop_id = ? AND customer_id = ?",
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
        echo: bool = True,
    ) -> tuple[list[Customer], int]:
        if not customers:
            return [], 0
        shop_id = customers[0].shop_id
        now = time.time()
        sets = [f"{f} = excluded.{f}" for f in ("attributes", "exclusions") if f in replace]
        insert = (
            "INSERT INTO customers (shop_id, customer_id, attributes, exclusions,"
            " create_time, update_time) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (shop_id, customer_id) DO "
        )
        upsert = insert + "UPDATE SET " + ", ".join([*sets, "update_time = excluded.update_time"])
        with self._write() as conn:
            existing: dict[str, Customer] = {}
            try:
                if not echo:
                    # The count alone: the new profiles go in first, counted by SQLite (one
                    # that exists is left as it is); only a batch that names an existing
                    # profile is then upserted whole (the rows just inserted get the same
                    # values again). A first load costs one plain insert a batch.
                    created = conn.executemany(
                        insert + "NOTHING", customer_rows(customers, now)
                    ).rowcount
                    if created < len(customers):
                        conn.executemany(upsert, customer_rows(customers, now))
                    return [], created
                for chunk in _chunks(list(customer_ids(customers))):
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(
                        f"SELECT * FROM customers WHERE shop_id = ? AND customer_id IN ({marks})",
                        (shop_id, *chunk),
                    ).fetchall()
                    existing.update((row["customer_id"], _customer(row)) for row in rows)
                conn.executemany(upsert, customer_rows(customers, now))
            except sqlite3.IntegrityError:  # the shop is unknown (a foreign key)
                raise NotFound("shop", shop_name(shop_id)) from None
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

    def upsert_items(self, items: Sequence[Item]) -> Sequence[Item]:
        now = time.time()
        with self._write() as conn:
            versions: dict[str, int] = {}
            for shop_id in sorted(item_shop_ids(items)):
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
                item_rows(items, now, versions),
            )
        for shop_id in versions:
            self._subscribers.deliver(Event(CATALOG, shop_id))
        return StoredItems(items, now)

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
        customer_ids, item_ids = referenced_ids(interactions)
        for table, column, ids, name in (
            ("customers", "customer_id", customer_ids, customer_name),
            ("items", "item_id", item_ids, item_name),
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
            " event_time, recommendation_id, request_id, channel, device)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            interaction_rows(shop_id, request_id, interactions),
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
        self._subscribers.deliver(Event(HISTORY, shop_id))
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
        impressions_since: float | None = None,
    ) -> RecommendInputs | None:
        dismiss = int(InteractionType.DISMISS)
        kinds = sorted({int(t) for t in owned_types} | {dismiss})
        since = impressions_since
        with self._translate():
            # One statement, one row (the history as JSON in its columns): a single SELECT is
            # one snapshot, and sqlite3 lets go of the GIL twice a request instead of once per
            # statement and per row fetched (seven statements and 20-odd rows; under four
            # request threads each let-go is a hand-off: README, Benchmarks 1, issue 12).
            row = (
                self._bounded("a database read")
                .execute(
                    _inputs_sql(1, len(kinds), since is not None),
                    _inputs_params(shop_id, customer_id, [customer_id], recent_limit, kinds, since),
                )
                .fetchone()
            )
        if row is None:
            return None
        # SQLite's JSON functions write RFC 8259 JSON, which orjson reads in a third of the
        # standard library's time (tools/bench_json.py).
        linked = orjson.loads(row["k_linked"])
        if linked:
            # The person: the id and every id linked to it, either way (issue 11). Read again
            # with their histories merged. Both reads in the transaction see one snapshot, so a
            # link made since the first read costs one more, no more.
            with self._read() as conn:
                for _ in range(2):
                    ids = [customer_id, *linked]
                    row = conn.execute(
                        _inputs_sql(len(ids), len(kinds), since is not None),
                        _inputs_params(shop_id, customer_id, ids, recent_limit, kinds, since),
                    ).fetchone()
                    if row is None or orjson.loads(row["k_linked"]) == linked:
                        break
                    linked = orjson.loads(row["k_linked"])  # linked meanwhile: once more
            if row is None:
                return None
        dismissed: set[str] = set()
        owned: set[str] = set()
        wanted = {int(t) for t in owned_types}
        for item_id, kind in orjson.loads(row["k_kinds"]):
            if kind == dismiss:
                dismissed.add(item_id)
            if kind in wanted:
                owned.add(item_id)
        recent = [
            Interaction(
                shop_id, r[0], r[1], _TYPES[r[2]], float(r[3]), float(r[4]), r[5], r[6], r[7], r[8]
            )
            for r in orjson.loads(row["k_recent"])
        ]
        # Newest by event time, not arrival: a back-filled event is not "recent". (The
        # subquery's order already; sorting sorted rows is one pass.)
        recent.sort(key=_recency, reverse=True)
        shown: list[Impression] = []
        if since is not None:
            shown = [
                Impression(shop_id, customer_id, r[0], r[1], float(r[2]))
                for r in orjson.loads(row["k_shown"])
            ]
            shown.sort(key=_impression_time, reverse=True)
        documents = orjson.loads(row["k_documents"]) if row["k_documents"] else {}
        consents = orjson.loads(row["k_consents"]) if row["k_consents"] else []
        return RecommendInputs(
            _customer(row),
            recent,
            frozenset(dismissed),
            frozenset(owned),
            {ConsentPurpose(p): bool(g) for p, g in consents},
            tuple(linked),
            row["k_mask"],
            ShopRevisions(
                int(row["k_catalog"]),
                int(row["k_settings"]),
                {str(k): int(v) for k, v in documents.items()},
            ),
            tuple(shown),
        )

    def iter_interactions(
        self,
        shop_id: str,
        after_seq: int = 0,
        types: Collection[InteractionType] | None = None,
    ) -> Iterator[Interaction]:
        after = after_seq
        wanted = () if types is None else tuple(int(t) for t in types)
        only = f" AND type IN ({', '.join('?' * len(wanted))})" if types is not None else ""
        while True:
            # A customer who withdrew training consent never enters a model (issue 11).
            rows = self._query(
                f"SELECT {_INTERACTION_COLUMNS} FROM interactions"
                f" WHERE shop_id = ? AND seq > ?{only} AND {_TRAINABLE} ORDER BY seq LIMIT 5000",
                (shop_id, after, *wanted, shop_id, int(ConsentPurpose.TRAINING)),
            )
            if not rows:
                return
            for row in rows:
                yield _interaction(row)
            after = rows[-1][7]

    def iter_training_rows(self, shop_id: str) -> Iterator[tuple[Any, ...]]:
        after = 0
        while True:
            with self._translate():
                cursor = self._bounded("reading interactions").cursor()
                cursor.row_factory = None  # plain tuples: a fifth cheaper than sqlite3.Row
                rows = cursor.execute(
                    "SELECT customer_id, item_id, type, value, event_time, channel, device, seq"
                    f" FROM interactions WHERE shop_id = ? AND seq > ? AND {_TRAINABLE}"
                    " ORDER BY seq LIMIT 5000",
                    (shop_id, after, shop_id, int(ConsentPurpose.TRAINING)),
                ).fetchall()
            if not rows:
                return
            yield from rows
            after = rows[-1][7]

    def data_version(self, shop_id: str) -> str:
        with self._read() as conn:
            seq = conn.execute(
                "SELECT max(seq), count(*) FROM interactions WHERE shop_id = ?", (shop_id,)
            ).fetchone()
            catalog = conn.execute(
                "SELECT catalog_version, privacy_version FROM shops WHERE shop_id = ?", (shop_id,)
            ).fetchone()
            customers = conn.execute(
                "SELECT count(*), max(update_time) FROM customers WHERE shop_id = ?", (shop_id,)
            ).fetchone()
        return (
            f"{seq[0] or 0}.{seq[1]}.{catalog[0] if catalog else -1}.{customers[0]}"
            f".{customers[1] or 0}.{catalog[1] if catalog else 0}"
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

    # -- the customer's own choices (issue 11) -----------------------------------------------

    def ensure_anonymous_customers(self, shop_id: str, customer_ids: Iterable[str]) -> list[str]:
        ids = sorted(set(customer_ids))
        if not ids:
            return []
        now = time.time()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM shops WHERE shop_id = ?", (shop_id,)).fetchone() is None:
                raise NotFound("shop", shop_name(shop_id))
            created = []
            for customer_id in ids:
                cursor = conn.execute(
                    "INSERT INTO customers (shop_id, customer_id, create_time, update_time,"
                    " anonymous) VALUES (?, ?, ?, ?, 1) ON CONFLICT DO NOTHING",
                    (shop_id, customer_id, now, now),
                )
                if cursor.rowcount:
                    created.append(customer_id)
        return created

    def undo_dismissal(self, shop_id: str, customer_id: str, item_id: str) -> int:
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM interactions WHERE shop_id = ? AND customer_id = ? AND item_id = ?"
                f" AND type = {int(InteractionType.DISMISS)}",
                (shop_id, customer_id, item_id),
            )
        if cursor.rowcount:
            self._subscribers.deliver(Event(CUSTOMER, shop_id, customer_id))
        return int(cursor.rowcount)

    def consents(self, shop_id: str, customer_id: str) -> dict[ConsentPurpose, Consent]:
        rows = self._query(
            "SELECT purpose, granted, source, update_time FROM consents"
            " WHERE shop_id = ? AND customer_id = ?",
            (shop_id, customer_id),
        )
        found = {
            ConsentPurpose(r[0]): Consent(ConsentPurpose(r[0]), bool(r[1]), r[2], r[3])
            for r in rows
        }
        return {p: found.get(p, Consent(p, CONSENT_DEFAULTS[p])) for p in ConsentPurpose}

    def set_consent(
        self, shop_id: str, customer_id: str, purpose: ConsentPurpose, granted: bool, source: str
    ) -> tuple[Consent, int]:
        now = time.time()
        unlinked = 0
        with self._write() as conn:
            exists = conn.execute(
                "SELECT 1 FROM customers WHERE shop_id = ? AND customer_id = ?",
                (shop_id, customer_id),
            ).fetchone()
            if exists is None:
                raise NotFound("customer", customer_name(shop_id, customer_id))
            conn.execute(
                "INSERT INTO consents (shop_id, customer_id, purpose, granted, source, update_time)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (shop_id, customer_id, purpose) DO UPDATE"
                " SET granted = excluded.granted, source = excluded.source,"
                " update_time = excluded.update_time",
                (shop_id, customer_id, int(purpose), int(granted), source, now),
            )
            cursor = conn.execute(
                "INSERT INTO consent_changes (shop_id, customer_id, purpose, granted, source,"
                " update_time) VALUES (?, ?, ?, ?, ?, ?)",
                (shop_id, customer_id, int(purpose), int(granted), source, now),
            )
            seq = int(cursor.lastrowid or 0)
            if purpose is ConsentPurpose.CROSS_DEVICE_LINKING and not granted:
                unlinked = conn.execute(
                    "DELETE FROM identity_links WHERE shop_id = ?"
                    " AND (customer_id = ? OR linked_id = ?)",
                    (shop_id, customer_id, customer_id),
                ).rowcount
            if purpose is ConsentPurpose.TRAINING:
                if not granted:
                    self._mask(conn, shop_id, customer_id, now)
                conn.execute(
                    "UPDATE shops SET privacy_version = privacy_version + 1 WHERE shop_id = ?",
                    (shop_id,),
                )
        self._subscribers.deliver(Event(CUSTOMER, shop_id, customer_id))
        return Consent(purpose, granted, source, now, seq), int(unlinked)

    @staticmethod
    def _mask(conn: sqlite3.Connection, shop_id: str, customer_id: str, now: float) -> None:
        conn.execute(
            "INSERT INTO model_masks (shop_id, subject, mask_time) VALUES (?, ?, ?)"
            " ON CONFLICT (shop_id, subject) DO UPDATE SET mask_time = excluded.mask_time",
            (shop_id, subject_hash(shop_id, customer_id), now),
        )

    def list_consent_changes(
        self, shop_id: str, customer_id: str, before_seq: int | None, limit: int
    ) -> list[Consent]:
        rows = self._query(
            "SELECT purpose, granted, source, update_time, seq FROM consent_changes"
            " WHERE shop_id = ? AND customer_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (shop_id, customer_id, before_seq if before_seq is not None else 2**62, limit),
        )
        return [Consent(ConsentPurpose(r[0]), bool(r[1]), r[2], r[3], r[4]) for r in rows]

    def link_identity(
        self, shop_id: str, customer_id: str, linked_id: str, source: str
    ) -> IdentityLink:
        now = time.time()
        with self._write() as conn:
            for who in (customer_id, linked_id):
                if (
                    conn.execute(
                        "SELECT 1 FROM customers WHERE shop_id = ? AND customer_id = ?",
                        (shop_id, who),
                    ).fetchone()
                    is None
                ):
                    raise NotFound("customer", customer_name(shop_id, who))
                refused = conn.execute(
                    "SELECT 1 FROM consents WHERE shop_id = ? AND customer_id = ? AND purpose = ?"
                    " AND granted = 0",
                    (shop_id, who, int(ConsentPurpose.CROSS_DEVICE_LINKING)),
                ).fetchone()
                if refused is not None:
                    raise FailedPrecondition(
                        "NO_LINKING_CONSENT",
                        f"{customer_name(shop_id, who)} has not allowed cross-device linking",
                    )
            conn.execute(
                "INSERT INTO identity_links (shop_id, customer_id, linked_id, source, create_time)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (shop_id, customer_id, linked_id, source, now),
            )
            row = conn.execute(
                "SELECT shop_id, customer_id, linked_id, source, create_time FROM identity_links"
                " WHERE shop_id = ? AND customer_id = ? AND linked_id = ?",
                (shop_id, customer_id, linked_id),
            ).fetchone()
        self._subscribers.deliver(Event(CUSTOMER, shop_id, customer_id))
        return IdentityLink(*row)

    def unlink_identity(self, shop_id: str, customer_id: str, linked_id: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM identity_links WHERE shop_id = ? AND customer_id = ?"
                " AND linked_id = ?",
                (shop_id, customer_id, linked_id),
            )
        if cursor.rowcount:
            self._subscribers.deliver(Event(CUSTOMER, shop_id, customer_id))
        return bool(cursor.rowcount)

    def list_identity_links(
        self, shop_id: str, customer_id: str, after: str, limit: int
    ) -> list[IdentityLink]:
        rows = self._query(
            "SELECT shop_id, customer_id, linked_id, source, create_time FROM identity_links"
            " WHERE shop_id = ? AND customer_id = ? AND linked_id > ? ORDER BY linked_id LIMIT ?",
            (shop_id, customer_id, after, limit),
        )
        return [IdentityLink(*r) for r in rows]

    def erase_customer(self, shop_id: str, customer_id: str) -> Erasure:
        self._lists.flush()  # what was kept for the customer before this is deleted too
        now = time.time()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM shops WHERE shop_id = ?", (shop_id,)).fetchone() is None:
                raise NotFound("shop", shop_name(shop_id))
            who = (shop_id, customer_id)
            # Idempotency records of requests that held only this customer's events; a request
            # that also held others' keeps its record (a hash and an id, nothing of theirs),
            # so that its retry is still answered, not stored twice.
            requests = conn.execute(
                "DELETE FROM feedback_requests WHERE shop_id = ? AND request_id IN"
                " (SELECT request_id FROM interactions WHERE shop_id = ? AND customer_id = ?)"
                " AND request_id NOT IN (SELECT request_id FROM interactions"
                " WHERE shop_id = ? AND customer_id != ?)",
                (shop_id, *who, *who),
            ).rowcount
            interactions = conn.execute(
                "DELETE FROM interactions WHERE shop_id = ? AND customer_id = ?", who
            ).rowcount
            links = conn.execute(
                "DELETE FROM identity_links WHERE shop_id = ?"
                " AND (customer_id = ? OR linked_id = ?)",
                (*who, customer_id),
            ).rowcount
            consents = conn.execute(
                "DELETE FROM consents WHERE shop_id = ? AND customer_id = ?", who
            ).rowcount
            conn.execute("DELETE FROM consent_changes WHERE shop_id = ? AND customer_id = ?", who)
            # What pages showed them and the lists kept for their later pages (issue 13).
            conn.execute("DELETE FROM impressions WHERE shop_id = ? AND customer_id = ?", who)
            conn.execute(
                "DELETE FROM recommendation_lists WHERE shop_id = ? AND customer_id = ?", who
            )
            profile = conn.execute(
                "DELETE FROM customers WHERE shop_id = ? AND customer_id = ?", who
            ).rowcount
            removed: list[str] = []
            pending: list[str] = []
            if profile or interactions:
                self._mask(conn, shop_id, customer_id, now)
                conn.execute(
                    "UPDATE shops SET privacy_version = privacy_version + 1 WHERE shop_id = ?",
                    (shop_id,),
                )
                # Every stored version fitted before now may hold the customer: the ones not
                # serving go now (no rollback can bring them back); the serving ones go once
                # a newer version replaces them (`prune_masked_models`).
                current = {
                    (r[0], r[1])
                    for r in conn.execute(
                        "SELECT recommender, version FROM model_current WHERE shop_id = ?",
                        (shop_id,),
                    )
                }
                for recommender, version in conn.execute(
                    "SELECT recommender, version FROM model_artifacts"
                    " WHERE shop_id = ? AND create_time <= ? ORDER BY recommender, version",
                    (shop_id, now),
                ).fetchall():
                    (pending if (recommender, version) in current else removed).append(
                        f"{recommender}/{version}"
                    )
                for name in removed:
                    recommender, version = name.split("/", 1)
                    conn.execute(
                        "DELETE FROM model_artifacts WHERE shop_id = ? AND recommender = ?"
                        " AND version = ?",
                        (shop_id, recommender, version),
                    )
        if profile or interactions:
            self._subscribers.deliver(Event(CUSTOMER, shop_id, customer_id))
        return Erasure(
            now,
            bool(profile),
            int(interactions),
            int(links),
            int(consents),
            int(requests),
            tuple(removed),
            tuple(pending),
        )

    def latest_mask_time(self, shop_id: str) -> float | None:
        rows = self._query("SELECT max(mask_time) FROM model_masks WHERE shop_id = ?", (shop_id,))
        return rows[0][0] if rows and rows[0][0] is not None else None

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

    # -- issue 13: versioned shop documents, recommendation lists, impressions ---------------

    def document_revisions(self, shop_id: str) -> dict[str, int]:
        rows = self._query(
            "SELECT kind, revision FROM shop_document_heads WHERE shop_id = ?", (shop_id,)
        )
        return {row[0]: int(row[1]) for row in rows}

    def get_document(
        self, shop_id: str, kind: str, revision: int = 0
    ) -> ShopSettingsRevision | None:
        if revision:
            rows = self._query(
                "SELECT shop_id, revision, document, create_time FROM shop_documents"
                " WHERE shop_id = ? AND kind = ? AND revision = ?",
                (shop_id, kind, revision),
            )
        else:
            rows = self._query(
                "SELECT d.shop_id, d.revision, d.document, d.create_time FROM shop_documents d"
                " JOIN shop_document_heads h USING (shop_id, kind, revision)"
                " WHERE d.shop_id = ? AND d.kind = ?",
                (shop_id, kind),
            )
        return _settings(rows[0]) if rows else None

    def put_document(
        self,
        shop_id: str,
        kind: str,
        document: Mapping[str, Any],
        expected_revision: int | None = None,
    ) -> ShopSettingsRevision:
        now = time.time()
        text = json.dumps(document, sort_keys=True)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM shops WHERE shop_id = ?", (shop_id,)).fetchone() is None:
                raise NotFound("shop", shop_name(shop_id))
            row = conn.execute(
                "SELECT revision FROM shop_document_heads WHERE shop_id = ? AND kind = ?",
                (shop_id, kind),
            ).fetchone()
            current = int(row[0]) if row else 0
            if expected_revision is not None and expected_revision != current:
                raise Aborted("CONCURRENT_UPDATE", f"the {kind} changed meanwhile; retry")
            revision = current + 1
            conn.execute(
                "INSERT INTO shop_documents (shop_id, kind, revision, document, create_time)"
                " VALUES (?, ?, ?, ?, ?)",
                (shop_id, kind, revision, text, now),
            )
            conn.execute(
                "INSERT INTO shop_document_heads (shop_id, kind, revision) VALUES (?, ?, ?)"
                " ON CONFLICT (shop_id, kind) DO UPDATE SET revision = excluded.revision",
                (shop_id, kind, revision),
            )
        return ShopSettingsRevision(shop_id, revision, json.loads(text), now)

    def list_documents(
        self, shop_id: str, kind: str, before_revision: int | None, limit: int
    ) -> list[ShopSettingsRevision]:
        rows = self._query(
            "SELECT shop_id, revision, document, create_time FROM shop_documents"
            " WHERE shop_id = ? AND kind = ? AND revision < ? ORDER BY revision DESC LIMIT ?",
            (shop_id, kind, before_revision if before_revision is not None else 2**62, limit),
        )
        return [_settings(row) for row in rows]

    def put_recommendation_list(self, record: RecommendationList) -> None:
        # Write-behind (`kosmos.store._group`): the Recommend that keeps the list does not wait
        # for it; this process reads it from the writer's pending rows until its group commits
        # (milliseconds), every replica from the table after that.
        self._lists.put((record.shop_id, record.recommendation_id), record)

    def _put_lists(self, records: Sequence[RecommendationList]) -> None:
        # A kept list is a cache with a TTL, not an acknowledged event: its commits skip the
        # disk sync (WAL, synchronous=NORMAL on the list writer's own connection; the next FULL
        # commit of any write syncs them), so keeping one costs no fsync on the request path.
        # A power cut may lose one: its page 2 is then PAGE_TOKEN_EXPIRED.
        own = self._connection()
        if not getattr(self._local, "lists_writer", False):
            own.execute("PRAGMA synchronous=NORMAL")
            self._local.lists_writer = True
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO recommendation_lists (shop_id, recommendation_id,"
                " customer_id, placement, experiment_id, variant_id, offers, create_time,"
                " expire_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [list_row(r) for r in records],
            )
            # Expired lists go a few at a time, on one group in `_PURGE_EVERY`.
            if next(_list_writes) % _PURGE_EVERY:
                return
            conn.execute(
                "DELETE FROM recommendation_lists WHERE (shop_id, recommendation_id) IN"
                " (SELECT shop_id, recommendation_id FROM recommendation_lists"
                " WHERE expire_time < ? AND experiment_id = '' LIMIT 100)",
                (min(r.create_time for r in records),),
            )

    def get_recommendation_list(
        self, shop_id: str, recommendation_id: str, now: float
    ) -> RecommendationList | None:
        held = self._lists.pending.get((shop_id, recommendation_id))
        if held is not None:
            return held if held.expire_time >= now else None
        rows = self._query(
            f"SELECT {_LIST_COLUMNS} FROM recommendation_lists"
            " WHERE shop_id = ? AND recommendation_id = ? AND expire_time >= ?",
            (shop_id, recommendation_id, now),
        )
        return read_list(tuple(rows[0])) if rows else None

    def record_impressions(self, shop_id: str, impressions: Sequence[Impression]) -> int:
        with self._write() as conn:
            for customer_id in sorted({i.customer_id for i in impressions}):
                found = conn.execute(
                    "SELECT 1 FROM customers WHERE shop_id = ? AND customer_id = ?",
                    (shop_id, customer_id),
                ).fetchone()
                if found is None:
                    raise NotFound("customer", customer_name(shop_id, customer_id))
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO impressions (shop_id, recommendation_id, item_id,"
                " customer_id, event_time) VALUES (?, ?, ?, ?, ?)",
                [
                    (shop_id, i.recommendation_id, i.item_id, i.customer_id, i.event_time)
                    for i in impressions
                ],
            )
            return conn.total_changes - before

    def recent_impressions(self, shop_id: str, customer_id: str, since: float) -> list[Impression]:
        rows = self._query(
            "SELECT recommendation_id, item_id, event_time FROM impressions"
            " WHERE shop_id = ? AND customer_id = ? AND event_time >= ?"
            " ORDER BY event_time DESC LIMIT ?",
            (shop_id, customer_id, since, IMPRESSIONS_LIMIT),
        )
        return [Impression(shop_id, customer_id, r[0], r[1], r[2]) for r in rows]

    def experiment_outcomes(self, shop_id: str, experiment_id: str) -> ExperimentOutcomes:
        self._lists.flush()  # the lists served so far count
        with self._read() as conn:
            lists = conn.execute(
                "SELECT recommendation_id, customer_id, variant_id FROM recommendation_lists"
                " WHERE shop_id = ? AND experiment_id = ?",
                (shop_id, experiment_id),
            ).fetchall()
            shown = conn.execute(
                "SELECT i.recommendation_id, i.item_id FROM impressions i"
                " JOIN recommendation_lists l USING (shop_id, recommendation_id)"
                " WHERE l.shop_id = ? AND l.experiment_id = ?",
                (shop_id, experiment_id),
            ).fetchall()
            acted = conn.execute(
                "SELECT x.recommendation_id, x.item_id, x.type, x.value, coalesce(it.price, 0)"
                " FROM interactions x"
                # Only the list's own customer's actions count for it.
                " JOIN recommendation_lists l ON l.shop_id = x.shop_id"
                " AND l.recommendation_id = x.recommendation_id AND l.customer_id = x.customer_id"
                " LEFT JOIN items it ON it.shop_id = x.shop_id AND it.item_id = x.item_id"
                " WHERE l.shop_id = ? AND l.experiment_id = ?",
                (shop_id, experiment_id),
            ).fetchall()
        return ExperimentOutcomes(
            [(r[0], r[1], r[2]) for r in lists],
            [(r[0], r[1]) for r in shown],
            [(r[0], r[1], InteractionType(r[2]), float(r[3]), float(r[4])) for r in acted],
        )


def _settings(row: sqlite3.Row) -> ShopSettingsRevision:
    return ShopSettingsRevision(
        row["shop_id"], row["revision"], json.loads(row["document"]), row["create_time"]
    )


_PURGE_EVERY = 32
_list_writes = itertools.count(1)
_LIST_COLUMNS = (
    "shop_id, recommendation_id, customer_id, placement, experiment_id, variant_id, offers,"
    " create_time, expire_time"
)
