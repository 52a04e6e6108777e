"""The Store contract on PostgreSQL (a schema per test), plus what only the cluster store does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from kosmos.store import _migrations, open_store
from kosmos.store.postgres import PostgresStore
from kosmos.store.records import Interaction, InteractionType
from tests.store.contract import LOCK_TIMEOUT, StoreContract, seed

pytestmark = pytest.mark.postgres


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[PostgresStore]:
        s = PostgresStore(postgres_url, lock_timeout=LOCK_TIMEOUT, pool_size=4)
        yield s
        s.close()

    @contextmanager
    def hold_write_lock(self, store: PostgresStore) -> Iterator[None]:
        with psycopg.connect(store.url) as other:  # a transaction until the block ends
            other.execute("LOCK TABLE interactions IN EXCLUSIVE MODE")  # readers still read
            yield
            other.rollback()

    def cut_connections(self, store: PostgresStore) -> None:
        with psycopg.connect(store.url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = current_setting('application_name')"
                " AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None and killed[0] >= 1


def test_replicas_starting_together_migrate_once(postgres_url):
    barrier = threading.Barrier(4)
    stores: list[PostgresStore] = []

    def start() -> None:
        barrier.wait(timeout=10)
        stores.append(PostgresStore(postgres_url, pool_size=1))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(stores) == 4
    versions = {s.schema_version() for s in stores}
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    expected = [m.version for m in _migrations.load("postgres")]
    assert versions == {expected[-1]} and [r[0] for r in rows] == expected
    for s in stores:
        s.close()


def test_url_selects_the_postgres_store(postgres_url):
    store = open_store(postgres_url)
    try:
        assert isinstance(store, PostgresStore)
    finally:
        store.close()


def test_group_commit_stores_each_batch_once_and_fails_bad_ones_alone(postgres_url):
    store = PostgresStore(postgres_url, pool_size=4)
    try:
        seed(store)
        barrier = threading.Barrier(16)
        outcomes: dict[int, object] = {}

        def send(n: int) -> None:
            # Request ids r0..r11: senders n and n + 12 (n < 4) are a retry of one another;
            # sender 5 names an unknown customer.
            customer = "ghost" if n == 5 else "alice"
            batch = [Interaction("acme", customer, f"i{n % 3}", InteractionType.CLICK, n % 12)]
            barrier.wait(timeout=10)
            try:
                outcomes[n] = store.record_interactions("acme", f"r{n % 12}", f"h{n % 12}", batch)
            except Exception as exc:  # noqa: BLE001 - the outcome under test
                outcomes[n] = exc

        threads = [threading.Thread(target=send, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(outcomes) == 16
        assert {n for n, o in outcomes.items() if isinstance(o, Exception)} == {5}, outcomes
        for n in range(4):  # one of each pair stored, the other replayed the same answer
            (first, first_replay), (second, second_replay) = outcomes[n], outcomes[n + 12]
            assert first == second and {first_replay, second_replay} == {True, False}
        stored = sorted(i.event_time for i in store.iter_interactions("acme"))
        assert stored == [float(n) for n in range(12) if n != 5]
    finally:
        store.close()
