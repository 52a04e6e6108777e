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


def test_lists_kept_before_the_rowid_table_are_still_served_after_it(tmp_path):
    """Migration 12 moves the kept lists (about 5 KB each) out of a WITHOUT ROWID table, whose
    B-tree wants rows far smaller than a page (issue 12): the lists already kept come along."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_time REAL NOT NULL)"
    )
    for migration in _migrations.load("sqlite"):
        if migration.version < 12:
            conn.executescript(migration.sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (migration.version, ""))
    assert "WITHOUT ROWID" in _table_sql(conn, "recommendation_lists")
    offers = '[["i1",0.5,"Popular with shoppers right now","popularity","popular",[],""]]'
    conn.execute(
        "INSERT INTO recommendation_lists VALUES ('acme', 'rid-1', 'alice', '', '', '', ?, 1, ?)",
        (offers, 2e9),
    )
    conn.close()
    store = SQLiteStore(path)
    try:
        kept = store.get_recommendation_list("acme", "rid-1", 1e9)
        assert kept is not None and kept.customer_id == "alice" and kept.expire_time == 2e9
        assert [list(o) for o in kept.offers][0][:2] == ["i1", 0.5]
        assert "WITHOUT ROWID" not in _table_sql(sqlite3.connect(path), "recommendation_lists")
    finally:
        store.close()


def _table_sql(conn: sqlite3.Connection, table: str) -> str:
    return conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]


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
