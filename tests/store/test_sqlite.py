"""The Store contract, run against SQLite (a PostgreSQL run joins when that store lands)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from kosmos.common.deadline import deadline_scope
from kosmos.common.errors import AlreadyExists, DeadlineExceeded
from kosmos.store import SQLiteStore, open_store
from kosmos.store.records import (
    Customer,
    Exclusion,
    ExclusionKind,
    Interaction,
    InteractionType,
    Item,
    Shop,
)


def seed(store):
    store.create_shop(Shop("acme"))
    store.create_customer(
        Customer("acme", "alice", {"a": "1"}, (Exclusion(ExclusionKind.BRAND, "X"),))
    )
    store.upsert_items([Item("acme", f"i{n}", category="c") for n in range(3)])


def visit(n=0, customer="alice"):
    return Interaction("acme", customer, f"i{n}", InteractionType.VIEW, 1000.0 + n)


def test_migrations_apply_once_and_record_their_version(tmp_path):
    path = tmp_path / "k.db"
    first = SQLiteStore(path)
    version = first.schema_version()
    first.close()
    second = SQLiteStore(path)  # reopening applies nothing twice
    assert second.schema_version() == version >= 1
    rows = sqlite3.connect(path).execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert rows[0] == version
    second.close()


def test_wal_and_full_sync_are_on(store):
    conn = store._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_round_trips(store):
    seed(store)
    alice = store.get_customer("acme", "alice")
    assert alice.attributes == {"a": "1"} and alice.exclusions[0].value == "X"
    assert set(store.get_items("acme", ["i0", "i2", "nope"])) == {"i0", "i2"}
    assert store.existing_customer_ids("acme", ["alice", "bob"]) == {"alice"}


def test_record_is_idempotent_and_checks_the_hash(store):
    seed(store)
    stored, replay = store.record_interactions("acme", "r1", "h1", [visit(0), visit(1)])
    assert not replay and [i.seq for i in stored] == [1, 2]
    again, replay = store.record_interactions("acme", "r1", "h1", [visit(0), visit(1)])
    assert replay and again == stored
    with pytest.raises(AlreadyExists):
        store.record_interactions("acme", "r1", "other", [visit(2)])
    assert len(list(store.iter_interactions("acme"))) == 2


def test_concurrent_retries_store_once(store):
    seed(store)
    barrier = threading.Barrier(8)
    results = []

    def send():
        barrier.wait()
        results.append(store.record_interactions("acme", "same", "h", [visit(0)]))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(not replay for _, replay in results) == 1
    assert len(list(store.iter_interactions("acme"))) == 1


def test_delete_customer_erases_their_interactions(store):
    seed(store)
    store.record_interactions("acme", "r", "h", [visit(0)])
    assert store.delete_customer("acme", "alice")
    assert list(store.iter_interactions("acme")) == []
    assert not store.delete_customer("acme", "alice")


def test_an_expired_deadline_aborts_a_query(store):
    seed(store)
    with deadline_scope(-1.0), pytest.raises(DeadlineExceeded):
        # A query long enough to reach the progress handler.
        store._query(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n"
            " WHERE x < 1000000) SELECT count(*) FROM n"
        )
    assert store.get_shop("acme") is not None  # the connection still works afterwards


def test_unsupported_url_is_refused():
    with pytest.raises(ValueError, match="unsupported database URL"):
        open_store("mysql://x")


def test_api_keys_are_stored_listed_and_revoked(store):
    from kosmos.store.records import ApiKey

    seed(store)
    first = store.create_api_key(ApiKey("a" * 16, "acme", "admin", "h1", "shop admin"))
    store.create_api_key(ApiKey("b" * 16, "", "operator", "h2"))
    store.create_api_key(ApiKey("c" * 16, "acme", "storefront", "h3"))
    assert first.create_time > 0 and first.revoke_time is None
    with pytest.raises(AlreadyExists):
        store.create_api_key(ApiKey("a" * 16, "acme", "admin", "other"))
    assert store.get_api_key("a" * 16) == first
    assert store.get_api_key("missing") is None
    assert [k.key_id for k in store.list_api_keys("acme", "", 10)] == ["a" * 16, "c" * 16]
    assert [k.key_id for k in store.list_api_keys("", "", 10)] == ["b" * 16]
    assert [k.key_id for k in store.list_api_keys(None, "a" * 16, 1)] == ["b" * 16]
    revoked = store.revoke_api_key("a" * 16)
    assert revoked is not None and revoked.revoke_time is not None
    again = store.revoke_api_key("a" * 16)
    assert again is not None and again.revoke_time == revoked.revoke_time  # stamped once
    assert store.revoke_api_key("missing") is None
