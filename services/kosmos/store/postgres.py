"""The cluster store: PostgreSQL through psycopg 3 and a `psycopg_pool` connection pool.

Structured like `kosmos.store.sqlite` (one method per protocol method) so that a method added
to one store has an obvious place in the other.

Waiting: every transaction sets ``statement_timeout`` and ``lock_timeout`` to what is left of
the caller's deadline (the lock wait at most ``lock_timeout``), and a pooled connection is
awaited no longer either; so no call outlasts its caller. Errors are translated as the Store
contract says: a timeout after the deadline is `DeadlineExceeded`; a lock held too long, a lost
connection, an exhausted pool or a serialization failure is `Unavailable` (nothing committed).

Feedback is group-committed: `record_interactions` hands its batch to a few committer threads;
each writes every batch that queued while it was busy in one transaction (one WAL flush for all
of them), each batch under its own savepoint so one bad batch fails
alone. Each caller returns only after that commit, so an acknowledged event is durable; the
request id's row (``ON CONFLICT DO NOTHING``) makes a retry, on any replica, a replay.

Migrations run at start-up in one transaction under an advisory lock keyed by the schema, so
replicas starting together apply each migration once and none serves a half-migrated schema.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
import psycopg_pool
from opentelemetry import trace
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg.types.json import set_json_loads

from kosmos.common import deadline
from kosmos.common.deadline import deadline_scope
from kosmos.common.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    KosmosError,
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
    RESYNC,
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
    ItemColumns,
    ModelArtifact,
    RecommendationList,
    RecommendInputs,
    Replica,
    Shop,
    ShopRevisions,
    ShopSettingsRevision,
    StoredItems,
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

log = logging.getLogger(__name__)

# How long a statement waits for another writer's lock, or a caller for a pooled connection,
# when the caller set no deadline.
LOCK_TIMEOUT_SECONDS = 10.0
POOL_SIZE = 10
# At most this many feedback batches share one commit.
GROUP_LIMIT = 256
# Committer threads: each writes the batches that queued while the others were committing, so
# round trips of one group overlap another group's WAL flush.
COMMITTERS = 4

Conn = psycopg.Connection[TupleRow]


def _settings(row: TupleRow) -> ShopSettingsRevision:
    return ShopSettingsRevision(row[0], int(row[1]), json.loads(row[2]), row[3])


_API_KEY_COLUMNS = "key_id, shop_id, scope, secret_hash, display_name, create_time, revoke_time"
_CUSTOMER_COLUMNS = (
    "shop_id, customer_id, attributes, exclusions, create_time, update_time,"
    " preferences, price_range, anonymous"
)
_CUSTOMER_WIDTH = 9
_C_CUSTOMER_COLUMNS = ", ".join(f"c.{c.strip()}" for c in _CUSTOMER_COLUMNS.split(","))
_ITEM_COLUMNS = (
    "shop_id, item_id, title, category, brand, price, available, attributes, update_time"
)
_INTERACTION_COLUMNS = (
    "shop_id, customer_id, item_id, type, event_time, value, recommendation_id, seq, channel,"
    " device"
)
_TYPES = {t.value: t for t in InteractionType}
# A customer who withdrew training consent never enters a model (issue 11): for a query over
# ``interactions i``; takes ConsentPurpose.TRAINING.
_TRAINABLE = (
    "NOT EXISTS (SELECT 1 FROM consents c WHERE c.shop_id = i.shop_id"
    " AND c.customer_id = i.customer_id AND c.purpose = %s AND NOT c.granted)"
)
_DISMISSED = (
    "SELECT DISTINCT item_id FROM interactions"
    f" WHERE shop_id = %s AND customer_id = %s AND type = {int(InteractionType.DISMISS)}"
)


def _customer(row: Sequence[Any]) -> Customer:
    return Customer(
        shop_id=row[0],
        customer_id=row[1],
        attributes=json.loads(row[2]),
        exclusions=decode_exclusions(row[3]),
        create_time=row[4],
        update_time=row[5],
        preferences=decode_preferences(row[6]),
        price_range=decode_price_range(row[7]),
        anonymous=bool(row[8]),
    )


def _item(row: Sequence[Any]) -> Item:
    return Item(
        row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), json.loads(row[7]), row[8]
    )


def _interaction(row: Sequence[Any]) -> Interaction:
    return Interaction(
        row[0], row[1], row[2], _TYPES[row[3]], row[4], row[5], row[6], row[7], row[8], row[9]
    )


def _ms(seconds: float) -> str:
    return str(max(1, int(seconds * 1000)))


@contextmanager
def _translate(expires: float | None = None) -> Iterator[None]:
    """Driver errors to the contract's errors. ``expires`` (monotonic) overrides the context's
    deadline for the group committer, which serves callers from its own thread."""

    def late() -> bool:
        return deadline.expired() if expires is None else time.monotonic() >= expires

    try:
        yield
    except (pg_errors.QueryCanceled, pg_errors.LockNotAvailable) as exc:
        if late():
            raise DeadlineExceeded("a database query") from exc
        raise Unavailable(
            "DATABASE_BUSY", "the database is locked by another writer; retry"
        ) from exc
    except psycopg_pool.PoolTimeout as exc:
        if late():
            raise DeadlineExceeded("waiting for a database connection") from exc
        raise Unavailable("DATABASE_UNAVAILABLE", "no database connection is free; retry") from exc
    except (psycopg.OperationalError, pg_errors.TransactionRollback) as exc:
        raise Unavailable("DATABASE_UNAVAILABLE", "the database cannot be reached; retry") from exc


def _as_error(error: Exception, expires: float | None) -> BaseException:
    """``error`` translated for one caller of a group: its own deadline decides whether a
    timeout is DeadlineExceeded (it gave up) or Unavailable (retry)."""
    if isinstance(error, KosmosError) and not isinstance(error, DeadlineExceeded):
        return error
    cause = error.__cause__ if isinstance(error, KosmosError) else error
    try:
        with _translate(expires):
            raise cause if isinstance(cause, Exception) else error
    except BaseException as translated:  # noqa: BLE001 - returned, not swallowed
        return translated
    return error  # pragma: no cover


@dataclass(eq=False)
class _Pending:
    """One feedback batch waiting for the group commit."""

    shop_id: str
    request_id: str
    request_hash: str
    interactions: Sequence[Interaction]
    expires: float | None
    # An import: answered with a count, written with COPY (no row comes back).
    count_only: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    # What was stored (empty for an import), how many, and whether it was a replay.
    result: tuple[list[Interaction], int, bool] | None = None
    error: BaseException | None = None


def _staging(conn: psycopg.Connection[Any], table: str) -> None:
    """Makes sure this connection has ``kosmos_staging_<table>``, a temporary table shaped as
    ``table`` whose rows go at each commit (bulk intake copies a batch into it, then upserts
    from it). Once per connection; the notice that it exists already is not sent."""
    conn.execute("SET LOCAL client_min_messages = warning")
    conn.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS kosmos_staging_{table}"
        f" (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )


@traced("postgresql")
class PostgresStore:
    """`kosmos.store.Store` on PostgreSQL (``postgresql://...``)."""

    def __init__(
        self,
        url: str,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
        pool_size: int = POOL_SIZE,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.lock_timeout = lock_timeout
        self._pool: psycopg_pool.ConnectionPool[Conn] = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            open=False,
            name="kosmos",
            configure=_configure,
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            raise Unavailable(
                "DATABASE_UNAVAILABLE", "cannot connect to the PostgreSQL database"
            ) from exc
        self._pending: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._closed = False
        self._listener_lock = threading.Lock()
        self._closing = threading.Event()
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise
        # Notifications are database-wide: one channel per schema keeps deployments (and
        # tests) that share a database apart.
        schema = self._query("SELECT current_schema()")[0][0]
        self._channel = f"kosmos_events.{schema}"
        self._subscribers = Subscribers()
        self._lists: GroupWriter[RecommendationList] = GroupWriter(
            self._put_lists, "kosmos-list-writer"
        )
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()
        self._committers = [
            threading.Thread(target=self._commit_groups, name="kosmos-group-commit", daemon=True)
            for _ in range(min(COMMITTERS, pool_size))
        ]
        for committer in self._committers:
            committer.start()

    # -- connections -------------------------------------------------------------------------

    def _wait_bound(self, expires: float | None = None) -> tuple[float, float]:
        """(lock wait, statement timeout or 0 for none) from the deadline in force."""
        left = deadline.remaining() if expires is None else expires - time.monotonic()
        if left is None:
            return self.lock_timeout, 0.0
        return min(left, self.lock_timeout), left

    @contextmanager
    def _tx(self, stage: str, write: bool = False) -> Iterator[Conn]:
        """A transaction on a pooled connection, every wait in it bounded by the deadline."""
        deadline.check(stage)
        lock_wait, statement = self._wait_bound()
        with _translate(), self._pool.connection(timeout=max(lock_wait, 0.001)) as conn:
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, true),"
                    " set_config('statement_timeout', %s, true)",
                    (_ms(lock_wait), _ms(statement) if statement else "0"),
                )
                yield conn
                if write:  # the caller gave up: roll back rather than commit behind its back
                    deadline.check("a database commit")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[TupleRow]:
        with self._tx("a database query") as conn:
            return conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._pool.connection() as conn, conn.transaction():
            # Replicas starting together queue here; the first applies, the rest find it done.
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('kosmos.migrations.' || current_schema()))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_time DOUBLE PRECISION NOT NULL)"
            )
            applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for migration in _migrations.load("postgres"):
                if migration.version in applied:
                    continue
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                    (migration.version, migration.name, time.time()),
                )

    def schema_version(self) -> int:
        """The newest migration applied."""
        return int(self._query("SELECT max(version) FROM schema_migrations")[0][0])

    def ping(self) -> None:
        with deadline_scope(1.0):
            self._query("SELECT 1")

    # -- events ------------------------------------------------------------------------------

    def _notify(self, conn: Conn, event: Event) -> None:
        """Sent with the transaction's commit, and only if it commits."""
        if trace.get_current_span().is_recording():  # the writer's trace shows the publish
            with trace.get_tracer(__name__).start_as_current_span(
                "events.publish",
                kind=trace.SpanKind.PRODUCER,
                attributes={"kosmos.event.kind": event.kind, "kosmos.shop": event.shop_id},
            ):
                conn.execute("SELECT pg_notify(%s, %s)", (self._channel, event.encode()))
            return
        conn.execute("SELECT pg_notify(%s, %s)", (self._channel, event.encode()))

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.add(callback)
        with self._guard_listener():
            if self._listener is None:
                self._listener = threading.Thread(
                    target=self._listen, name="kosmos-events", daemon=True
                )
                self._listener.start()
        self._listening.wait(timeout=10)  # events from now on are not missed

    @contextmanager
    def _guard_listener(self) -> Iterator[None]:
        with self._listener_lock:
            yield

    def _listen(self) -> None:
        first = True
        while not self._closed:
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._listening.set()
                    if not first:  # events may have been sent while we were not listening
                        self._subscribers.deliver(Event(RESYNC))
                    first = False
                    while not self._closed:
                        for note in conn.notifies(timeout=1.0):
                            event = Event.decode(note.payload)
                            if event is not None:
                                self._subscribers.deliver(event)
            except psycopg.Error:
                log.warning("event listener lost its connection; reconnecting")
                first = False
                self._listening.set()  # subscribers must not wait on a database that is down
                self._closing.wait(1.0)  # reconnect backoff; close() cuts it short

    def beat_replica(self, replica: Replica, purge_before: float) -> None:
        with self._tx("a database write", write=True) as conn:
            conn.execute(
                "INSERT INTO replicas (replica_id, services, version, start_time, seen_time,"
                " status) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (replica_id) DO UPDATE"
                " SET services = excluded.services, version = excluded.version,"
                " start_time = excluded.start_time, seen_time = excluded.seen_time,"
                " status = excluded.status",
                (replica.replica_id, ",".join(replica.services), replica.version,
                 replica.start_time, replica.seen_time, replica.status),
            )  # fmt: skip
            conn.execute("DELETE FROM replicas WHERE seen_time < %s", (purge_before,))

    def list_replicas(self, seen_since: float) -> list[Replica]:
        rows = self._query(
            "SELECT replica_id, services, version, start_time, seen_time, status FROM replicas"
            " WHERE seen_time >= %s ORDER BY replica_id",
            (seen_since,),
        )
        return [
            Replica(r[0], tuple(s for s in r[1].split(",") if s), r[2], r[3], r[4], r[5])
            for r in rows
        ]

    def remove_replica(self, replica_id: str) -> bool:
        with self._tx("a database write", write=True) as conn:
            gone = conn.execute("DELETE FROM replicas WHERE replica_id = %s", (replica_id,))
            return bool(gone.rowcount)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._lists.close()
            self._closing.set()
            for _ in self._committers:
                self._pending.put(None)
            for committer in self._committers:
                committer.join(timeout=30)
            if self._listener is not None:
                self._listener.join(timeout=10)
            self._pool.close()

    # -- shops -------------------------------------------------------------------------------

    def create_shop(self, shop: Shop) -> Shop:
        created = Shop(shop.shop_id, shop.display_name, time.time())
        try:
            with self._tx("create_shop", write=True) as conn:
                conn.execute(
                    "INSERT INTO shops (shop_id, display_name, create_time) VALUES (%s, %s, %s)",
                    (created.shop_id, created.display_name, created.create_time),
                )
        except pg_errors.UniqueViolation:
            raise AlreadyExists("SHOP_EXISTS", f"shop {shop.shop_id!r} already exists") from None
        return created

    def get_shop(self, shop_id: str) -> Shop | None:
        rows = self._query(
            "SELECT shop_id, display_name, create_time FROM shops WHERE shop_id = %s", (shop_id,)
        )
        return Shop(rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def list_shop_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT shop_id FROM shops ORDER BY shop_id")]

    # -- customers ---------------------------------------------------------------------------

    def create_customer(self, customer: Customer) -> Customer:
        now = time.time()
        try:
            with self._tx("create_customer", write=True) as conn:
                row = conn.execute(
                    f"INSERT INTO customers ({_CUSTOMER_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    f" RETURNING {_CUSTOMER_COLUMNS}",
                    (
                        customer.shop_id,
                        customer.customer_id,
                        json.dumps(customer.attributes),
                        encode_exclusions(customer.exclusions),
                        now,
                        now,
                        encode_preferences(customer.preferences),
                        encode_price_range(customer.price_range),
                        customer.anonymous,
                    ),
                ).fetchone()
        except pg_errors.UniqueViolation:
            raise AlreadyExists(
                "CUSTOMER_EXISTS", f"customer {customer.customer_id!r} already exists"
            ) from None
        except pg_errors.ForeignKeyViolation:
            raise NotFound("shop", shop_name(customer.shop_id)) from None
        assert row is not None
        return _customer(row)

    def get_customer(self, shop_id: str, customer_id: str) -> Customer | None:
        rows = self._query(
            f"SELECT {_CUSTOMER_COLUMNS} FROM customers WHERE shop_id = %s AND customer_id = %s",
            (shop_id, customer_id),
        )
        return _customer(rows[0]) if rows else None

    def update_customer(self, customer: Customer) -> Customer:
        with self._tx("update_customer", write=True) as conn:
            row = conn.execute(
                "UPDATE customers SET attributes = %s, exclusions = %s, update_time = %s,"
                " preferences = %s, price_range = %s, anonymous = %s"
                f" WHERE shop_id = %s AND customer_id = %s RETURNING {_CUSTOMER_COLUMNS}",
                (
                    json.dumps(customer.attributes),
                    encode_exclusions(customer.exclusions),
                    time.time(),
                    encode_preferences(customer.preferences),
                    encode_price_range(customer.price_range),
                    customer.anonymous,
                    customer.shop_id,
                    customer.customer_id,
                ),
            ).fetchone()
            if row is not None:
                self._notify(conn, Event(CUSTOMER, customer.shop_id, customer.customer_id))
        if row is None:
            raise NotFound("customer", f"shops/{customer.shop_id}/customers/{customer.customer_id}")
        return _customer(row)

    def delete_customer(self, shop_id: str, customer_id: str) -> bool:
        self._lists.flush()  # what was kept for the customer before this is deleted too
        with self._tx("delete_customer", write=True) as conn:
            conn.execute(
                "DELETE FROM interactions WHERE shop_id = %s AND customer_id = %s",
                (shop_id, customer_id),
            )
            conn.execute(  # the lists kept for their later pages (no foreign key)
                "DELETE FROM recommendation_lists WHERE shop_id = %s AND customer_id = %s",
                (shop_id, customer_id),
            )
            cursor = conn.execute(
                "DELETE FROM customers WHERE shop_id = %s AND customer_id = %s",
                (shop_id, customer_id),
            )
            if cursor.rowcount > 0:
                self._notify(conn, Event(CUSTOMER, shop_id, customer_id))
            return cursor.rowcount > 0

    def list_customers(self, shop_id: str, after: str, limit: int) -> list[Customer]:
        rows = self._query(
            f"SELECT {_CUSTOMER_COLUMNS} FROM customers WHERE shop_id = %s AND customer_id > %s"
            " ORDER BY customer_id LIMIT %s",
            (shop_id, after, limit),
        )
        return [_customer(r) for r in rows]

    def existing_customer_ids(self, shop_id: str, customer_ids: Iterable[str]) -> set[str]:
        rows = self._query(
            "SELECT customer_id FROM customers WHERE shop_id = %s AND customer_id = ANY(%s)",
            (shop_id, sorted(set(customer_ids))),
        )
        return {r[0] for r in rows}

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
        if not echo:
            return [], self._copy_customers(shop_id, customers, sets, now)
        with self._tx("upsert_customers", write=True) as conn:
            existing = {
                r[1]: _customer(r)
                for r in conn.execute(
                    f"SELECT {_CUSTOMER_COLUMNS} FROM customers"
                    " WHERE shop_id = %s AND customer_id = ANY(%s)",
                    (shop_id, [c.customer_id for c in customers]),
                ).fetchall()
            }
            try:
                conn.execute(
                    "INSERT INTO customers (shop_id, customer_id, attributes, exclusions,"
                    " create_time, update_time)"
                    " SELECT %s, c, a, x, %s, %s FROM unnest(%s::text[], %s::text[], %s::text[])"
                    " AS u(c, a, x) ON CONFLICT (shop_id, customer_id) DO UPDATE SET "
                    + ", ".join([*sets, "update_time = excluded.update_time"]),
                    (
                        shop_id,
                        now,
                        now,
                        [c.customer_id for c in customers],
                        [json.dumps(c.attributes) for c in customers],
                        [encode_exclusions(c.exclusions) for c in customers],
                    ),
                )
            except pg_errors.ForeignKeyViolation:
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

    def _copy_customers(
        self, shop_id: str, customers: Sequence[Customer], sets: list[str], now: float
    ) -> int:
        """`upsert_customers` for the count alone: the batch streams by COPY into a temporary
        table (`_staging`) and one statement upserts it from there, counting the new rows
        (``xmax`` is 0 on a row this statement inserted rather than updated)."""
        with self._tx("upsert_customers", write=True) as conn:
            _staging(conn, "customers")
            with conn.cursor().copy(
                "COPY kosmos_staging_customers (shop_id, customer_id, attributes, exclusions,"
                " create_time, update_time) FROM STDIN"
            ) as copy:
                write = copy.write_row
                for row in customer_rows(customers, now):
                    write(row)
            try:
                counted = conn.execute(
                    "WITH up AS (INSERT INTO customers (shop_id, customer_id, attributes,"
                    " exclusions, create_time, update_time) SELECT shop_id, customer_id,"
                    " attributes, exclusions, create_time, update_time"
                    " FROM kosmos_staging_customers"
                    " ON CONFLICT (shop_id, customer_id) DO UPDATE SET "
                    + ", ".join([*sets, "update_time = excluded.update_time"])
                    + " RETURNING xmax = 0 AS created) SELECT count(*) FILTER (WHERE created)"
                    " FROM up"
                ).fetchone()
            except pg_errors.ForeignKeyViolation:
                raise NotFound("shop", shop_name(shop_id)) from None
        return int(counted[0]) if counted else 0

    # -- items -------------------------------------------------------------------------------

    def upsert_items(self, items: Sequence[Item]) -> Sequence[Item]:
        now = time.time()
        with self._tx("upsert_items", write=True) as conn:
            versions: dict[str, int] = {}
            for shop_id in sorted(item_shop_ids(items)):
                row = conn.execute(
                    "UPDATE shops SET catalog_version = catalog_version + 1 WHERE shop_id = %s"
                    " RETURNING catalog_version",
                    (shop_id,),
                ).fetchone()
                versions[shop_id] = int(row[0]) if row is not None else 0
            # The batch streams by COPY (encoded by psycopg's C code) into a temporary table
            # of this connection, emptied at commit, and one statement upserts it from there
            # (issue 12: `tools/bench_import.py`, README Benchmarks 3). An item named
            # twice is written once, as its last copy (one row may not be upserted twice by
            # one statement).
            rows = items
            if not isinstance(items, ItemColumns):  # columns name each item once (checked)
                rows = list({(i.shop_id, i.item_id): i for i in items}.values())
            _staging(conn, "items")
            with conn.cursor().copy(
                f"COPY kosmos_staging_items ({_ITEM_COLUMNS}, version) FROM STDIN"
            ) as copy:
                write = copy.write_row
                for row in item_rows(rows, now, versions):
                    write(row)
            conn.execute(
                f"INSERT INTO items ({_ITEM_COLUMNS}, version)"
                f" SELECT {_ITEM_COLUMNS}, version FROM kosmos_staging_items"
                " ON CONFLICT (shop_id, item_id) DO UPDATE SET title = excluded.title,"
                " category = excluded.category, brand = excluded.brand,"
                " price = excluded.price, available = excluded.available,"
                " attributes = excluded.attributes, update_time = excluded.update_time,"
                " version = excluded.version",
            )
            for shop_id in versions:
                self._notify(conn, Event(CATALOG, shop_id))
        return StoredItems(items, now)

    def existing_item_ids(self, shop_id: str, item_ids: Iterable[str]) -> set[str]:
        rows = self._query(
            "SELECT item_id FROM items WHERE shop_id = %s AND item_id = ANY(%s)",
            (shop_id, sorted(set(item_ids))),
        )
        return {r[0] for r in rows}

    def catalog_version(self, shop_id: str) -> int | None:
        rows = self._query("SELECT catalog_version FROM shops WHERE shop_id = %s", (shop_id,))
        return int(rows[0][0]) if rows else None

    def catalog_changes(self, shop_id: str, since_version: int) -> CatalogChanges | None:
        # One statement is one snapshot: the version read is never newer than its rows.
        columns = ", ".join(f"i.{c.strip()}" for c in _ITEM_COLUMNS.split(","))
        rows = self._query(
            f"SELECT s.catalog_version, {columns} FROM shops AS s"
            " LEFT JOIN items AS i ON i.shop_id = s.shop_id AND i.version > %s"
            " WHERE s.shop_id = %s",
            (since_version, shop_id),
        )
        if not rows:
            return None
        items = sorted((_item(r[1:]) for r in rows if r[2] is not None), key=lambda i: i.item_id)
        return CatalogChanges(int(rows[0][0]), items)

    def get_items(self, shop_id: str, item_ids: Iterable[str]) -> dict[str, Item]:
        rows = self._query(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE shop_id = %s AND item_id = ANY(%s)",
            (shop_id, sorted(set(item_ids))),
        )
        return {r[1]: _item(r) for r in rows}

    def list_items(self, shop_id: str, after: str, limit: int) -> list[Item]:
        rows = self._query(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE shop_id = %s AND item_id > %s"
            " ORDER BY item_id LIMIT %s",
            (shop_id, after, limit),
        )
        return [_item(r) for r in rows]

    # -- interactions ------------------------------------------------------------------------

    def record_interactions(
        self, shop_id: str, request_id: str, request_hash: str, interactions: Sequence[Interaction]
    ) -> tuple[list[Interaction], bool]:
        stored, _count, replayed = self._group_commit(
            shop_id, request_id, request_hash, interactions, count_only=False
        )
        return stored, replayed

    def _group_commit(
        self,
        shop_id: str,
        request_id: str,
        request_hash: str,
        interactions: Sequence[Interaction],
        count_only: bool,
    ) -> tuple[list[Interaction], int, bool]:
        deadline.check("recording interactions")
        if self._closed:
            raise Unavailable("STORE_CLOSED", "the store is shutting down; retry")
        left = deadline.remaining()
        pending = _Pending(
            shop_id,
            request_id,
            request_hash,
            interactions,
            None if left is None else time.monotonic() + left,
            count_only,
        )
        self._pending.put(pending)
        # The committer bounds every wait of its transaction by the batch's deadline, so this
        # returns soon after that deadline at the latest; the margin covers one flush.
        if not pending.done.wait(timeout=None if left is None else left + self.lock_timeout):
            raise DeadlineExceeded("recording interactions")
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _commit_groups(self) -> None:
        while True:
            first = self._pending.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < GROUP_LIMIT:
                try:
                    more = self._pending.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            # Every group takes its request-id locks in one order, so two committers never
            # deadlock on retries of each other's batches.
            group.sort(key=lambda p: (p.shop_id, p.request_id))
            for attempt in range(3):
                if self._commit_group(group, last_try=attempt == 2):
                    break
            if stop:
                return

    def _commit_group(self, group: list[_Pending], last_try: bool = True) -> bool:
        """Commits ``group`` and answers its callers; False (callers not answered) when the
        database rolled the transaction back for a conflict and ``last_try`` is not set."""
        group = [p for p in group if not p.done.is_set()]
        now = time.monotonic()
        live = []
        for p in group:
            if p.expires is not None and p.expires <= now:
                p.error = DeadlineExceeded("recording interactions")
                p.done.set()
            else:
                live.append(p)
        if not live:
            return True
        expiries = [p.expires for p in live if p.expires is not None]
        expires = min(expiries) if expiries else None
        lock_wait, statement = self._wait_bound(expires)
        results: dict[int, tuple[list[Interaction], int, bool]] = {}
        errors: dict[int, KosmosError] = {}
        try:
            with (
                _translate(expires),
                self._pool.connection(timeout=max(lock_wait, 0.001)) as conn,
                conn.transaction(),
            ):
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, true),"
                    " set_config('statement_timeout', %s, true)",
                    (_ms(lock_wait), _ms(statement) if statement else "0"),
                )
                for n, p in enumerate(live):
                    try:
                        # No savepoint (round trips are what a group commit saves): a batch
                        # that fails its checks has written nothing but its request row,
                        # which _record_one removes again.
                        results[n] = self._record_one(conn, p)
                        if p.count_only and not results[n][2]:  # an import stored a batch
                            self._notify(conn, Event(HISTORY, p.shop_id))
                    except (NotFound, AlreadyExists) as error:
                        errors[n] = error
        except Exception as error:  # noqa: BLE001 - handed to every waiting caller
            if not last_try and isinstance(error.__cause__, pg_errors.TransactionRollback):
                return False  # a deadlock or serialization failure: nothing committed, retry
            for p in live:
                p.error = _as_error(error, p.expires)
                p.done.set()
            return True
        for n, p in enumerate(live):
            p.result = results.get(n)
            p.error = errors.get(n)
            p.done.set()
        return True

    @staticmethod
    def _record_one(conn: Conn, p: _Pending) -> tuple[list[Interaction], int, bool]:
        inserted = conn.execute(
            "INSERT INTO feedback_requests (shop_id, request_id, request_hash, create_time)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (p.shop_id, p.request_id, p.request_hash, time.time()),
        ).fetchone()
        if inserted is None:
            row = conn.execute(
                "SELECT request_hash FROM feedback_requests WHERE shop_id = %s AND request_id = %s",
                (p.shop_id, p.request_id),
            ).fetchone()
            if row is None or row[0] != p.request_hash:
                raise AlreadyExists(
                    "REQUEST_ID_REUSED",
                    f"request_id {p.request_id!r} was already used for a different request",
                )
            if p.count_only:
                counted = conn.execute(
                    "SELECT count(*) FROM interactions WHERE shop_id = %s AND request_id = %s",
                    (p.shop_id, p.request_id),
                ).fetchone()
                assert counted is not None
                return [], int(counted[0]), True
            rows = conn.execute(
                f"SELECT {_INTERACTION_COLUMNS} FROM interactions"
                " WHERE shop_id = %s AND request_id = %s ORDER BY seq",
                (p.shop_id, p.request_id),
            ).fetchall()
            stored = [_interaction(r) for r in rows]
            return stored, len(stored), True
        try:
            PostgresStore._check_references(conn, p.shop_id, p.interactions)
        except NotFound:
            conn.execute(
                "DELETE FROM feedback_requests WHERE shop_id = %s AND request_id = %s",
                (p.shop_id, p.request_id),
            )
            raise
        if p.count_only:
            # COPY: the rows stream to the server in one command, encoded by psycopg's C
            # code, and no seq comes back. Identity values follow the stream's order.
            with conn.cursor().copy(
                "COPY interactions (shop_id, customer_id, item_id, type, value, event_time,"
                " recommendation_id, request_id, channel, device) FROM STDIN"
            ) as copy:
                write = copy.write_row
                shop_id, request_id = p.shop_id, p.request_id
                for row in interaction_rows(shop_id, request_id, p.interactions):
                    write(row)
            return [], len(p.interactions), False
        rows = conn.execute(
            "INSERT INTO interactions (shop_id, customer_id, item_id, type, value, event_time,"
            " recommendation_id, request_id, channel, device)"
            " SELECT %s, c, i, t, v, e, r, %s, ch, dv FROM unnest("
            "%s::text[], %s::text[], %s::smallint[], %s::float8[], %s::float8[], %s::text[],"
            " %s::text[], %s::text[])"
            " WITH ORDINALITY AS u(c, i, t, v, e, r, ch, dv, n) ORDER BY n RETURNING seq",
            (
                p.shop_id,
                p.request_id,
                [i.customer_id for i in p.interactions],
                [i.item_id for i in p.interactions],
                [int(i.type) for i in p.interactions],
                [i.value for i in p.interactions],
                [i.event_time for i in p.interactions],
                [i.recommendation_id for i in p.interactions],
                [i.channel for i in p.interactions],
                [i.device for i in p.interactions],
            ),
        ).fetchall()
        # Identity values are drawn in insertion order, which the ORDER BY fixed.
        seqs = sorted(r[0] for r in rows)
        stored = [
            Interaction(
                p.shop_id,
                i.customer_id,
                i.item_id,
                i.type,
                i.event_time,
                i.value,
                i.recommendation_id,
                seq,
                i.channel,
                i.device,
            )
            for i, seq in zip(p.interactions, seqs, strict=True)
        ]
        return stored, len(stored), False

    @staticmethod
    def _check_references(conn: Conn, shop_id: str, interactions: Sequence[Interaction]) -> None:
        """Raises NotFound for the first unknown shop, customer or item, in one round trip
        inside the write; the customers found are locked against a concurrent delete until the
        commit (FOR KEY SHARE)."""
        customer_ids, item_ids = referenced_ids(interactions)
        customers, items = sorted(customer_ids), sorted(item_ids)
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM shops WHERE shop_id = %s),"
            " ARRAY(SELECT customer_id FROM customers"
            "       WHERE shop_id = %s AND customer_id = ANY(%s) FOR KEY SHARE),"
            " ARRAY(SELECT item_id FROM items WHERE shop_id = %s AND item_id = ANY(%s))",
            (shop_id, shop_id, customers, shop_id, items),
        ).fetchone()
        assert row is not None
        if not row[0]:
            raise NotFound("shop", shop_name(shop_id))
        found, known = set(row[1]), set(row[2])
        missing = [c for c in customers if c not in found]
        if missing:
            raise NotFound("customer", customer_name(shop_id, missing[0]))
        unknown = [i for i in items if i not in known]
        if unknown:
            raise NotFound("item", item_name(shop_id, unknown[0]))

    def import_interactions(
        self, shop_id: str, request_id: str, request_hash: str, interactions: Sequence[Interaction]
    ) -> tuple[int, bool]:
        # The same group-committed, idempotent path as live feedback: one WAL flush for many
        # batches, the request id's row making a retry on any replica a replay; but written
        # with COPY, and answered with a count.
        _stored, count, replayed = self._group_commit(
            shop_id, request_id, request_hash, interactions, count_only=True
        )
        return count, replayed

    def list_interactions(
        self, shop_id: str, customer_id: str, before_seq: int | None, limit: int
    ) -> list[Interaction]:
        rows = self._query(
            f"SELECT {_INTERACTION_COLUMNS} FROM interactions"
            " WHERE shop_id = %s AND customer_id = %s AND seq < %s ORDER BY seq DESC LIMIT %s",
            (shop_id, customer_id, before_seq if before_seq is not None else 2**62, limit),
        )
        return [_interaction(r) for r in rows]

    def dismissed_item_ids(self, shop_id: str, customer_id: str) -> set[str]:
        return {r[0] for r in self._query(_DISMISSED, (shop_id, customer_id))}

    def recommend_inputs(
        self,
        shop_id: str,
        customer_id: str,
        recent_limit: int,
        owned_types: Collection[InteractionType] = (),
        impressions_since: float | None = None,
    ) -> RecommendInputs | None:
        # One statement, one round trip: the profile with its recent history, its dismissals
        # and what it owns (the seen-item policy).
        # The person is the id and every id linked to it, either way (issue 11); "recent" is
        # by event time, not arrival order.
        kinds = sorted({int(t) for t in owned_types})
        person = (
            "(SELECT %s::text UNION SELECT linked_id FROM identity_links"
            " WHERE shop_id = %s AND customer_id = %s UNION SELECT customer_id"
            " FROM identity_links WHERE shop_id = %s AND linked_id = %s)"
        )
        who = (customer_id, shop_id, customer_id, shop_id, customer_id)
        rows = self._query(
            f"WITH person(id) AS {person} SELECT {_C_CUSTOMER_COLUMNS},"
            f" (SELECT coalesce(json_agg(json_build_array({_INTERACTION_COLUMNS})), '[]')"
            f"  FROM (SELECT {_INTERACTION_COLUMNS} FROM interactions"
            "   WHERE shop_id = c.shop_id AND customer_id IN (SELECT id FROM person)"
            "   ORDER BY event_time DESC, seq DESC LIMIT %s) AS recent),"
            " ARRAY(SELECT DISTINCT item_id FROM interactions"
            "   WHERE shop_id = c.shop_id AND customer_id IN (SELECT id FROM person)"
            f"   AND type = {int(InteractionType.DISMISS)}),"
            " ARRAY(SELECT DISTINCT item_id FROM interactions"
            "   WHERE shop_id = c.shop_id AND customer_id IN (SELECT id FROM person)"
            "   AND type = ANY(%s)),"
            " ARRAY(SELECT id FROM person WHERE id <> c.customer_id ORDER BY id),"
            " (SELECT coalesce(json_agg(json_build_array(purpose, granted)), '[]') FROM consents"
            "   WHERE shop_id = c.shop_id AND customer_id = c.customer_id),"
            " (SELECT mask_time FROM model_masks WHERE shop_id = c.shop_id AND subject = %s),"
            # The shop's revisions, for the serving caches (no read of their own).
            " s.catalog_version, s.settings_revision,"
            " (SELECT coalesce(json_object_agg(kind, revision), '{}') FROM shop_document_heads"
            "   WHERE shop_id = c.shop_id),"
            # Rotation's impressions, when asked for.
            " (SELECT coalesce(json_agg(json_build_array(recommendation_id, item_id,"
            "   event_time)), '[]') FROM (SELECT recommendation_id, item_id, event_time"
            "   FROM impressions WHERE %s::float8 IS NOT NULL AND shop_id = c.shop_id"
            "   AND customer_id = c.customer_id AND event_time >= %s::float8"
            "   ORDER BY event_time DESC LIMIT %s) AS shown)"
            " FROM customers AS c JOIN shops AS s ON s.shop_id = c.shop_id"
            " WHERE c.shop_id = %s AND c.customer_id = %s",
            (
                *who,
                recent_limit,
                kinds,
                subject_hash(shop_id, customer_id),
                impressions_since,
                impressions_since,
                IMPRESSIONS_LIMIT,
                shop_id,
                customer_id,
            ),
        )
        if not rows:
            return None
        row = rows[0]
        n = _CUSTOMER_WIDTH
        recent = row[n] if isinstance(row[n], list) else json.loads(row[n])
        consents = row[n + 4] if isinstance(row[n + 4], list) else json.loads(row[n + 4])
        return RecommendInputs(
            _customer(row),
            [_interaction(r) for r in recent],
            frozenset(row[n + 1]),
            frozenset(row[n + 2]),
            {ConsentPurpose(p): bool(g) for p, g in consents},
            tuple(row[n + 3]),
            row[n + 5],
            ShopRevisions(
                int(row[n + 6]),
                int(row[n + 7]),
                {str(k): int(v) for k, v in _json(row[n + 8]).items()},
            ),
            tuple(
                Impression(shop_id, customer_id, str(r), str(i), float(t))
                for r, i, t in _json(row[n + 9])
            ),
        )

    # -- the customer's own choices (issue 11) -----------------------------------------------

    def ensure_anonymous_customers(self, shop_id: str, customer_ids: Iterable[str]) -> list[str]:
        ids = sorted(set(customer_ids))
        if not ids:
            return []
        now = time.time()
        try:
            with self._tx("ensure_anonymous_customers", write=True) as conn:
                rows = conn.execute(
                    "INSERT INTO customers (shop_id, customer_id, create_time, update_time,"
                    " anonymous) SELECT %s, c, %s, %s, TRUE FROM unnest(%s::text[]) AS u(c)"
                    " ON CONFLICT DO NOTHING RETURNING customer_id",
                    (shop_id, now, now, ids),
                ).fetchall()
        except pg_errors.ForeignKeyViolation:
            raise NotFound("shop", shop_name(shop_id)) from None
        return sorted(r[0] for r in rows)

    def undo_dismissal(self, shop_id: str, customer_id: str, item_id: str) -> int:
        with self._tx("undo_dismissal", write=True) as conn:
            cursor = conn.execute(
                "DELETE FROM interactions WHERE shop_id = %s AND customer_id = %s"
                f" AND item_id = %s AND type = {int(InteractionType.DISMISS)}",
                (shop_id, customer_id, item_id),
            )
            if cursor.rowcount:
                self._notify(conn, Event(CUSTOMER, shop_id, customer_id))
            return int(cursor.rowcount)

    def consents(self, shop_id: str, customer_id: str) -> dict[ConsentPurpose, Consent]:
        rows = self._query(
            "SELECT purpose, granted, source, update_time FROM consents"
            " WHERE shop_id = %s AND customer_id = %s",
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
        with self._tx("set_consent", write=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM customers WHERE shop_id = %s AND customer_id = %s FOR KEY SHARE",
                (shop_id, customer_id),
            ).fetchone()
            if exists is None:
                raise NotFound("customer", customer_name(shop_id, customer_id))
            conn.execute(
                "INSERT INTO consents (shop_id, customer_id, purpose, granted, source,"
                " update_time) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (shop_id, customer_id, purpose) DO UPDATE"
                " SET granted = excluded.granted, source = excluded.source,"
                " update_time = excluded.update_time",
                (shop_id, customer_id, int(purpose), granted, source, now),
            )
            row = conn.execute(
                "INSERT INTO consent_changes (shop_id, customer_id, purpose, granted, source,"
                " update_time) VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq",
                (shop_id, customer_id, int(purpose), granted, source, now),
            ).fetchone()
            seq = int(row[0]) if row else 0
            if purpose is ConsentPurpose.CROSS_DEVICE_LINKING and not granted:
                unlinked = conn.execute(
                    "DELETE FROM identity_links WHERE shop_id = %s"
                    " AND (customer_id = %s OR linked_id = %s)",
                    (shop_id, customer_id, customer_id),
                ).rowcount
            if purpose is ConsentPurpose.TRAINING:
                if not granted:
                    self._mask(conn, shop_id, customer_id, now)
                conn.execute(
                    "UPDATE shops SET privacy_version = privacy_version + 1 WHERE shop_id = %s",
                    (shop_id,),
                )
            self._notify(conn, Event(CUSTOMER, shop_id, customer_id))
        return Consent(purpose, granted, source, now, seq), int(unlinked)

    @staticmethod
    def _mask(conn: Conn, shop_id: str, customer_id: str, now: float) -> None:
        conn.execute(
            "INSERT INTO model_masks (shop_id, subject, mask_time) VALUES (%s, %s, %s)"
            " ON CONFLICT (shop_id, subject) DO UPDATE SET mask_time = excluded.mask_time",
            (shop_id, subject_hash(shop_id, customer_id), now),
        )

    def list_consent_changes(
        self, shop_id: str, customer_id: str, before_seq: int | None, limit: int
    ) -> list[Consent]:
        rows = self._query(
            "SELECT purpose, granted, source, update_time, seq FROM consent_changes"
            " WHERE shop_id = %s AND customer_id = %s AND seq < %s ORDER BY seq DESC LIMIT %s",
            (shop_id, customer_id, before_seq if before_seq is not None else 2**62, limit),
        )
        return [Consent(ConsentPurpose(r[0]), bool(r[1]), r[2], r[3], int(r[4])) for r in rows]

    def link_identity(
        self, shop_id: str, customer_id: str, linked_id: str, source: str
    ) -> IdentityLink:
        now = time.time()
        with self._tx("link_identity", write=True) as conn:
            for who in (customer_id, linked_id):
                # FOR KEY SHARE: an erasure of either cannot slip in before the link commits.
                if (
                    conn.execute(
                        "SELECT 1 FROM customers WHERE shop_id = %s AND customer_id = %s"
                        " FOR KEY SHARE",
                        (shop_id, who),
                    ).fetchone()
                    is None
                ):
                    raise NotFound("customer", customer_name(shop_id, who))
                refused = conn.execute(
                    "SELECT 1 FROM consents WHERE shop_id = %s AND customer_id = %s"
                    " AND purpose = %s AND NOT granted",
                    (shop_id, who, int(ConsentPurpose.CROSS_DEVICE_LINKING)),
                ).fetchone()
                if refused is not None:
                    raise FailedPrecondition(
                        "NO_LINKING_CONSENT",
                        f"{customer_name(shop_id, who)} has not allowed cross-device linking",
                    )
            conn.execute(
                "INSERT INTO identity_links (shop_id, customer_id, linked_id, source,"
                " create_time) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (shop_id, customer_id, linked_id, source, now),
            )
            row = conn.execute(
                "SELECT shop_id, customer_id, linked_id, source, create_time FROM identity_links"
                " WHERE shop_id = %s AND customer_id = %s AND linked_id = %s",
                (shop_id, customer_id, linked_id),
            ).fetchone()
            self._notify(conn, Event(CUSTOMER, shop_id, customer_id))
        assert row is not None
        return IdentityLink(*row)

    def unlink_identity(self, shop_id: str, customer_id: str, linked_id: str) -> bool:
        with self._tx("unlink_identity", write=True) as conn:
            cursor = conn.execute(
                "DELETE FROM identity_links WHERE shop_id = %s AND customer_id = %s"
                " AND linked_id = %s",
                (shop_id, customer_id, linked_id),
            )
            if cursor.rowcount:
                self._notify(conn, Event(CUSTOMER, shop_id, customer_id))
            return bool(cursor.rowcount)

    def list_identity_links(
        self, shop_id: str, customer_id: str, after: str, limit: int
    ) -> list[IdentityLink]:
        rows = self._query(
            "SELECT shop_id, customer_id, linked_id, source, create_time FROM identity_links"
            " WHERE shop_id = %s AND customer_id = %s AND linked_id > %s"
            " ORDER BY linked_id LIMIT %s",
            (shop_id, customer_id, after, limit),
        )
        return [IdentityLink(*r) for r in rows]

    def erase_customer(self, shop_id: str, customer_id: str) -> Erasure:
        self._lists.flush()  # what was kept for the customer before this is deleted too
        now = time.time()
        with self._tx("erase_customer", write=True) as conn:
            if (
                conn.execute("SELECT 1 FROM shops WHERE shop_id = %s", (shop_id,)).fetchone()
                is None
            ):
                raise NotFound("shop", shop_name(shop_id))
            who = (shop_id, customer_id)
            # The profile row first, locked: a concurrent feedback write for the customer
            # waits, then finds no customer.
            conn.execute(
                "SELECT 1 FROM customers WHERE shop_id = %s AND customer_id = %s FOR UPDATE", who
            )
            # Idempotency records of requests that held only this customer's events (see the
            # SQLite store for why mixed requests keep theirs).
            requests = conn.execute(
                "DELETE FROM feedback_requests WHERE shop_id = %s AND request_id IN"
                " (SELECT request_id FROM interactions WHERE shop_id = %s AND customer_id = %s)"
                " AND request_id NOT IN (SELECT request_id FROM interactions"
                " WHERE shop_id = %s AND customer_id <> %s)",
                (shop_id, *who, *who),
            ).rowcount
            interactions = conn.execute(
                "DELETE FROM interactions WHERE shop_id = %s AND customer_id = %s", who
            ).rowcount
            links = conn.execute(
                "DELETE FROM identity_links WHERE shop_id = %s"
                " AND (customer_id = %s OR linked_id = %s)",
                (*who, customer_id),
            ).rowcount
            consents = conn.execute(
                "DELETE FROM consents WHERE shop_id = %s AND customer_id = %s", who
            ).rowcount
            conn.execute("DELETE FROM consent_changes WHERE shop_id = %s AND customer_id = %s", who)
            # What pages showed them and the lists kept for their later pages (issue 13).
            conn.execute("DELETE FROM impressions WHERE shop_id = %s AND customer_id = %s", who)
            conn.execute(
                "DELETE FROM recommendation_lists WHERE shop_id = %s AND customer_id = %s", who
            )
            profile = conn.execute(
                "DELETE FROM customers WHERE shop_id = %s AND customer_id = %s", who
            ).rowcount
            removed: list[str] = []
            pending: list[str] = []
            if profile or interactions:
                self._mask(conn, shop_id, customer_id, now)
                conn.execute(
                    "UPDATE shops SET privacy_version = privacy_version + 1 WHERE shop_id = %s",
                    (shop_id,),
                )
                current = {
                    (r[0], r[1])
                    for r in conn.execute(
                        "SELECT recommender, version FROM model_current WHERE shop_id = %s",
                        (shop_id,),
                    )
                }
                for recommender, version in conn.execute(
                    "SELECT recommender, version FROM model_artifacts"
                    " WHERE shop_id = %s AND create_time <= %s ORDER BY recommender, version",
                    (shop_id, now),
                ).fetchall():
                    (pending if (recommender, version) in current else removed).append(
                        f"{recommender}/{version}"
                    )
                for name in removed:
                    recommender, version = name.split("/", 1)
                    conn.execute(
                        "DELETE FROM model_artifacts WHERE shop_id = %s AND recommender = %s"
                        " AND version = %s",
                        (shop_id, recommender, version),
                    )
                self._notify(conn, Event(CUSTOMER, shop_id, customer_id))
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
        rows = self._query("SELECT max(mask_time) FROM model_masks WHERE shop_id = %s", (shop_id,))
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- per-shop settings -------------------------------------------------------------------

    def settings_revision(self, shop_id: str) -> int | None:
        rows = self._query("SELECT settings_revision FROM shops WHERE shop_id = %s", (shop_id,))
        return int(rows[0][0]) if rows else None

    def get_shop_settings(self, shop_id: str, revision: int = 0) -> ShopSettingsRevision | None:
        if revision:
            rows = self._query(
                "SELECT shop_id, revision, document, create_time FROM shop_settings"
                " WHERE shop_id = %s AND revision = %s",
                (shop_id, revision),
            )
        else:
            rows = self._query(
                "SELECT s.shop_id, s.revision, s.document, s.create_time FROM shop_settings s"
                " JOIN shops USING (shop_id) WHERE s.shop_id = %s"
                " AND s.revision = shops.settings_revision",
                (shop_id,),
            )
        return _settings(rows[0]) if rows else None

    def put_shop_settings(self, shop_id: str, document: Mapping[str, Any]) -> ShopSettingsRevision:
        now = time.time()
        text = json.dumps(document, sort_keys=True)
        with self._tx("put_shop_settings", write=True) as conn:
            row = conn.execute(
                "UPDATE shops SET settings_revision = settings_revision + 1 WHERE shop_id = %s"
                " RETURNING settings_revision",
                (shop_id,),
            ).fetchone()
            if row is None:
                raise NotFound("shop", shop_name(shop_id))
            revision = int(row[0])
            conn.execute(
                "INSERT INTO shop_settings (shop_id, revision, document, create_time)"
                " VALUES (%s, %s, %s, %s)",
                (shop_id, revision, text, now),
            )
        return ShopSettingsRevision(shop_id, revision, json.loads(text), now)

    def list_shop_settings(
        self, shop_id: str, before_revision: int | None, limit: int
    ) -> list[ShopSettingsRevision]:
        rows = self._query(
            "SELECT shop_id, revision, document, create_time FROM shop_settings"
            " WHERE shop_id = %s AND revision < %s ORDER BY revision DESC LIMIT %s",
            (shop_id, before_revision if before_revision is not None else 2**62, limit),
        )
        return [_settings(row) for row in rows]

    # -- issue 13: versioned shop documents, recommendation lists, impressions ---------------

    def document_revisions(self, shop_id: str) -> dict[str, int]:
        rows = self._query(
            "SELECT kind, revision FROM shop_document_heads WHERE shop_id = %s", (shop_id,)
        )
        return {row[0]: int(row[1]) for row in rows}

    def get_document(
        self, shop_id: str, kind: str, revision: int = 0
    ) -> ShopSettingsRevision | None:
        if revision:
            rows = self._query(
                "SELECT shop_id, revision, document, create_time FROM shop_documents"
                " WHERE shop_id = %s AND kind = %s AND revision = %s",
                (shop_id, kind, revision),
            )
        else:
            rows = self._query(
                "SELECT d.shop_id, d.revision, d.document, d.create_time FROM shop_documents d"
                " JOIN shop_document_heads h USING (shop_id, kind, revision)"
                " WHERE d.shop_id = %s AND d.kind = %s",
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
        with self._tx("a database write", write=True) as conn:
            # The shop's row is the lock: two first revisions of one kind cannot race.
            shop = conn.execute(
                "SELECT 1 FROM shops WHERE shop_id = %s FOR UPDATE", (shop_id,)
            ).fetchone()
            if shop is None:
                raise NotFound("shop", shop_name(shop_id))
            row = conn.execute(
                "SELECT revision FROM shop_document_heads WHERE shop_id = %s AND kind = %s",
                (shop_id, kind),
            ).fetchone()
            current = int(row[0]) if row else 0
            if expected_revision is not None and expected_revision != current:
                raise Aborted("CONCURRENT_UPDATE", f"the {kind} changed meanwhile; retry")
            revision = current + 1
            conn.execute(
                "INSERT INTO shop_documents (shop_id, kind, revision, document, create_time)"
                " VALUES (%s, %s, %s, %s, %s)",
                (shop_id, kind, revision, text, now),
            )
            conn.execute(
                "INSERT INTO shop_document_heads (shop_id, kind, revision) VALUES (%s, %s, %s)"
                " ON CONFLICT (shop_id, kind) DO UPDATE SET revision = excluded.revision",
                (shop_id, kind, revision),
            )
        return ShopSettingsRevision(shop_id, revision, json.loads(text), now)

    def list_documents(
        self, shop_id: str, kind: str, before_revision: int | None, limit: int
    ) -> list[ShopSettingsRevision]:
        rows = self._query(
            "SELECT shop_id, revision, document, create_time FROM shop_documents"
            " WHERE shop_id = %s AND kind = %s AND revision < %s ORDER BY revision DESC LIMIT %s",
            (shop_id, kind, before_revision if before_revision is not None else 2**62, limit),
        )
        return [_settings(row) for row in rows]

    def put_recommendation_list(self, record: RecommendationList) -> None:
        # Write-behind (`kosmos.store._group`): the Recommend that keeps the list does not wait
        # for it; this process reads it from the writer's pending rows until its group commits
        # (milliseconds), every replica from the table after that.
        self._lists.put((record.shop_id, record.recommendation_id), record)

    def _put_lists(self, records: Sequence[RecommendationList]) -> None:
        with self._tx("a database write", write=True) as conn:
            # A kept list is a cache with a TTL, not an acknowledged event: no WAL flush wait.
            conn.execute("SET LOCAL synchronous_commit = off")
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO recommendation_lists (shop_id, recommendation_id,"
                    " customer_id, placement, experiment_id, variant_id, offers, create_time,"
                    " expire_time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (shop_id, recommendation_id) DO UPDATE SET"
                    " offers = excluded.offers, expire_time = excluded.expire_time",
                    [list_row(r) for r in records],
                )
            # Expired lists go a few at a time, on one group in `_PURGE_EVERY`.
            if next(_list_writes) % _PURGE_EVERY:
                return
            conn.execute(
                "DELETE FROM recommendation_lists WHERE (shop_id, recommendation_id) IN"
                " (SELECT shop_id, recommendation_id FROM recommendation_lists"
                " WHERE expire_time < %s AND experiment_id = '' LIMIT 100)",
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
            " WHERE shop_id = %s AND recommendation_id = %s AND expire_time >= %s",
            (shop_id, recommendation_id, now),
        )
        return read_list(tuple(rows[0])) if rows else None

    def record_impressions(self, shop_id: str, impressions: Sequence[Impression]) -> int:
        with self._tx("a database write", write=True) as conn:
            for customer_id in sorted({i.customer_id for i in impressions}):
                found = conn.execute(
                    "SELECT 1 FROM customers WHERE shop_id = %s AND customer_id = %s",
                    (shop_id, customer_id),
                ).fetchone()
                if found is None:
                    raise NotFound("customer", customer_name(shop_id, customer_id))
            rows = conn.execute(
                "INSERT INTO impressions (shop_id, recommendation_id, item_id, customer_id,"
                " event_time) SELECT %s, r, i, c, t FROM unnest(%s::text[], %s::text[],"
                " %s::text[], %s::float8[]) AS u (r, i, c, t)"
                " ON CONFLICT DO NOTHING RETURNING 1",
                (
                    shop_id,
                    [i.recommendation_id for i in impressions],
                    [i.item_id for i in impressions],
                    [i.customer_id for i in impressions],
                    [i.event_time for i in impressions],
                ),
            ).fetchall()
            return len(rows)

    def recent_impressions(self, shop_id: str, customer_id: str, since: float) -> list[Impression]:
        rows = self._query(
            "SELECT recommendation_id, item_id, event_time FROM impressions"
            " WHERE shop_id = %s AND customer_id = %s AND event_time >= %s"
            " ORDER BY event_time DESC LIMIT %s",
            (shop_id, customer_id, since, IMPRESSIONS_LIMIT),
        )
        return [Impression(shop_id, customer_id, r[0], r[1], r[2]) for r in rows]

    def experiment_outcomes(self, shop_id: str, experiment_id: str) -> ExperimentOutcomes:
        self._lists.flush()  # the lists served so far count
        with self._tx("experiment_outcomes") as conn:
            lists = conn.execute(
                "SELECT recommendation_id, customer_id, variant_id FROM recommendation_lists"
                " WHERE shop_id = %s AND experiment_id = %s",
                (shop_id, experiment_id),
            ).fetchall()
            shown = conn.execute(
                "SELECT i.recommendation_id, i.item_id FROM impressions i"
                " JOIN recommendation_lists l USING (shop_id, recommendation_id)"
                " WHERE l.shop_id = %s AND l.experiment_id = %s",
                (shop_id, experiment_id),
            ).fetchall()
            acted = conn.execute(
                "SELECT x.recommendation_id, x.item_id, x.type, x.value, coalesce(it.price, 0)"
                " FROM interactions x"
                # Only the list's own customer's actions count for it.
                " JOIN recommendation_lists l ON l.shop_id = x.shop_id"
                " AND l.recommendation_id = x.recommendation_id AND l.customer_id = x.customer_id"
                " LEFT JOIN items it ON it.shop_id = x.shop_id AND it.item_id = x.item_id"
                " WHERE l.shop_id = %s AND l.experiment_id = %s",
                (shop_id, experiment_id),
            ).fetchall()
        return ExperimentOutcomes(
            [(r[0], r[1], r[2]) for r in lists],
            [(r[0], r[1]) for r in shown],
            [(r[0], r[1], InteractionType(r[2]), float(r[3]), float(r[4])) for r in acted],
        )

    # -- API keys ----------------------------------------------------------------------------

    def create_api_key(self, key: ApiKey) -> ApiKey:
        created = ApiKey(
            key.key_id, key.shop_id, key.scope, key.secret_hash, key.display_name, time.time()
        )
        try:
            with self._tx("create_api_key", write=True) as conn:
                conn.execute(
                    f"INSERT INTO api_keys ({_API_KEY_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        created.key_id,
                        created.shop_id,
                        created.scope,
                        created.secret_hash,
                        created.display_name,
                        created.create_time,
                        None,
                    ),
                )
        except pg_errors.UniqueViolation:
            raise AlreadyExists("API_KEY_EXISTS", "the key id is taken") from None
        return created

    def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = self._query(f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,))
        return ApiKey(*rows[0]) if rows else None

    def list_api_keys(self, shop_id: str | None, after: str, limit: int) -> list[ApiKey]:
        if shop_id is None:
            rows = self._query(
                f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE key_id > %s"
                " ORDER BY key_id LIMIT %s",
                (after, limit),
            )
        else:
            rows = self._query(
                f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE shop_id = %s AND key_id > %s"
                " ORDER BY key_id LIMIT %s",
                (shop_id, after, limit),
            )
        return [ApiKey(*row) for row in rows]

    def revoke_api_key(self, key_id: str) -> ApiKey | None:
        with self._tx("revoke_api_key", write=True) as conn:
            conn.execute(
                "UPDATE api_keys SET revoke_time = %s WHERE key_id = %s AND revoke_time IS NULL",
                (time.time(), key_id),
            )
            rows = conn.execute(
                f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,)
            ).fetchall()
            if rows:  # every replica that caches keys drops it (`kosmos.common.auth`)
                self._notify(conn, Event(API_KEY, ApiKey(*rows[0]).shop_id, key_id))
        return ApiKey(*rows[0]) if rows else None

    def iter_interactions(
        self,
        shop_id: str,
        after_seq: int = 0,
        types: Collection[InteractionType] | None = None,
    ) -> Iterator[Interaction]:
        # One statement behind a server-side cursor, fetched 5,000 rows at a time: one plan and
        # at most one sort for the whole read, whatever the table's statistics say. (Keyset
        # pages, one statement each, were planned as a sort of every later row on a freshly
        # imported 22.7M-event table that had not been analyzed: quadratic in the table.)
        # A customer who withdrew training consent never enters a model (issue 11).
        with (
            self._tx("reading interactions") as conn,
            conn.cursor(name="kosmos_iter_interactions") as cur,
        ):
            cur.itersize = 5000
            only = "" if types is None else " AND i.type = ANY(%s)"
            cur.execute(
                f"SELECT {_INTERACTION_COLUMNS} FROM interactions i"
                f" WHERE i.shop_id = %s AND i.seq > %s{only} AND {_TRAINABLE} ORDER BY i.seq",
                (
                    shop_id,
                    after_seq,
                    *(() if types is None else ([int(t) for t in types],)),
                    int(ConsentPurpose.TRAINING),
                ),
            )
            for row in cur:
                yield _interaction(row)

    def iter_training_rows(self, shop_id: str) -> Iterator[tuple[Any, ...]]:
        # As `iter_interactions`: one statement behind a server-side cursor.
        with (
            self._tx("reading interactions") as conn,
            conn.cursor(name="kosmos_iter_training_rows") as cur,
        ):
            cur.itersize = 5000
            cur.execute(
                "SELECT customer_id, item_id, type, value, event_time, channel, device, seq"
                f" FROM interactions i WHERE i.shop_id = %s AND {_TRAINABLE} ORDER BY i.seq",
                (shop_id, int(ConsentPurpose.TRAINING)),
            )
            yield from cur

    def data_version(self, shop_id: str) -> str:
        rows = self._query(
            "SELECT (SELECT coalesce(max(seq), 0) FROM interactions WHERE shop_id = %s),"
            " (SELECT count(*) FROM interactions WHERE shop_id = %s),"
            " (SELECT catalog_version FROM shops WHERE shop_id = %s),"
            " (SELECT count(*) FROM customers WHERE shop_id = %s),"
            " (SELECT coalesce(max(update_time), 0) FROM customers WHERE shop_id = %s),"
            " (SELECT privacy_version FROM shops WHERE shop_id = %s)",
            (shop_id,) * 6,
        )
        seq, count, catalog, customers, updated, privacy = rows[0]
        return (
            f"{seq}.{count}.{catalog if catalog is not None else -1}.{customers}.{updated}"
            f".{privacy or 0}"
        )

    # -- model artifacts ---------------------------------------------------------------------

    def put_model_artifact(self, artifact: ModelArtifact, blob: bytes) -> None:
        try:
            with self._tx("put_model_artifact", write=True) as conn:
                conn.execute(
                    "INSERT INTO model_artifacts (shop_id, recommender, version, create_time,"
                    " manifest, artifact) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        artifact.shop_id,
                        artifact.recommender,
                        artifact.version,
                        artifact.create_time,
                        artifact.manifest,
                        blob,
                    ),
                )
        except pg_errors.UniqueViolation:
            raise AlreadyExists(
                "MODEL_VERSION_EXISTS", f"model version {artifact.version!r} already exists"
            ) from None

    def model_artifacts(self, shop_id: str, recommender: str) -> list[ModelArtifact]:
        rows = self._query(
            "SELECT shop_id, recommender, version, create_time, manifest FROM model_artifacts"
            " WHERE shop_id = %s AND recommender = %s ORDER BY create_time, version",
            (shop_id, recommender),
        )
        return [ModelArtifact(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def model_blob(self, shop_id: str, recommender: str, version: str) -> bytes | None:
        rows = self._query(
            "SELECT artifact FROM model_artifacts"
            " WHERE shop_id = %s AND recommender = %s AND version = %s",
            (shop_id, recommender, version),
        )
        return bytes(rows[0][0]) if rows else None

    def set_current_model(self, shop_id: str, recommender: str, version: str) -> None:
        with self._tx("set_current_model", write=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM model_artifacts WHERE shop_id = %s AND recommender = %s"
                " AND version = %s FOR KEY SHARE",
                (shop_id, recommender, version),
            ).fetchone()
            if found is None:
                raise NotFound("model version", f"{shop_id}/{recommender}/{version}")
            conn.execute(
                "INSERT INTO model_current (shop_id, recommender, version) VALUES (%s, %s, %s)"
                " ON CONFLICT (shop_id, recommender) DO UPDATE SET version = excluded.version",
                (shop_id, recommender, version),
            )
            self._notify(conn, Event(MODEL, shop_id, recommender))

    def current_model(self, shop_id: str, recommender: str) -> str | None:
        rows = self._query(
            "SELECT version FROM model_current WHERE shop_id = %s AND recommender = %s",
            (shop_id, recommender),
        )
        return str(rows[0][0]) if rows else None

    def delete_model_artifacts(
        self, shop_id: str, recommender: str, versions: Sequence[str]
    ) -> None:
        with self._tx("delete_model_artifacts", write=True) as conn:
            conn.execute(
                "DELETE FROM model_artifacts WHERE shop_id = %s AND recommender = %s"
                " AND version = ANY(%s)",
                (shop_id, recommender, list(versions)),
            )

    def model_recommenders(self, shop_id: str) -> list[str]:
        rows = self._query(
            "SELECT DISTINCT recommender FROM model_artifacts WHERE shop_id = %s ORDER BY 1",
            (shop_id,),
        )
        return [r[0] for r in rows]


_PURGE_EVERY = 32
_list_writes = itertools.count(1)
_LIST_COLUMNS = (
    "shop_id, recommendation_id, customer_id, placement, experiment_id, variant_id, offers,"
    " create_time, expire_time"
)


def _configure(conn: Conn) -> None:
    """Each pooled connection reads json columns (the history and the rest that
    `PostgresStore.recommend_inputs` aggregates) with orjson: PostgreSQL writes RFC 8259 JSON,
    which orjson reads in a third of the standard library's time."""
    set_json_loads(orjson.loads, conn)


def _json(value: Any) -> Any:
    """A json/jsonb column as Python: psycopg decodes json itself; text holding JSON is read."""
    return json.loads(value) if isinstance(value, str | bytes) else value
