"""Persistence behind one `Store` contract: SQLite embedded, PostgreSQL in the cluster."""

from __future__ import annotations

from kosmos.store.protocol import Store
from kosmos.store.sqlite import SQLiteStore

__all__ = ["SQLiteStore", "Store", "open_store"]


def open_store(url: str) -> Store:
    """Opens the store a ``KOSMOS_DATABASE_URL`` names, migrating its schema.

    Raises:
        ValueError: The URL's scheme is not supported.
        Unavailable: The PostgreSQL database cannot be reached.
    """
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        # Imported here: the embedded mode never loads the PostgreSQL driver.
        from kosmos.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(
        f"unsupported database URL {url.split('://')[0]}://...: use sqlite:///path.db"
        " or postgresql://user@host:port/database"
    )
