"""The Store contract for bulk intake and per-shop settings (issue 7), on SQLite and on
PostgreSQL (a schema per test; under CI=true it runs, never skips)."""

from __future__ import annotations

import pytest

from kosmos.common.errors import AlreadyExists, NotFound
from kosmos.store import SQLiteStore
from kosmos.store.records import Customer, Interaction, InteractionType, Item, Shop


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "kosmos.db")
    else:
        from kosmos.store.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("postgres_url"), pool_size=4)
    yield s
    s.close()


def seed(store):
    store.create_shop(Shop("acme"))
    store.create_customer(Customer("acme", "alice"))
    store.upsert_items([Item("acme", f"i{n}") for n in range(3)])


def event(n: int, customer: str = "alice") -> Interaction:
    return Interaction("acme", customer, f"i{n % 3}", InteractionType.PURCHASE, 1e9 + n, 1.0)


def test_upsert_customers_creates_and_replaces_in_one_go(store):
    seed(store)
    before = store.get_customer("acme", "alice")
    stored, created = store.upsert_customers(
        [Customer("acme", "alice", {"tier": "gold"}), Customer("acme", "bob", {"tier": "new"})]
    )
    assert created == 1
    assert [c.customer_id for c in stored] == ["alice", "bob"]
    alice = store.get_customer("acme", "alice")
    assert alice.attributes == {"tier": "gold"} and alice.create_time == before.create_time
    assert alice.update_time >= before.update_time
    assert stored[0].create_time == before.create_time
    assert store.existing_customer_ids("acme", ["alice", "bob", "carol"]) == {"alice", "bob"}
    assert store.existing_item_ids("acme", ["i0", "i9"]) == {"i0"}


def test_import_is_atomic_idempotent_and_keeps_order(store):
    seed(store)
    store.upsert_customers([Customer("acme", "bob")])
    count, replayed = store.import_interactions(
        "acme", "h1", "hash-1", [event(n) for n in range(5)]
    )
    assert (count, replayed) == (5, False)
    assert store.import_interactions("acme", "h1", "hash-1", [event(0)]) == (5, True)
    with pytest.raises(AlreadyExists):
        store.import_interactions("acme", "h1", "hash-2", [event(0)])
    stored, _ = store.record_interactions("acme", "r1", "x", [event(7, "bob"), event(8, "bob")])
    everything = list(store.iter_interactions("acme"))
    assert [i.seq for i in everything] == sorted(i.seq for i in everything)
    assert [i.event_time for i in everything] == [1e9 + n for n in (0, 1, 2, 3, 4, 7, 8)]
    # RecordInteractions writes with one executemany too; its seqs are the rows' own.
    assert [i.seq for i in stored] == [everything[-2].seq, everything[-1].seq]
    assert [i.seq for i in store.list_interactions("acme", "bob", None, 10)] == [
        stored[1].seq,
        stored[0].seq,
    ]


def test_settings_revisions(store):
    seed(store)
    assert store.settings_revision("acme") == 0
    assert store.settings_revision("nope") is None
    assert store.get_shop_settings("acme") is None
    first = store.put_shop_settings("acme", {"routing": "als,popularity"})
    second = store.put_shop_settings("acme", {"max_per_category": 2})
    assert (first.revision, second.revision) == (1, 2)
    assert store.settings_revision("acme") == 2
    assert store.get_shop_settings("acme").document == {"max_per_category": 2}
    assert store.get_shop_settings("acme", 1).document == {"routing": "als,popularity"}
    assert store.get_shop_settings("acme", 3) is None
    assert [r.revision for r in store.list_shop_settings("acme", None, 10)] == [2, 1]
    assert [r.revision for r in store.list_shop_settings("acme", 2, 10)] == [1]
    with pytest.raises(NotFound):
        store.put_shop_settings("nope", {})
