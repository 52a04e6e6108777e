"""The Store contract on SQLite, plus what only the embedded file promises."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from kosmos.store import SQLiteStore, open_store
from tests.store.contract import LOCK_TIMEOUT, StoreContract


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path) -> Iterator[SQLiteStore]:
        s = SQLiteStore(tmp_path / "kosmos.db", lock_timeout=LOCK_TIMEOUT)
        yield s
        s.close()

    @contextmanager
    def hold_write_lock(self, store: SQLiteStore) -> Iterator[None]:
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # what another process's writer would hold
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()


def test_migrations_apply_once_and_record_their_version(tmp_path):
    path = tmp_path / "k.db"
    first = SQLiteStore(path)
    version = first.schema_version()
    first.close()
    second = SQLiteStore(path)  # reopening applies nothing twice
    assert second.schema_version() == version >= 3
    rows = sqlite3.connect(path).execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert rows[0] == version
    second.close()


def test_wal_and_full_sync_are_on(store):
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == "2"  # FULL


def test_dismissals_are_read_by_index(store):
    plan = sqlite3.connect(store.path).execute(
        "EXPLAIN QUERY PLAN SELECT DISTINCT item_id FROM interactions"
        " WHERE shop_id = 'a' AND customer_id = 'b' AND type = 6"
    )
    assert "interactions_dismissed" in " ".join(str(row[-1]) for row in plan)


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
