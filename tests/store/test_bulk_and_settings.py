"""The Store contract for bulk intake and per-shop settings (issue 7), on SQLite and on
PostgreSQL (a schema per test; under CI=true it runs, never skips)."""

from __future__ import annotations

import pytest

from kosmos.common.errors import AlreadyExists, NotFound
from kosmos.store import SQLiteStore
from kosmos.store.records import (
    Customer,
    CustomerColumns,
    Exclusion,
    ExclusionKind,
    Interaction,
    InteractionColumns,
    InteractionType,
    Item,
    ItemColumns,
    Shop,
)


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


@pytest.mark.parametrize("replace", [("attributes", "exclusions"), ("attributes",)])
def test_upsert_customers_for_the_count_alone_writes_what_the_echo_would(store, replace):
    seed(store)
    said = Exclusion(ExclusionKind.BRAND, "Loud")
    store.update_customer(Customer("acme", "alice", {"tier": "bronze"}, (said,)))
    before = store.get_customer("acme", "alice")
    batch = [Customer("acme", "alice", {"tier": "gold"}), Customer("acme", "bob", {"tier": "new"})]
    assert store.upsert_customers(batch, replace, echo=False) == ([], 1)
    alice, bob = store.get_customer("acme", "alice"), store.get_customer("acme", "bob")
    assert alice.attributes == {"tier": "gold"} and alice.create_time == before.create_time
    assert alice.exclusions == (() if "exclusions" in replace else (said,))
    assert alice.update_time >= before.update_time
    assert bob.attributes == {"tier": "new"} and bob.create_time == bob.update_time
    # The same batch again: nothing new, and the echo agrees with what was stored.
    assert store.upsert_customers(batch, replace, echo=False) == ([], 0)
    stored, created = store.upsert_customers(batch, replace)
    assert created == 0 and stored[0].exclusions == store.get_customer("acme", "alice").exclusions
    with pytest.raises(NotFound):
        store.upsert_customers([Customer("nope", "x")], replace, echo=False)


def test_upserted_items_are_what_was_written_and_built_only_when_read(store):
    seed(store)
    written = [Item("acme", "i1", "One", attributes={"a": "1"}), Item("acme", "i7", "Seven")]
    stored = store.upsert_items(written)
    assert len(stored) == 2 and [i.item_id for i in stored] == ["i1", "i7"]
    assert stored[0].update_time > 0 and stored[-1].title == "Seven"
    assert [i.item_id for i in stored[0:1]] == ["i1"]
    kept = store.get_items("acme", ["i1", "i7"])
    assert kept["i1"].attributes == {"a": "1"} and kept["i7"].title == "Seven"
    stored[0].attributes["a"] = "changed"  # the echo is a copy, not the caller's item
    assert written[0].attributes == {"a": "1"}


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


def test_import_keeps_every_row_of_a_batch_in_order_even_repeated_and_odd_text(store):
    """PostgreSQL imports with COPY: repeats within one batch are separate events, text that
    COPY must escape arrives intact, and the rows keep the batch's order."""
    seed(store)
    odd = "tab\there\\back\nline é"
    batch = [event(n) for n in range(2500)]
    batch[7] = batch[6]  # the same event twice in one batch: two events
    batch[9] = Interaction(
        "acme", "alice", "i0", InteractionType.VIEW, 1e9 + 9, 0.0, odd, channel=odd, device="\\N"
    )
    assert store.import_interactions("acme", "big", "hash", batch) == (2500, False)
    stored = list(store.iter_interactions("acme"))
    assert [(i.item_id, i.type, i.event_time, i.value) for i in stored] == [
        (i.item_id, i.type, i.event_time, i.value) for i in batch
    ]
    assert [i.seq for i in stored] == sorted({i.seq for i in stored})
    assert (stored[9].recommendation_id, stored[9].channel, stored[9].device) == (odd, odd, "\\N")
    assert stored[6].event_time == stored[7].event_time and stored[6].seq != stored[7].seq
    # A retry of the same request stores nothing again and says how many it had stored.
    assert store.import_interactions("acme", "big", "hash", batch) == (2500, True)
    assert len(list(store.iter_interactions("acme"))) == 2500


def test_an_import_naming_an_unknown_customer_stores_nothing_and_can_be_retried(store):
    seed(store)
    batch = [event(0), event(1, "carol"), event(2)]
    with pytest.raises(NotFound) as caught:
        store.import_interactions("acme", "r", "hash", batch)
    assert "carol" in str(caught.value)
    assert list(store.iter_interactions("acme")) == []
    store.upsert_customers([Customer("acme", "carol")])
    # The refused attempt left no request row behind: the same id now imports for real.
    assert store.import_interactions("acme", "r", "hash", batch) == (3, False)
    assert [i.customer_id for i in store.iter_interactions("acme")] == ["alice", "carol", "alice"]


def test_an_item_twice_in_one_upsert_is_stored_once_as_its_last_copy(store):
    seed(store)
    version = store.catalog_version("acme")
    store.upsert_items([Item("acme", "i1", title="first"), Item("acme", "i1", title="last")])
    assert store.get_items("acme", ["i1"])["i1"].title == "last"
    assert store.catalog_version("acme") == version + 1


