"""Persistence behind one `Store` contract: SQLite embedded, PostgreSQL in the cluster."""

from __future__ import annotations

from kosmos.store.protocol import Store
from kosmos.store.sqlite import SQLiteStore

__all__ = ["SQLiteStore", "Store", "open_store"]


def open_store(url: str) -> Store:
    """Opens the store a ``KOSMOS_DATABASE_URL`` names, migrating its schema.

    Raises:
        ValueError: The URL's scheme is not supported.
    """
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"))
    raise ValueError(
        f"unsupported database URL {url.split('://')[0]}://...: this build ships the SQLite"
        " store; the PostgreSQL store is tracked as its own issue"
    )
