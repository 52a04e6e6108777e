"""The Store contract on SQLite, plus what only the embedded file promises."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from kosmos.store import SQLiteStore, _migrations, open_store
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
    rows = sqlite3.connect(path).execute("SELECT version FROM schema_migrations").fetchall()
    # One row per migration file (numbers may have a gap while branches merge, issue 13).
    assert sorted(r[0] for r in rows) == [m.version for m in _migrations.load("sqlite")]
    assert max(r[0] for r in rows) == version
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