def columns(batch: list[Interaction]) -> InteractionColumns:
    return InteractionColumns(
        "acme",
        [i.customer_id for i in batch],
        [i.item_id for i in batch],
        [int(i.type) for i in batch],
        [i.value for i in batch],
        [i.event_time for i in batch],
        [i.recommendation_id for i in batch],
    )


def test_an_import_as_columns_stores_what_the_same_interactions_would(store):
    """`InteractionColumns` is the bulk path's batch: each store writes its columns as they
    are (SQLite zips them into one executemany, PostgreSQL streams them with COPY)."""
    seed(store)
    store.upsert_customers([Customer("acme", "bob")])
    odd = "tab\there\\back\nline é"
    batch = [event(n, "alice" if n % 4 else "bob") for n in range(3000)]
    batch[5] = Interaction("acme", "bob", "i2", InteractionType.RATING, 1e9 + 5.25, 4.5, odd)
    sent = columns(batch)
    assert list(sent) == batch and sent[4:6] == batch[4:6]
    assert store.import_interactions("acme", "cols", "hash", sent) == (3000, False)
    stored = list(store.iter_interactions("acme"))
    fields = ("customer_id", "item_id", "type", "event_time", "value", "recommendation_id")
    assert [tuple(getattr(i, f) for f in fields) for i in stored] == [
        tuple(getattr(i, f) for f in fields) for i in batch
    ]
    assert [i.seq for i in stored] == sorted({i.seq for i in stored})
    assert store.import_interactions("acme", "cols", "hash", sent) == (3000, True)
    unknown = columns([event(0), event(1, "carol")])
    with pytest.raises(NotFound) as caught:
        store.import_interactions("acme", "cols-2", "hash", unknown)
    assert "carol" in str(caught.value)
    assert len(list(store.iter_interactions("acme"))) == 3000


@pytest.mark.parametrize("replace", [("attributes", "exclusions"), ("attributes",)])
def test_customer_columns_write_what_customer_records_would(store, replace):
    """`CustomerColumns` (bulk intake) are zipped into rows without a `Customer` each; what
    lands, and the count of new profiles, are the same as for the records they stand for,
    on a first load, on a batch mixing new and existing profiles, and on a replay."""
    seed(store)
    said = Exclusion(ExclusionKind.BRAND, "Loud")
    store.update_customer(Customer("acme", "alice", {"tier": "bronze"}, (said,)))
    batch = CustomerColumns(
        "acme",
        ["alice", "bob", "carol"],
        ['{"tier": "gold"}', '{"tier": "new", "country": "ES"}', "{}"],
    )
    assert [c.customer_id for c in batch] == ["alice", "bob", "carol"]
    assert batch[1].attributes == {"tier": "new", "country": "ES"}
    assert store.upsert_customers(batch, replace, echo=False) == ([], 2)
    alice, bob = store.get_customer("acme", "alice"), store.get_customer("acme", "bob")
    assert alice.attributes == {"tier": "gold"}
    assert alice.exclusions == (() if "exclusions" in replace else (said,))
    assert bob.attributes == {"tier": "new", "country": "ES"}
    assert store.get_customer("acme", "carol").attributes == {}
    # Only new ones: one plain insert, all counted.
    fresh = CustomerColumns("acme", ["dan", "eve"], ['{"a": "1"}', '{"a": "2"}'])
    assert store.upsert_customers(fresh, replace, echo=False) == ([], 2)
    # The same again: nothing new, and the attributes replaced all the same.
    again = CustomerColumns("acme", ["dan", "eve"], ['{"a": "3"}', '{"a": "4"}'])
    assert store.upsert_customers(again, replace, echo=False) == ([], 0)
    assert store.get_customer("acme", "eve").attributes == {"a": "4"}
    stored, created = store.upsert_customers(again, replace)
    assert created == 0 and [c.attributes for c in stored] == [{"a": "3"}, {"a": "4"}]
    with pytest.raises(NotFound):
        store.upsert_customers(CustomerColumns("nope", ["x"], ["{}"]), replace, echo=False)


def test_item_columns_write_what_item_records_would(store):
    seed(store)
    columns = ItemColumns(
        "acme",
        ["i1", "i7"],
        ["Tea towel", "Kite"],
        ["Kitchen", "Toys"],
        ["KIT", "TOY"],
        [2.5, 30.0],
        [True, False],
        ['{"band": "low"}', "{}"],
    )
    version = store.catalog_version("acme")
    stored = store.upsert_items(columns)
    assert [i.item_id for i in stored] == ["i1", "i7"]
    assert store.catalog_version("acme") > version
    got = store.get_items("acme", ["i1", "i7"])
    assert got["i1"] == Item(
        "acme",
        "i1",
        "Tea towel",
        "Kitchen",
        "KIT",
        2.5,
        True,
        {"band": "low"},
        got["i1"].update_time,
    )
    assert (got["i7"].available, got["i7"].attributes, got["i7"].price) == (False, {}, 30.0)
    assert stored[0].update_time == got["i1"].update_time
    changes = store.catalog_changes("acme", version)
    assert changes is not None and [i.item_id for i in changes.items] == ["i1", "i7"]
